"""Choosing α for a subtracted direction as [A] did: the α whose perplexity matches a target's.

Shared by the ablation task's subtract variants and the ``subtract`` alignment method.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np


def match_perplexity(
    evaluate: Callable[[float, bool], dict[str, Any]],
    grid: Sequence[float],
    target_ppl: float,
    refine_steps: int = 4,
) -> tuple[float, list[dict[str, Any]]]:
    """The α whose perplexity is closest to ``target_ppl``, and every point evaluated.

    ``evaluate(alpha, on_grid)`` returns at least ``{"alpha": alpha, "perplexity": ...}``
    (``on_grid`` is true for the grid's points, where a caller may measure more). First the
    grid, then ``refine_steps`` bisections between the grid points that bracket the target in
    log perplexity: toxicity can fall off a cliff between two grid points.
    """
    search = [evaluate(float(alpha), True) for alpha in grid]
    gap = [np.log(p["perplexity"] / target_ppl) for p in search]
    bracket = next((i for i in range(len(search) - 1) if gap[i] * gap[i + 1] <= 0), None)
    if bracket is not None:
        lo, hi = search[bracket], search[bracket + 1]
        for _ in range(refine_steps):
            mid = evaluate((lo["alpha"] + hi["alpha"]) / 2, False)
            mid["refined"] = True
            search.append(mid)
            if np.log(lo["perplexity"] / target_ppl) * np.log(mid["perplexity"] / target_ppl) <= 0:
                hi = mid
            else:
                lo = mid
    best = min(search, key=lambda s: abs(np.log(s["perplexity"] / target_ppl)))
    return best["alpha"], search
