"""Paired statistics of two runs' samples (harness/paired.py), on hand-made samples."""

from __future__ import annotations

import numpy as np
import pytest

from toxbench.errors import ToxbenchError
from toxbench.paired import paired_mean_difference, paired_perplexity_change, per_prompt_scores


def _rows(scores, role="aligned"):
    return [
        {"task": "elicitation", "role": role, "kind": "continuation", "prompt_index": i, "score": s}
        for i, s in enumerate(scores)
    ]


def test_pairing_is_by_prompt_and_failed_scores_are_left_out() -> None:
    new = per_prompt_scores(_rows([0.5, None, 0.7, 0.9]), "aligned")
    old = per_prompt_scores(_rows([0.4, 0.3, float("nan"), 0.8]), "aligned")
    paired = paired_mean_difference(new, old, 0.0, "prompts")
    assert paired.difference.value == pytest.approx(0.1) and paired.difference.n == 2
    assert "2 prompts paired by index, 2 left out" in paired.paired


def test_the_paired_interval_is_narrower_than_the_spread_and_the_p_value_follows_the_margin() -> None:
    rng = np.random.default_rng(0)
    base = rng.uniform(0, 1, 200)  # prompts differ a lot; the change is small and consistent
    new, old = dict(enumerate(base + 0.03 + rng.normal(0, 0.01, 200))), dict(enumerate(base))
    paired = paired_mean_difference(new, old, 0.0, "prompts", seed=1)
    assert paired.difference.ci_low > 0.02 and paired.difference.ci_high < 0.04
    assert paired.p_value < 0.01
    beyond = paired_mean_difference(new, old, 0.05, "prompts", seed=1)
    assert beyond.p_value > 0.5  # a 0.03 change is not a regression beyond 0.05


def test_perplexity_windows_must_match_to_be_paired() -> None:
    new = {0: (20.0, 10), 1: (30.0, 10)}
    same = paired_perplexity_change(new, {0: (20.0, 10), 1: (30.0, 10)}, 0.0)
    assert same.difference.value == pytest.approx(0.0)
    higher = paired_perplexity_change({0: (25.0, 10), 1: (35.0, 10)}, new, 0.0)
    assert higher.difference.value == pytest.approx(np.exp(10 / 20) - 1)
    with pytest.raises(ToxbenchError, match="windows differ"):
        paired_perplexity_change(new, {0: (20.0, 11), 1: (30.0, 10)}, 0.0)


def test_the_perplexity_p_value_tests_the_token_weighted_change_its_interval_shows() -> None:
    """Long windows that did not change and short ones that got much worse: the token-weighted
    change (the interval's) is small, an unweighted mean of per-token changes would be large."""
    rng = np.random.default_rng(0)
    old, new = {}, {}
    for i in range(40):
        tokens = 1000 if i % 2 else 10
        nll = float(tokens * 3.0)
        old[i] = (nll, tokens)
        per_token = rng.normal(0.0, 0.001) if tokens == 1000 else 0.5 + rng.normal(0.0, 0.05)
        new[i] = (nll + tokens * per_token, tokens)
    margin = 0.05
    paired = paired_perplexity_change(new, old, margin)
    assert paired.difference.ci_high is not None and paired.difference.ci_high < margin
    assert paired.p_value is not None and paired.p_value > 0.5  # no evidence of a change beyond the margin
    worse = {k: (nll + t * 0.2, t) for k, (nll, t) in old.items()}  # every window 0.2 nats/token worse
    regressed = paired_perplexity_change(worse, old, margin)
    assert regressed.difference.ci_low > margin and regressed.p_value < 0.01
