"""Progress bars for long work (rich), quiet when asked or when output is not a terminal."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager


def progress_enabled() -> bool:
    return os.environ.get("TOXBENCH_PROGRESS", "1") != "0"


@contextmanager
def progress_bar(description: str, total: int | None) -> Iterator:
    """Yield an ``advance(n)`` callable that moves a bar forward by n units."""
    if not progress_enabled():
        yield lambda n=1: None
        return
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        transient=False,
    ) as bar:
        task = bar.add_task(description, total=total)
        yield lambda n=1: bar.advance(task, n)
