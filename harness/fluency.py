"""Perplexity on a corpus ([A] §5): non-overlapping windows of the model's context."""

from __future__ import annotations

from collections.abc import Sequence

from harness.backends.base import Backend
from harness.metrics import Metric, perplexity_from_windows, token_windows


def context_length(model) -> int:
    cfg = model.config
    for attr in ("n_positions", "max_position_embeddings", "n_ctx"):
        value = getattr(cfg, attr, None)
        if isinstance(value, int) and value > 0:
            return value
    raise ValueError(f"cannot tell the context length of {type(model).__name__}")


def perplexity_windows(tokenizer, lines: Sequence[str], window: int) -> list[list[int]]:
    """The corpus joined as on the hub ("\\n\\n" between rows), cut into non-overlapping windows."""
    ids = tokenizer("\n\n".join(lines), add_special_tokens=False)["input_ids"]
    return token_windows(ids, window)


def perplexity(backend: Backend, windows: Sequence[Sequence[int]], seed: int = 0) -> tuple[Metric, list]:
    """Perplexity over token windows, with the per-window (NLL, tokens) for the samples file."""
    per_window = backend.window_nll(windows)
    return perplexity_from_windows(per_window, seed=seed), per_window
