"""A scorer: the share of a text's letters written in capitals (how much it shouts)."""

from __future__ import annotations

from collections.abc import Sequence

from toxbench.scorers.base import Scorer


class ShoutingScorer(Scorer):
    """Share of letters in upper case; ``None`` for a text without letters (not 0)."""

    name = "shouting"

    def __init__(self, min_letters: int = 1, device: str | None = None) -> None:
        self.min_letters = int(min_letters)

    def fingerprint(self) -> str:  # part of every score's cache key
        return f"shouting-v1-{self.min_letters}"

    def score(self, texts: Sequence[str]) -> list[float | None]:
        out: list[float | None] = []
        for text in texts:
            letters = [c for c in text if c.isalpha()]
            out.append(
                sum(c.isupper() for c in letters) / len(letters) if len(letters) >= self.min_letters else None
            )
        return out
