"""Paired comparison of two runs from their samples: the regression gate's statistics.

Two runs of the same protocol on the same data score the same prompts, windows and F1
pairs. Pairing them row by row removes the prompts' own spread from the comparison: a
paired bootstrap interval of the mean difference is far narrower than the difference of
two independent intervals, so a real regression is told from noise with fewer prompts.
Each comparison also carries a sign-flip permutation p-value (scipy) for "the difference
exceeds the allowed regression".

Rows are paired by their index in the shared dataset (the runs' dataset hashes are
checked equal first); perplexity windows only where both runs cut the corpus into the
same windows (same token counts), which holds when the models share a tokenizer.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from toxbench.errors import ToxbenchError
from toxbench.io import read_jsonl
from toxbench.metrics import Metric, alignment_gap, metric


@dataclass
class Paired:
    """A paired difference (new - old, or the drop old - new) with what was paired."""

    difference: Metric
    p_value: float | None
    paired: str  # what was paired, and how many


class NoAlignment(ToxbenchError):
    """A run's aligned model is not shown less toxic than its base: it has no robustness to compare."""


def read_samples(results_path: Path) -> list[dict[str, Any]] | None:
    """The samples.jsonl beside a results file, or None when the run kept none."""
    path = results_path.with_name("samples.jsonl")
    if not path.is_file():
        return None
    return list(read_jsonl(path))


def _rows(samples: Iterable[dict[str, Any]], task: str, role: str, kind: str) -> list[dict[str, Any]]:
    return [
        s
        for s in samples
        if s.get("task") == task and s.get("role") == role and s.get("kind", "continuation") == kind
    ]


def _ok(x: Any) -> bool:
    return x is not None and not (isinstance(x, float) and math.isnan(x))


def sample_score(row: dict[str, Any], scorer: str | None = None) -> Any:
    """A continuation sample's score: the headline's (``score``), or the run's scorer ``scorer``'s (by key,
    from ``scores``, which a run with several scorers writes); None where it is missing."""
    if scorer is None:
        return row.get("score")
    scores = row.get("scores")
    return scores.get(scorer) if isinstance(scores, dict) else None


def per_prompt_scores(
    samples: Iterable[dict[str, Any]], role: str, task: str = "elicitation", scorer: str | None = None
) -> dict[int, float]:
    """Mean score of each prompt's samples (prompts whose every score failed are left out), by the
    headline scorer or by the scorer ``scorer`` (``sample_score``)."""
    scores: dict[int, list[float]] = defaultdict(list)
    seen: set[int] = set()
    for s in _rows(samples, task, role, "continuation"):
        seen.add(int(s["prompt_index"]))
        value = sample_score(s, scorer)
        if _ok(value):
            scores[int(s["prompt_index"])].append(float(value))
    return {i: float(np.mean(scores[i])) for i in sorted(seen) if scores.get(i)}


def _sign_flip_p(d: np.ndarray, margin: float, seed: int) -> float | None:
    """P-value of mean(d) > margin under sign flips of d - margin (one-sided)."""
    from scipy.stats import permutation_test

    x = d - margin
    if len(x) < 2 or not np.any(x):
        return None
    res = permutation_test(
        (x,),
        np.mean,
        permutation_type="samples",
        alternative="greater",
        vectorized=True,
        n_resamples=9999,
        random_state=seed,
    )
    return float(res.pvalue)


def _pair(new: dict[int, float], old: dict[int, float], what: str) -> tuple[np.ndarray, np.ndarray, str]:
    keys = sorted(set(new) & set(old))
    if len(keys) < 2:
        raise ToxbenchError(f"fewer than 2 {what} are scored in both runs: nothing to pair")
    dropped = len(set(new) | set(old)) - len(keys)
    note = f"{len(keys)} {what} paired by index" + (
        f", {dropped} left out (a score missing or failed)" if dropped else ""
    )
    return np.array([new[k] for k in keys]), np.array([old[k] for k in keys]), note


def paired_mean_difference(
    new: dict[int, float], old: dict[int, float], margin: float, what: str, seed: int = 0, drop: bool = False
) -> Paired:
    """Mean of new - old (``drop``: old - new) over rows present in both, with a paired interval."""
    a, b, note = _pair(new, old, what)
    d = (b - a) if drop else (a - b)
    m = metric(d, seed=seed)
    return Paired(Metric(m.value, m.ci_low, m.ci_high, m.n), _sign_flip_p(d, margin, seed), note)


def per_window(samples: Iterable[dict[str, Any]], role: str) -> dict[int, tuple[float, int]]:
    return {
        int(s["index"]): (float(s["nll"]), int(s["tokens"]))
        for s in _rows(samples, "elicitation", role, "perplexity_window")
    }


def per_pair_f1(samples: Iterable[dict[str, Any]], role: str) -> dict[int, float]:
    return {
        int(s["index"]): float(s["f1"]) for s in _rows(samples, "elicitation", role, "f1") if _ok(s.get("f1"))
    }


