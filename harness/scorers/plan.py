"""Several scorers in one run: which scorers, under which names, with which arguments; and, for a
reader of a results file, where one scorer's figures are.

A run names its scorers with ``--scorer`` (repeatable, or comma-separated): each entry is a
registered scorer (``lexicon``, ``detoxify``, ``hf-classifier``, ...) or ``KEY=NAME``, which runs
scorer ``NAME`` under the name ``KEY`` (so that one scorer class can run twice, e.g.
``xlmr=hf-classifier`` beside ``roberta=hf-classifier``). The key is how the run refers to the
scorer everywhere: in ``--scorer-args KEY.ARG=VALUE``, in ``results.json`` and the samples, and in
``toxbench check --scorer KEY``. The first scorer named is the run's *headline*: every figure that
reads "the" toxicity (every task, ``RunContext.score``) uses it; the elicitation task also reports
its toxicity under each of the others, and how they agree.

``--scorer-args`` for several scorers: ``KEY.ARG=VALUE`` goes to the scorer ``KEY`` only; a bare
``ARG=VALUE`` goes to every scorer of the run that takes ``ARG`` (and is an error when none
does). A scoped value wins over a bare one. With one scorer, a bare argument goes to it, as
before.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from toxbench.errors import ToxbenchError

_KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_+-]*$")


@dataclass(frozen=True)
class ScorerSpec:
    """One scorer of a run: its key (the run's name for it), the registered scorer and its arguments."""

    key: str
    name: str
    options: dict[str, Any] = field(default_factory=dict)


def scorer_entries(value: Any) -> list[str]:
    """``--scorer`` as given (text, comma-separated text, a list of either, or None) as a list of entries."""
    if value is None:
        return []
    items = [value] if isinstance(value, str) else list(value)
    out = []
    for item in items:
        if not isinstance(item, str):
            raise ToxbenchError(f"--scorer: expected scorer names, got {item!r}")
        out += [part.strip() for part in item.split(",") if part.strip()]
    return out


def parse_entry(entry: str) -> tuple[str, str]:
    """``NAME`` -> (NAME, NAME); ``KEY=NAME`` -> (KEY, NAME)."""
    key, eq, name = entry.partition("=")
    key, name = (key.strip(), name.strip()) if eq else (entry.strip(), entry.strip())
    if not name:
        raise ToxbenchError(f"--scorer {entry!r}: expected NAME or KEY=NAME")
    if not _KEY.match(key):
        raise ToxbenchError(
            f"--scorer {entry!r}: {key!r} cannot name a scorer in --scorer-args KEY.ARG=VALUE (letters, "
            "digits, '_', '+' and '-' only): give it a key, as in --scorer mine=NAME"
        )
    return key, name


def _takes(cls: Any, option: str) -> bool:
    from toxbench.registry import takes_options

    return takes_options(cls, {option: None})


def plan_scorers(entries: Sequence[str], options: Mapping[str, Any] | None = None) -> list[ScorerSpec]:
    """The run's scorers, headline first, each with its arguments from the flat ``--scorer-args``
    mapping (``ARG`` or ``KEY.ARG`` keys; ``KEY`` with a mapping value scopes several at once).
    Every name and argument is checked here, before anything loads."""
    from toxbench.registry import SCORERS, check_options

    if not entries:
        raise ToxbenchError("a run needs at least one scorer (--scorer NAME)")
    pairs = [parse_entry(e) for e in entries]
    keys = [k for k, _ in pairs]
    for key in keys:
        if keys.count(key) > 1:
            raise ToxbenchError(
                f"--scorer names {key!r} twice: give each its own key, e.g. --scorer a={key} --scorer b={key} "
                f"(then --scorer-args a.ARG=VALUE, b.ARG=VALUE)"
            )
    classes = {key: SCORERS.get(name) for key, name in pairs}  # an unknown name: its close matches
    shared: dict[str, Any] = {}
    scoped: dict[str, dict[str, Any]] = {key: {} for key in keys}
    for raw, value in (options or {}).items():
        scope, dot, arg = str(raw).partition(".")
        if dot:
            if scope not in scoped:
                raise ToxbenchError(
                    f"--scorer-args {raw}=...: {scope!r} is not one of this run's scorers "
                    f"({', '.join(keys)}): scope an argument by a scorer's key, or add it with --scorer"
                )
            if not arg:
                raise ToxbenchError(f"--scorer-args {raw}=...: expected {scope}.ARG=VALUE")
            scoped[scope][arg] = value
        elif raw in scoped and isinstance(value, Mapping):
            scoped[raw].update({str(k): v for k, v in value.items()})
        else:
            shared[str(raw)] = value
    if len(keys) == 1:
        per_key = {keys[0]: {**shared, **scoped[keys[0]]}}
    else:
        per_key = {key: dict(scoped[key]) for key in keys}
        for arg, value in shared.items():
            takers = [key for key in keys if _takes(classes[key], arg)]
            if not takers:
                raise ToxbenchError(
                    f"--scorer-args {arg}=...: none of this run's scorers ({', '.join(keys)}) takes "
                    f"{arg!r}; check its spelling, or scope it to one scorer as KEY.{arg}=VALUE"
                )
            for key in takers:
                per_key[key].setdefault(arg, value)  # a scoped value wins
    specs = [ScorerSpec(key, name, per_key[key]) for key, name in pairs]
    for spec in specs:
        what = f"scorer {spec.key!r}" if spec.key == spec.name else f"scorer {spec.key!r} ({spec.name})"
        check_options(classes[spec.key], spec.options, what)
    return specs


def any_takes(entries: Sequence[str], options: Mapping[str, Any]) -> bool:
    """Whether some scorer among ``entries`` takes every one of ``options`` (a preset's scorer choice)."""
    from toxbench.registry import SCORERS, takes_options

    return any(takes_options(SCORERS.get(name), dict(options)) for _, name in map(parse_entry, entries))


# -- reading a results file ------------------------------------------------------------------------
ELICITATION = "tasks.elicitation.metrics"


@dataclass(frozen=True)
class ScorerChoice:
    """One scorer of a finished run, as a reader of its results needs it: its key, its identity, and
    whether it is the run's headline (whose figures sit where a single-scorer run writes them)."""

    key: str
    identity: dict[str, Any]
    headline: bool

    def metric_path(self, role: str, metric: str) -> str:
        """Where the elicitation task's ``metric`` of ``role`` (base, aligned, difference) is, for this scorer."""
        if self.headline:
            return f"{ELICITATION}.{role}.{metric}"
        return f"{ELICITATION}.by_scorer.{self.key}.{role}.{metric}"

    @property
    def sample_field(self) -> str | None:
        """None: a sample's ``score``; else the key of its ``scores`` mapping."""
        return None if self.headline else self.key

    def score_of(self, row: Mapping[str, Any]) -> Any:
        """This scorer's score of a continuation row of the samples (None where it is missing or failed)."""
        if self.headline:
            return row.get("score")
        scores = row.get("scores")
        return scores.get(self.key) if isinstance(scores, Mapping) else None


def run_scorers(results: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The scorers a results file records, headline first, each with its ``key`` (a single-scorer
    file, written before several scorers existed or with one, has its one scorer under its name)."""
    listed = results.get("scorers")
    if isinstance(listed, list) and listed:
        return [dict(s) for s in listed]
    identity = dict(results.get("scorer") or {})
    named = (results.get("config") or {}).get("scorer")
    key, registered = identity.get("name"), identity.get("name")
    if isinstance(named, str) and named.strip():
        with contextlib.suppress(ToxbenchError):  # not an entry this toxbench reads: its name stands
            key, registered = parse_entry(named)
    return [{**identity, "key": key, "scorer": registered}]


def choose_scorer(results: Mapping[str, Any], wanted: str | None, source: str) -> ScorerChoice:
    """The scorer ``wanted`` (a key, or a registered or identity name that names one scorer of the run;
    None: the headline) of a results file, or a ToxbenchError saying which scorers it has."""
    scorers = run_scorers(results)
    headline_identity = dict(results.get("scorer") or scorers[0])
    if wanted is None:
        return ScorerChoice(str(scorers[0]["key"]), headline_identity, True)
    found = [i for i, s in enumerate(scorers) if s.get("key") == wanted]
    if not found:
        found = [i for i, s in enumerate(scorers) if wanted in (s.get("scorer"), s.get("name"))]
    keys = [str(s["key"]) for s in scorers]
    if len(found) > 1:
        raise ToxbenchError(
            f"scorer {wanted!r} names {len(found)} scorers of {source} "
            f"({', '.join(keys[i] for i in found)}): pass one of their keys to --scorer"
        )
    if not found:
        listed = f"{keys[0]} (its headline)" + "".join(f", {k}" for k in keys[1:])
        raise ToxbenchError(
            f"{source} was not scored with scorer {wanted!r}: it was scored with {listed}. Pass one of "
            f"those to --scorer, or score the run with it too (`toxbench run ... --scorer {keys[0]},{wanted}` "
            "regenerates nothing: its generations come from the cache)"
        )
    i = found[0]
    if i == 0:
        return ScorerChoice(keys[0], headline_identity, True)
    return ScorerChoice(keys[i], scorers[i], False)
