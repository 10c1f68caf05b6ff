"""The scorer interface and the registry lookup."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any


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


def load_scorer(name: str, **kwargs: Any) -> Scorer:
    """Build the scorer registered under ``name``."""
    from harness.registry import SCORERS

    cls = SCORERS.get(name)
    return cls(**{**SCORERS.defaults.get(name, {}), **kwargs})  # e.g. detoxify-unbiased: model_type="unbiased"
