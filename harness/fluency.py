"""Fluency measures shared by tasks: perplexity (Wikitext-2) and F1 ([A] §3.3, §5)."""

from __future__ import annotations

from collections.abc import Sequence

from harness.backends.base import Advance, Backend, SamplingConfig
from harness.metrics import Metric, bag_f1, metric, perplexity_from_windows, token_windows


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


def f1_scores(
    backend: Backend, prompts: Sequence[str], golds: Sequence[str], max_new_tokens: int,
    advance: Advance | None = None,
) -> list[float]:
    """Bag-of-token-ids F1 of each greedy continuation against its gold continuation."""
    completions = backend.generate(prompts, SamplingConfig(max_new_tokens=max_new_tokens), advance)
    gold_ids = backend.tokenizer(list(golds), add_special_tokens=False)["input_ids"]
    return [bag_f1(c[0].token_ids, g) for c, g in zip(completions, gold_ids, strict=True)]


def f1_metric(scores: Sequence[float], seed: int = 0) -> Metric:
    return metric(list(scores), seed=seed)
