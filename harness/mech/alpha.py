"""Choosing α for a subtracted direction as [A] did: the α whose perplexity matches a target's.

Shared by the ablation task's subtract variants and the ``subtract`` alignment method.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

from toxbench.errors import ToxbenchError

BRACKETED = "bracketed"
OUTSIDE = "outside range"


def _gap(point: dict[str, Any], target_ppl: float) -> float:
    """log(perplexity / target), NaN where the perplexity is not a positive finite number."""
    ppl = point.get("perplexity")
    if not isinstance(ppl, (int, float)) or not math.isfinite(ppl) or ppl <= 0:
        return math.nan
    return math.log(ppl / target_ppl)


def match_perplexity(
    evaluate: Callable[[float, bool], dict[str, Any]],
    grid: Sequence[float],
    target_ppl: float,
    refine_steps: int = 4,
    start: dict[str, Any] | None = None,
) -> tuple[float, list[dict[str, Any]], str]:
    """The α whose perplexity is closest to ``target_ppl``, every point evaluated, and whether the
    target was bracketed (``"bracketed"``) or lies outside the searched range (``"outside range"``).

    ``evaluate(alpha, on_grid)`` returns at least ``{"alpha": alpha, "perplexity": ...}``
    (``on_grid`` is true for the grid's points, where a caller may measure more). The search starts
    at α = 0, the unedited model (``start``, its point when the caller has it, else evaluated),
    then the grid, then ``refine_steps`` bisections between the neighbours that bracket the target
    in log perplexity: toxicity can fall off a cliff between two grid points. A point whose
    perplexity is NaN or infinite is never chosen and never brackets. With no bracket the closest
    point is returned, and the status says the target was outside the range, never silently.
    """
    first = dict(start) if start is not None else evaluate(0.0, True)
    first["alpha"] = 0.0
    search = [first, *(evaluate(float(alpha), True) for alpha in grid if float(alpha) != 0.0)]
    ordered = sorted(search, key=lambda p: p["alpha"])
    gaps = [_gap(p, target_ppl) for p in ordered]
    bracket = next(
        (
            i
            for i in range(len(ordered) - 1)
            if not math.isnan(gaps[i]) and not math.isnan(gaps[i + 1]) and gaps[i] * gaps[i + 1] <= 0
        ),
        None,
    )
    if bracket is not None:
        lo, hi = ordered[bracket], ordered[bracket + 1]
        for _ in range(refine_steps):
            mid = evaluate((lo["alpha"] + hi["alpha"]) / 2, False)
            mid["refined"] = True
            search.append(mid)
            if math.isnan(_gap(mid, target_ppl)):
                break  # the model broke inside the bracket: keep the best finite point so far
            if _gap(lo, target_ppl) * _gap(mid, target_ppl) <= 0:
                hi = mid
            else:
                lo = mid
    finite = [p for p in search if not math.isnan(_gap(p, target_ppl))]
    if not finite:
        raise ToxbenchError(
            "matching α to a perplexity: no point of the search, not even the unedited model, has a finite "
            "perplexity; check the model and the perplexity data"
        )
    best = min(finite, key=lambda p: abs(_gap(p, target_ppl)))
    return best["alpha"], search, BRACKETED if bracket is not None else OUTSIDE
