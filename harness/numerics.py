"""Float widths: computations read half-precision tensors in float32 and leave wider ones as they are.

A model loaded in float64 (``--model-args dtype=float64``) then computes every statistic in float64, which
is what makes a run's figures agree across CPUs and kernel paths (``tests/reference``).
"""

from __future__ import annotations

from typing import Any


def widened(t: Any) -> Any:
    """``t`` as float32 when it is a narrower float (float16, bfloat16), else unchanged (float32, float64)."""
    import torch

    if t.is_floating_point() and torch.finfo(t.dtype).bits < 32:
        return t.float()
    return t