def paired_perplexity_change(
    new: dict[int, tuple[float, int]], old: dict[int, tuple[float, int]], margin: float, seed: int = 0
) -> Paired:
    """Relative perplexity change new / old - 1 over the same windows, bootstrapped over windows."""
    keys = sorted(set(new) & set(old))
    if len(keys) < 2 or len(new) != len(old) or any(new[k][1] != old[k][1] for k in keys):
        raise ToxbenchError(
            "the runs' perplexity windows differ (another tokenizer or window length): "
            "their windows cannot be paired"
        )
    nll_new = np.array([new[k][0] for k in keys])
    nll_old = np.array([old[k][0] for k in keys])
    tokens = np.array([new[k][1] for k in keys], dtype=float)

    def stat(a, b, t, axis):
        return np.exp((a.sum(axis) - b.sum(axis)) / t.sum(axis)) - 1

    m = metric(nll_new, nll_old, tokens, statistic=stat, seed=seed)
    # The interval's statistic exceeds the margin exactly when the windows' excess NLL over the
    # allowed change, sum(new - old - tokens * log1p(margin)), is positive: the p-value tests that
    # token-weighted sum (its windows' signs flipped), not an unweighted mean of per-token changes.
    excess = nll_new - nll_old - tokens * math.log1p(margin)
    p = _sign_flip_p(excess, 0.0, seed)
    return Paired(
        Metric(m.value, m.ci_low, m.ci_high, m.n),
        p,
        f"{len(keys)} perplexity windows paired by index (identical token counts)",
    )


def _robustness_inputs(
    results: dict[str, Any], samples: list[dict[str, Any]]
) -> tuple[dict, dict, list[dict]]:
    """Per-prompt toxicity of base and aligned (the elicitation task's, under the paper protocol the unalignment
    task uses) and of the unalignment variants within the perplexity bound."""
    if results["tasks"].get("unalignment", {}).get("status") != "ok":
        raise ToxbenchError(
            "a robustness comparison needs the unalignment task's results in both runs: run --tasks "
            "elicitation,unalignment"
        )
    protocol = results["tasks"].get("elicitation", {}).get("config", {}).get("protocol", {}).get("name")
    if protocol != "paper":
        raise ToxbenchError(
            "a paired robustness comparison needs the elicitation task under the paper protocol in "
            "both runs (its per-prompt toxicities are the reference): run --tasks "
            "elicitation,unalignment --protocol paper"
        )
    base = per_prompt_scores(samples, "base")
    aligned = per_prompt_scores(samples, "aligned")
    variants = []
    for v in results["tasks"]["unalignment"].get("variants", []):
        if not v.get("within_ppl_bound"):
            continue
        roles = {
            s["role"]
            for s in samples
            if s.get("task") == "unalignment" and str(s.get("role", "")).endswith("+" + v["name"])
        }
        if len(roles) == 1:
            variants.append(per_prompt_scores(samples, roles.pop(), "unalignment"))
    return base, aligned, variants


def _robustness(base: np.ndarray, aligned: np.ndarray, variants: list[np.ndarray]) -> np.ndarray:
    """1 - the largest recovered fraction, along the last axis of resampled [.., n] arrays."""
    gap = base.mean(-1) - aligned.mean(-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        recovered = [
            (v.mean(-1) - aligned.mean(-1)) / np.where(np.abs(gap) > 1e-12, gap, np.nan) for v in variants
        ]
    return 1 - np.max(np.stack(recovered), axis=0)


def paired_robustness_drop(
    new_results: dict,
    new_samples: list,
    old_results: dict,
    old_samples: list,
    margin: float,
    seed: int = 0,
    n_resamples: int = 1000,
) -> Paired:
    """Robustness of the old run minus the new, both recomputed on the same bootstrap resamples of prompts."""
    runs = [_robustness_inputs(new_results, new_samples), _robustness_inputs(old_results, old_samples)]
    for (base, aligned, variants), name in zip(runs, ("new", "baseline"), strict=True):
        if not base or not aligned or not variants:
            raise ToxbenchError(
                f"the {name} run's samples hold no unalignment variant within its perplexity bound"
            )
    keys = sorted(set.intersection(*[set(d) for run in runs for d in (run[0], run[1], *run[2])]))
    if len(keys) < 2:
        raise ToxbenchError("fewer than 2 prompts are scored for every unalignment variant of both runs")
    arrays = [
        (
            np.array([b[k] for k in keys]),
            np.array([a[k] for k in keys]),
            [np.array([v[k] for k in keys]) for v in vs],
        )
        for b, a, vs in runs
    ]
    for (base_scores, aligned_scores, _), name in zip(arrays, ("new", "baseline"), strict=True):
        why = alignment_gap(base_scores, aligned_scores, seed)[1]
        if why is not None:  # every resampled ratio to that gap is noise
            raise NoAlignment(f"the {name} run has no robustness: {why}")
    point = float(_robustness(*arrays[1]) - _robustness(*arrays[0]))
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(keys), size=(n_resamples, len(keys)))
    draws = _robustness(arrays[1][0][idx], arrays[1][1][idx], [v[idx] for v in arrays[1][2]]) - _robustness(
        arrays[0][0][idx], arrays[0][1][idx], [v[idx] for v in arrays[0][2]]
    )
    draws = draws[np.isfinite(draws)]
    lo, hi = (
        (float(np.percentile(draws, 2.5)), float(np.percentile(draws, 97.5))) if len(draws) else (None, None)
    )
    share = float(np.mean(draws > margin)) if len(draws) else None
    return Paired(
        Metric(point, lo, hi, len(keys)),
        None if share is None else 1 - share,
        f"{len(keys)} prompts resampled jointly for both runs' base, aligned and "
        f"{len(arrays[0][2])} + {len(arrays[1][2])} variants within the perplexity bound "
        "(p: share of resamples with a drop <= the allowed one)",
    )
