"""Matching α to a target perplexity: α = 0 brackets, a target outside the range says so, NaN is never chosen."""

from __future__ import annotations

import math

import pytest

from toxbench.errors import ToxbenchError
from toxbench.mech.alpha import BRACKETED, OUTSIDE, match_perplexity

GRID = (1.0, 2.0, 4.0)


def curve(ppl_of):
    """An ``evaluate`` from a perplexity curve, recording the α it was asked for."""
    asked: list[float] = []

    def evaluate(alpha: float, on_grid: bool) -> dict:
        asked.append(alpha)
        return {"alpha": alpha, "perplexity": ppl_of(alpha)}

    return evaluate, asked


def test_a_target_between_the_base_and_the_first_grid_point_is_bracketed() -> None:
    evaluate, asked = curve(lambda a: 10.0 * math.exp(a))  # ppl 10 at α = 0, 27.2 at α = 1
    alpha, search, status = match_perplexity(evaluate, GRID, target_ppl=10.0 * math.exp(0.3), refine_steps=8)
    assert status == BRACKETED
    assert alpha == pytest.approx(0.3, abs=1 / 2**8)
    assert 0.0 < alpha < 1.0 and any(0 < a < 1 for a in asked)


def test_a_known_start_point_is_not_evaluated_again() -> None:
    evaluate, asked = curve(lambda a: 10.0 + a)
    _, search, status = match_perplexity(evaluate, GRID, 12.5, start={"alpha": 0.0, "perplexity": 10.0})
    assert status == BRACKETED and 0.0 not in asked and search[0]["perplexity"] == 10.0


def test_a_target_outside_the_range_is_reported_not_hidden() -> None:
    evaluate, _ = curve(lambda a: 10.0 + a)
    alpha, _, status = match_perplexity(evaluate, GRID, target_ppl=100.0)
    assert status == OUTSIDE and alpha == 4.0
    alpha, _, status = match_perplexity(evaluate, GRID, target_ppl=5.0)  # below the base model
    assert status == OUTSIDE and alpha == 0.0


def test_a_nan_perplexity_is_never_chosen_nor_brackets() -> None:
    evaluate, _ = curve(lambda a: math.nan if a == 2.0 else 10.0 + a)
    alpha, _, status = match_perplexity(evaluate, GRID, target_ppl=12.0, refine_steps=0)
    # 1 -> 11 and 4 -> 14 bracket 12 only across the NaN point: no bracket, closest finite point
    assert status == OUTSIDE and alpha in (1.0, 4.0) and not math.isnan(alpha)
    everything_broken, _ = curve(lambda a: math.nan)
    with pytest.raises(ToxbenchError, match="finite perplexity"):
        match_perplexity(everything_broken, GRID, 12.0)
