"""Fluency ([A] §5): perplexity on a corpus in non-overlapping token windows, and [A]'s F1.

Windows are 1,024 tokens by default, both papers' ``max_length``, capped by the model's
context: a model's full context (131,072 positions for Llama-3.1) is neither comparable
with the papers' figures nor affordable. A tokenizer that adds BOS gets it at the start of
every window (``bos="each_window"``: every window is read as a document start, as the
model was trained), or only at the start of the corpus (``bos="corpus_start"``: what the
papers' code does, tokenising the whole corpus once with the tokenizer's defaults).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from toxbench.backends.base import Backend
from toxbench.errors import ToxbenchError
from toxbench.metrics import Metric, bag_f1, perplexity_from_windows, token_windows
from toxbench.models import context_length
from toxbench.tokenization import encode_plain, special_tokens

DEFAULT_WINDOW = 1024
BOS_MODES = ("each_window", "corpus_start")
F1_MODES = ("continuation", "lee2024")
LEE2024_GOLD_TOKENS = 52  # [A]'s code cuts the gold continuation at 52 tokens


@dataclass(frozen=True)
class FluencySettings:
    """How perplexity and F1 are computed (recorded in every result).

    ``f1="continuation"`` (toxbench): the bag of the 20 new tokens against the whole gold
    continuation. ``f1="lee2024"`` ([A]'s code): the bag of the prompt's tokens plus the new
    ones (special tokens removed) against the gold cut at 52 tokens.
    """

    perplexity_window: int = DEFAULT_WINDOW
    bos: str = "each_window"
    f1: str = "continuation"

    def __post_init__(self) -> None:
        if int(self.perplexity_window) < 2:
            raise ToxbenchError(
                f"perplexity_window must be at least 2 tokens, got {self.perplexity_window!r}"
            )
        if self.bos not in BOS_MODES:
            raise ToxbenchError(
                f"unknown perplexity BOS mode {self.bos!r}: choose one of {', '.join(BOS_MODES)}"
            )
        if self.f1 not in F1_MODES:
            raise ToxbenchError(f"unknown F1 mode {self.f1!r}: choose one of {', '.join(F1_MODES)}")

    def window_for(self, model: Any) -> int:
        """The window used for ``model``: the setting, capped by the model's context."""
        return min(int(self.perplexity_window), context_length(model))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def perplexity_windows(
    tokenizer: Any, lines: Sequence[str], window: int, bos: str = "each_window"
) -> list[list[int]]:
    """The corpus joined as on the hub ("\\n\\n" between rows), cut into non-overlapping windows.

    Each window's first token is context only; the others are predicted. With a BOS-adding
    tokenizer and ``bos="each_window"``, each window is BOS + ``window - 1`` corpus tokens, so
    every corpus token is predicted once.
    """
    ids = encode_plain(tokenizer, ["\n\n".join(lines)])[0]
    prefix = list(special_tokens(tokenizer).prefix)
    if not prefix:
        return token_windows(ids, window)
    if bos == "corpus_start":
        return token_windows(prefix + ids, window)
    body = window - len(prefix)
    if body < 1:
        raise ToxbenchError(
            f"a perplexity window of {window} tokens leaves no room beside the {len(prefix)} BOS token(s)"
        )
    return [prefix + ids[i : i + body] for i in range(0, len(ids), body)]


def perplexity(backend: Backend, windows: Sequence[Sequence[int]], seed: int = 0) -> tuple[Metric, list]:
    """Perplexity over token windows, with the per-window (NLL, tokens) for the samples file."""
    per_window = backend.window_nll(windows)
    return perplexity_from_windows(per_window, seed=seed), per_window


def f1_bags(
    tokenizer: Any, prompt_ids: Sequence[int], new_ids: Sequence[int], gold_ids: Sequence[int], mode: str
) -> tuple[list[int], list[int]]:
    """The predicted and gold bags of token ids that [A]'s F1 compares, per ``mode``."""
    if mode == "continuation":
        return list(new_ids), list(gold_ids)
    special = set(getattr(tokenizer, "all_special_ids", []) or [])
    predicted = [t for t in list(prompt_ids) + list(new_ids) if t not in special]
    return predicted, list(gold_ids[:LEE2024_GOLD_TOKENS])


def f1_score(
    tokenizer: Any, prompt_ids: Sequence[int], new_ids: Sequence[int], gold_ids: Sequence[int], mode: str
) -> float:
    predicted, gold = f1_bags(tokenizer, prompt_ids, new_ids, gold_ids, mode)
    return bag_f1(predicted, gold)


class Fluency:
    """A run's fluency measurements: perplexity on Wikitext-2 test and [A]'s F1, each through the
    run's cached generation and NLL, remembered per model identity and settings.

    ``ctx`` is the run's ``RunContext`` (its config, data folder, ``generate`` and ``window_nll``).
    Datasets are read, and Wikitext tokenised, once per run and tokenizer: every variant of a
    model shares them.
    """

    def __init__(self, ctx: Any) -> None:
        self.ctx = ctx
        self._results: dict[tuple, dict[str, Any]] = {}
        self._loaded: dict[str, Any] = {}
        self._windows: dict[tuple[int, int, str], tuple[Any, list[list[int]]]] = {}

    def _dataset(self, name: str):
        """Wikitext-2 test or the F1 pairs, loaded and recorded once per run."""
        from toxbench.data import load_f1_pairs, load_wikitext

        if name not in self._loaded:
            loader: Any = {"wikitext": load_wikitext, "f1": load_f1_pairs}[name]
            self._loaded[name] = loader(self.ctx.data_dir)
            self.ctx.record_dataset(self._loaded[name])
        return self._loaded[name]

    def settings(self, override: dict[str, Any] | None = None) -> FluencySettings:
        """The run's settings, with a task's own overrides (e.g. ``perplexity_window``)."""
        base = self.ctx.config.fluency
        override = {k: v for k, v in (override or {}).items() if v is not None}
        return FluencySettings(**{**base.to_dict(), **override}) if override else base

    def windows(self, model: Any, settings: FluencySettings) -> list[list[int]]:
        """The tokenised Wikitext windows, once per tokenizer and window (edited models share them)."""
        window = settings.window_for(model.model)
        key = (id(model.tokenizer), window, settings.bos)
        if key not in self._windows:  # the tokenizer is kept in the value, so its id stays its own
            rows = self._dataset("wikitext").rows
            self._windows[key] = (
                model.tokenizer,
                perplexity_windows(model.tokenizer, rows, window, settings.bos),
            )
        return self._windows[key][1]

    def perplexity(self, model: Any, settings: FluencySettings | None = None):
        """Perplexity (non-overlapping windows) with its interval, and the per-window NLL."""
        windows = self.windows(model, settings or self.ctx.config.fluency)
        limit = self.ctx.config.limit
        per_window = self.ctx.window_nll(model, windows[:limit] if limit else windows)
        return perplexity_from_windows(per_window, seed=self.ctx.config.seed), per_window

    def f1(self, model: Any, settings: FluencySettings | None = None):
        """[A]'s F1 of greedy continuations against gold continuations, and the per-pair scores."""
        from toxbench.backends.base import SamplingConfig
        from toxbench.metrics import metric
        from toxbench.tokenization import encode, truncate_texts

        settings = settings or self.ctx.config.fluency
        pairs = self._dataset("f1")
        limit = self.ctx.config.limit
        rows = pairs.rows[:limit] if limit else pairs.rows
        prompts = [p.prompt for p in rows]
        if settings.f1 == "lee2024":  # [A]: prompts of at most 32 tokens
            prompts = truncate_texts(model.tokenizer, prompts, 32)
        outs = self.ctx.generate(model, prompts, SamplingConfig(max_new_tokens=20), "F1 continuations")
        golds = encode_plain(model.tokenizer, [p.gold for p in rows])
        prompt_ids = encode(model.tokenizer, prompts)
        scores = [
            f1_score(model.tokenizer, p, o[0].token_ids, g, settings.f1)
            for p, o, g in zip(prompt_ids, outs, golds, strict=True)
        ]
        return metric(scores, seed=self.ctx.config.seed), scores

    def both(self, model: Any, settings: FluencySettings | None = None) -> dict[str, Any]:
        """Perplexity and F1, once per model identity and settings."""
        settings = settings or self.ctx.config.fluency
        key = (model.fingerprint, settings)  # FluencySettings is frozen: hashable
        if key not in self._results:
            ppl, per_window = self.perplexity(model, settings)
            f1, f1_scores = self.f1(model, settings)
            self._results[key] = {
                "perplexity": ppl,
                "f1": f1,
                "f1_scores": f1_scores,
                "per_window": per_window,
                "perplexity_window": settings.window_for(model.model),
            }
        return self._results[key]
