"""The task interface: a task asks the run context for everything (models, generation,
scores, data, output paths) and returns a ``TaskResult``; it never loads models, calls a
scorer's library or writes files itself."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from toxbench.runner import RunContext


@dataclass
class TaskResult:
    metrics: dict[str, Any]
    config: dict[str, Any]
    samples: list[dict[str, Any]] = field(default_factory=list)
    variants: list[dict[str, Any]] | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    artifacts: list[str] = field(default_factory=list)
    report: str = ""  # a Markdown section for report.md
    # How the run's scorers agree on the task's texts, one entry per pair of scorers and role (a run
    # with several scorers; ``toxbench.agreement``). None: not measured.
    agreement: list[dict[str, Any]] | None = None


class Task(ABC):
    name: str = "task"
    version: str = "1"
    roles: tuple[str, ...] = ("base", "aligned")  # the models the task needs
    optional_roles: tuple[str, ...] = ()  # models it uses when the run has them

    @abstractmethod
    def run(self, ctx: RunContext) -> TaskResult: ...
