"""Which kind of forward pass is running: generation, or a teacher-forced pass over every position.

An intervention that stands for another model's behaviour at the position being predicted
(activation patching, [B] §7) is applied at the last position while generating, and at every
position in a pass that scores or reads all positions at once (perplexity, probe features).
The code that runs such a pass says so with ``teacher_forced()``; hooks ask ``is_teacher_forced()``.
"""

from __future__ import annotations

import contextvars
from collections.abc import Iterator
from contextlib import contextmanager

_TEACHER_FORCED = contextvars.ContextVar("toxbench_teacher_forced", default=False)


@contextmanager
def teacher_forced() -> Iterator[None]:
    """Marks the forwards run inside as teacher-forced: every position is read."""
    token = _TEACHER_FORCED.set(True)
    try:
        yield
    finally:
        _TEACHER_FORCED.reset(token)


def is_teacher_forced() -> bool:
    return _TEACHER_FORCED.get()
