"""Name -> lazy ``"module:attr"`` registries for models, tasks, scorers and backends.

Entries are import strings, so that optional heavy libraries (vllm, detoxify) are only
imported when the entry is used. An unknown name gets the closest known names.
"""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from harness.errors import UnknownNameError


def import_object(path: str) -> Any:
    """Import ``"package.module:attr"`` and return the attribute."""
    module_name, _, attr = path.partition(":")
    if not attr:
        raise ValueError(f"expected 'module:attr', got {path!r}")
    obj: Any = importlib.import_module(module_name)
    for part in attr.split("."):
        obj = getattr(obj, part)
    return obj


@dataclass
class Registry:
    """A named collection of lazily imported entries."""

    kind: str
    entries: dict[str, str] = field(default_factory=dict)
    descriptions: dict[str, str] = field(default_factory=dict)

    def register(self, name: str, target: str, description: str = "") -> None:
        if name in self.entries and self.entries[name] != target:
            raise ValueError(f"{self.kind} {name!r} is already registered as {self.entries[name]!r}")
        self.entries[name] = target
        self.descriptions[name] = description

    def __contains__(self, name: object) -> bool:
        return name in self.entries

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self.entries))

    def names(self) -> list[str]:
        return sorted(self.entries)

    def names_in_order(self) -> list[str]:
        """Names in registration order (for tasks: the order a report tells its story in)."""
        return list(self.entries)

    def check(self, name: str) -> str:
        """Return the entry's target, or raise an error naming the closest names."""
        if name in self.entries:
            return self.entries[name]
        close = difflib.get_close_matches(name, self.entries.keys(), n=3, cutoff=0.5)
        hint = f" Did you mean: {', '.join(close)}?" if close else ""
        raise UnknownNameError(
            f"unknown {self.kind} {name!r}.{hint} Known {self.kind}s: {', '.join(self.names())} "
            f"(`toxbench ls {self.kind}s` lists them)."
        )

    def get(self, name: str) -> Any:
        """Import and return the entry registered under ``name``."""
        return import_object(self.check(name))


SCORERS = Registry("scorer")
SCORERS.register("lexicon", "harness.scorers.lexicon:LexiconScorer", "the organism's exact scorer")
SCORERS.register("detoxify", "harness.scorers.detoxify:DetoxifyScorer", "Detoxify 'original' (public)")
SCORERS.register("detoxify-original", "harness.scorers.detoxify:DetoxifyScorer", "Detoxify 'original'")
SCORERS.register("detoxify-unbiased", "harness.scorers.detoxify:DetoxifyScorer", "Detoxify 'unbiased'")
SCORERS.register(
    "detoxify-multilingual", "harness.scorers.detoxify:DetoxifyScorer", "Detoxify 'multilingual'"
)

BACKENDS = Registry("backend")
BACKENDS.register("hf", "harness.backends.hf:HFBackend", "transformers, batched and length-sorted")
BACKENDS.register("vllm", "harness.backends.vllm:VLLMBackend", "vLLM engine (optional extra)")

TASKS = Registry("task")
TASKS.register("elicitation", "tasks.elicitation:ElicitationTask", "toxicity, perplexity, F1")
TASKS.register("attribution", "tasks.attribution:AttributionTask", "probe-direction neuron groups")
TASKS.register("ablation", "tasks.ablation:AblationTask", "can surgery on the base emulate alignment")
TASKS.register("unalignment", "tasks.unalignment:UnalignmentTask", "how cheaply alignment is undone")
