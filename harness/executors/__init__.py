"""Executors: where a run's generation, scoring and perplexity work is done.

The runner hands an executor chunks of work and writes each chunk's results to the cache as
it comes back, so resuming, cache sharing and the results are the same whichever executor
did the work. Tasks never see it: it is a property of the run context.

- ``local`` (the default): in this process, one chunk after another, on the run's backend.
- ``ray``: on persistent Ray actors (``toxbench.executors.ray_actors``), several chunks at
  once: generation and perplexity on replicas of the run's backend, scoring on scorer
  replicas. ``pip install 'toxbench[ray]'``.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

# A unit of work's result: (index of the chunk, one value per item of the chunk).
Done = tuple[int, list[Any]]


class Executor:
    """Runs chunks of model and scorer work for a ``RunContext``; yields each chunk's values as it finishes."""

    name = "local"

    def model_work(
        self, ctx: Any, model: Any, method: str, chunks: Sequence[list[Any]], *args: Any
    ) -> Iterator[Done]:
        """``ctx.backend(model).<method>(chunk, *args)`` for every chunk (``generate``, ``window_nll``)."""
        backend = ctx.backend(model)
        for i, chunk in enumerate(chunks):
            yield i, list(getattr(backend, method)(chunk, *args))

    def score(self, ctx: Any, chunks: Sequence[list[str]]) -> Iterator[Done]:
        for i, chunk in enumerate(chunks):
            yield i, list(ctx.scorer.score(chunk))

    def identity(self) -> dict[str, Any]:
        return {"name": self.name}

    def close(self) -> None:
        """Stop what the executor started (actors, a local cluster)."""


def make_executor(name: str, options: dict[str, Any]) -> Executor:
    from toxbench.registry import EXECUTORS, check_options

    cls = EXECUTORS.get(name)
    check_options(cls, options, f"executor {name!r}")
    return cls(**options)
