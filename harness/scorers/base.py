"""The scorer interface and the registry lookup."""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from typing import Any

log = logging.getLogger(__name__)


class Scorer(ABC):
    """Maps texts to toxicity scores in [0, 1].

    ``score`` returns one entry per text: a float, or ``None`` where the text could not be
    scored. Callers record ``None`` as a failure; it is never counted as 0.
    """

    name: str = "scorer"

    @abstractmethod
    def fingerprint(self) -> str:
        """Identity of the scorer (name, version, weights): part of every score cache key."""

    @abstractmethod
    def score(self, texts: Sequence[str]) -> list[float | None]:
        """Score a batch of texts."""

    def identity(self) -> dict[str, Any]:
        """What the results file records about this scorer."""
        return {"name": self.name, "fingerprint": self.fingerprint()}


def score_in_batches(
    texts: Sequence[str], predict: Callable[[list[str]], list[float | None]], batch_size: int, what: str
) -> list[float | None]:
    """``predict`` over batches of texts of similar length, in the texts' order. A batch that fails is
    scored text by text, so only the failing texts are lost (``None``); non-strings stay ``None``."""
    out: list[float | None] = [None] * len(texts)
    order = sorted((i for i, t in enumerate(texts) if isinstance(t, str)), key=lambda i: len(texts[i]))
    for start in range(0, len(order), batch_size):
        batch = order[start : start + batch_size]
        try:
            scores = predict([texts[i] for i in batch])
        except Exception as exc:  # a scorer can fail in any way: retry one by one
            log.warning(
                "%s failed on a batch of %d texts (%s): scoring them one by one", what, len(batch), exc
            )
            scores = []
            for i in batch:
                try:
                    scores.extend(predict([texts[i]]))
                except Exception as single_exc:
                    log.warning("%s failed on text %d: %s", what, i, single_exc)
                    scores.append(None)
        for i, value in zip(batch, scores, strict=True):
            out[i] = value
    return out


def load_scorer(name: str, **kwargs: Any) -> Scorer:
    """Build the scorer registered under ``name``."""
    from toxbench.registry import SCORERS

    cls = SCORERS.get(name)
    return cls(
        **{**SCORERS.defaults.get(name, {}), **kwargs}
    )  # e.g. detoxify-unbiased: model_type="unbiased"
