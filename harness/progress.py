"""Progress for long work (rich): one display per run, quiet when asked.

Inside ``run_display()`` (the runner opens one per run) every ``progress_bar`` reuses a
single line, prefixed with the task at work (``set_stage``), so a run of twenty variants
shows one moving line that names the task, the variant and the step, not a wall of bars.
Outside it (a build, a one-off command) each ``progress_bar`` is a bar of its own.
``TOXBENCH_PROGRESS=0`` turns them all off.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

_display: dict[str, Any] = {"progress": None, "task": None, "stage": ""}


def progress_enabled() -> bool:
    return os.environ.get("TOXBENCH_PROGRESS", "1") != "0"


def _columns():
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    return (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )


@contextmanager
def run_display() -> Iterator[None]:
    """One progress line for everything a run does while it is open."""
    if not progress_enabled() or _display["progress"] is not None:
        yield
        return
    from rich.progress import Progress

    with Progress(*_columns(), transient=True) as progress:
        _display.update(progress=progress, task=progress.add_task("starting", total=None), stage="")
        try:
            yield
        finally:
            _display.update(progress=None, task=None, stage="")


def set_stage(stage: str) -> None:
    """Name the part of the run at work (a task); shown before every step's description."""
    _display["stage"] = stage


@contextmanager
def progress_bar(description: str, total: int | None) -> Iterator:
    """Yield an ``advance(n)`` callable that moves a bar forward by n units."""
    if not progress_enabled():
        yield lambda n=1: None
        return
    shared = _display["progress"]
    if shared is not None:
        label = f"{_display['stage']} · {description}" if _display["stage"] else description
        shared.reset(_display["task"], total=total, description=label)
        yield lambda n=1: shared.advance(_display["task"], n)
        return
    from rich.progress import Progress

    with Progress(*_columns(), transient=False) as bar:
        task = bar.add_task(description, total=total)
        yield lambda n=1: bar.advance(task, n)
