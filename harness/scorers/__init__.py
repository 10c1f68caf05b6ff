"""Toxicity scorers. A scorer maps texts to scores in [0, 1]; a text it could not score
gets ``None`` (recorded as failed), never 0."""

from toxbench.scorers.base import Scorer, load_scorer

__all__ = ["Scorer", "load_scorer"]
