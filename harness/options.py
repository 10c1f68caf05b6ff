"""A run's options: one table of names, defaults and parsers, shared by the command line, config
files and the Python API.

The three ways to start a run meet here. ``toxbench run --model X --limit 50``, a config file
holding ``model: X`` and ``limit: 50``, and ``toxbench.evaluate(model="X", limit=50)`` each give
this module a *layer* of options; ``resolve`` checks every layer against ``RUN_OPTIONS`` (an
unknown name gets the closest known ones), parses it, and merges the layers over the defaults;
``to_run_config`` turns the result into the ``RunConfig`` the runner takes, applying the preset
and the perplexity window on the way. So the same options give the same run, whichever way
they came in, and the resolved options (written beside the results as ``config.yaml``) start
it again.

Names are the command line's flags with ``_`` for ``-`` (``--output-path`` is ``output_path``).
Options that pass ``KEY=VALUE`` arguments to a component (``model_args``, ``scorer_args``,
``backend_args``, ``executor_args``, ``task_args``, ``logger_args``, ``gen_kwargs``) are parsed
alike from the command line: pairs separated by commas or given one per flag, each value read as
a number, boolean, ``none``, list or dict where it reads as one (``top_k=[10,20]``), else as the
text itself. A config file or an API call may give them as mappings instead.

Old spellings are kept as deprecated aliases (``DEPRECATED``): they still work, and say what to
use instead.
"""

from __future__ import annotations

import ast
import difflib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from toxbench.errors import ToxbenchError


class OptionError(ToxbenchError):
    """An option that is unknown, malformed, or that this run cannot use."""


# -- KEY=VALUE -------------------------------------------------------------------------------
_WORDS = {"true": True, "false": False, "none": None, "null": None}


def parse_value(text: str) -> Any:
    """One command-line value: a Python literal (number, list, dict, quoted text), true/false,
    none/null, or else the text as it is."""
    word = text.strip().lower()
    if word in _WORDS:
        return _WORDS[word]
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        return text


def split_pairs(text: str) -> list[str]:
    """``a=1,b=[1,2],c='x,y'`` -> ``["a=1", "b=[1,2]", "c='x,y'"]``: commas inside brackets or
    quotes belong to the value."""
    parts, depth, quote, start = [], 0, "", 0
    for i, ch in enumerate(text):
        if quote:
            quote = "" if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth = max(0, depth - 1)
        elif ch == "," and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    parts.append(text[start:])
    return [p.strip() for p in parts if p.strip()]


def parse_pairs(value: Any, what: str) -> dict[str, Any]:
    """``KEY=VALUE`` pairs from a string, a list of strings (one per flag) or a mapping, as a dict."""
    if value is None:
        return {}
    if isinstance(value, Mapping):
        return {str(k): v for k, v in value.items()}
    items = [value] if isinstance(value, str) else list(value)
    out: dict[str, Any] = {}
    for item in items:
        if not isinstance(item, str):
            raise OptionError(f"{what}: expected KEY=VALUE text or a mapping, got {item!r}")
        for pair in split_pairs(item):
            key, sep, text = pair.partition("=")
            key = key.strip()
            if not sep or not key:
                hint = " (a list is written KEY=[A,B])" if out else ""
                raise OptionError(f"{what}: expected KEY=VALUE, got {pair!r}{hint}")
            out[key] = parse_value(text)
    return out


def scoped_pairs(
    value: Any, what: str, scopes: Iterable[str] | None = None, word: str = "NAME"
) -> dict[str, dict[str, Any]]:
    """``SCOPE.KEY=VALUE`` pairs (``task_args``: ``ablation.top_k=[10]``) as {scope: {key: value}};
    a mapping may also nest them (``{"ablation": {"top_k": [10]}}``)."""
    out: dict[str, dict[str, Any]] = {}
    for key, val in parse_pairs(value, what).items():
        scope, dot, option = key.partition(".")
        if not dot and isinstance(val, Mapping):
            out.setdefault(scope, {}).update({str(k): v for k, v in val.items()})
        elif dot and scope and option:
            out.setdefault(scope, {})[option] = val
        else:
            raise OptionError(f"{what}: expected {word}.KEY=VALUE, got {key}={val!r}")
    if scopes is not None:
        allowed = set(scopes)
        for scope in out:
            if scope not in allowed:
                raise OptionError(f"{what}: {scope!r} is not one of {', '.join(sorted(allowed))}")
    return out


ROLES = ("base", "aligned")


def model_args(value: Any, what: str = "model_args", single: bool = False) -> dict[str, Any]:
    """``KEY=VALUE`` (every model) and ``base.KEY=VALUE`` / ``aligned.KEY=VALUE`` (one model) as
    {role: {key: value}}. ``single``: a command that loads one model, where a role is an error."""
    shared: dict[str, Any] = {}
    roles: dict[str, dict[str, Any]] = {}
    for key, val in parse_pairs(value, what).items():
        role, dot, option = key.partition(".")
        if key in ROLES and isinstance(val, Mapping):
            roles.setdefault(key, {}).update({str(k): v for k, v in val.items()})
        elif dot and role in ROLES and option:
            roles.setdefault(role, {})[option] = val
        elif dot:
            raise OptionError(f"{what}: expected KEY=VALUE or base.KEY=VALUE / aligned.KEY=VALUE, got {key}")
        else:
            shared[key] = val
    if single:
        if roles:
            raise OptionError(
                f"{what}: this command loads one model, so {', '.join(f'{r}.' for r in roles)}KEY=VALUE "
                "has nothing to apply to: pass KEY=VALUE"
            )
        return shared
    return {role: {**shared, **roles.get(role, {})} for role in ROLES if shared or role in roles}


# -- the table ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Option:
    name: str
    default: Any
    kind: str  # text, text?, int?, bool, path?, list, pairs, model_args, scoped, batch_size, aligned, scorers
    minimum: int | None = None


RUN_OPTIONS: dict[str, Option] = {
    o.name: o
    for o in (
        Option("model", "organism", "text"),
        Option("aligned", "auto", "aligned"),  # auto: the base model's registered twin (SPEC:dpo), else none
        Option("tasks", ["all"], "list"),
        Option("protocol", "paper", "text"),
        Option("preset", None, "text?"),
        Option("prompt_format", None, "text?"),
        Option("system_prompt", None, "text?"),
        Option("gen_kwargs", {}, "pairs"),
        Option("prompts", None, "path?"),
        Option("scorer", None, "scorers"),  # one name, or several (the first is the headline)
        Option("scorer_args", {}, "pairs"),
        Option("backend", "hf", "text"),
        Option("backend_args", {}, "pairs"),
        Option("executor", "local", "text"),
        Option("executor_args", {}, "pairs"),
        Option("device", None, "text?"),
        Option("batch_size", "auto", "batch_size"),
        Option("limit", None, "int?", minimum=1),
        Option("probe", None, "path?"),
        Option("probe_data_limit", None, "int?", minimum=2),
        Option("perplexity_window", None, "int?", minimum=2),
        Option("seed", 0, "int"),
        Option("data_dir", None, "path?"),
        Option("output_path", None, "path?"),
        Option("overwrite", False, "bool"),
        Option("no_cache", False, "bool"),
        Option("model_args", {}, "model_args"),
        Option("task_args", {}, "scoped"),
        Option("include_path", [], "paths"),
        Option("log_to", [], "list"),
        Option("logger_args", {}, "scoped"),
        Option("threads", None, "int?", minimum=1),
        Option("verbose", False, "bool"),
    )
}


def _pair_into(option: str, key: str) -> Callable[[Any], tuple[str, Any]]:
    return lambda value: (option, {key: value})


def _same(option: str) -> Callable[[Any], tuple[str, Any]]:
    return lambda value: (option, value)


# old name -> (what to use instead, how the value carries over). Old command-line flags and the
# names RunConfig uses for the same settings, as config files and API calls may spell them.
DEPRECATED: dict[str, tuple[str, Callable[[Any], tuple[str, Any]]]] = {
    "model_arg": ("--model-args", _same("model_args")),
    "scorer_option": ("--scorer-args", _same("scorer_args")),
    "scorer_options": ("--scorer-args", _same("scorer_args")),
    "backend_option": ("--backend-args", _same("backend_args")),
    "backend_options": ("--backend-args", _same("backend_args")),
    "executor_option": ("--executor-args", _same("executor_args")),
    "executor_options": ("--executor-args", _same("executor_args")),
    "task_option": ("--task-args", _same("task_args")),
    "task_options": ("--task-args", _same("task_args")),
    "include": ("--include-path", _same("include_path")),
    "prompts_path": ("--prompts", _same("prompts")),
    "probe_path": ("--probe", _same("probe")),
    "dtype": ("--model-args dtype=...", _pair_into("model_args", "dtype")),
    "ray_address": ("--executor-args address=...", _pair_into("executor_args", "address")),
}


def _close(name: str, known: Iterable[str]) -> str:
    matches = difflib.get_close_matches(name, list(known), n=3, cutoff=0.6)
    return f" (did you mean {', '.join(matches)}?)" if matches else ""


def _parse(option: Option, value: Any, where: str) -> Any:
    what = f"{option.name} ({where})"
    kind = option.kind
    if kind in ("pairs",):
        return parse_pairs(value, what)
    if kind == "scoped":
        return scoped_pairs(value, what, word=option.name.split("_")[0].upper())
    if kind == "model_args":
        return model_args(value, what)
    if kind in ("list", "paths"):
        items = value.split(",") if isinstance(value, str) else list(value or [])
        items = [str(x).strip() for x in items if str(x).strip()]
        return [str(Path(x)) for x in items] if kind == "paths" else items
    if kind == "scorers":
        return _scorers(value, what)
    if kind == "bool":
        if isinstance(value, str) and value.strip().lower() in ("true", "false"):
            return value.strip().lower() == "true"
        if not isinstance(value, bool):
            raise OptionError(f"{what}: expected true or false, got {value!r}")
        return value
    if value is None or (isinstance(value, str) and value.strip().lower() in ("none", "null")):
        if kind in ("text", "int"):
            raise OptionError(f"{what}: needs a value")
        return None
    if kind == "aligned":
        return str(value)
    if kind in ("int", "int?"):
        if isinstance(value, bool) or not isinstance(value, (int, str)):
            raise OptionError(f"{what}: expected a whole number, got {value!r}")
        try:
            n = int(value)
        except ValueError:
            raise OptionError(f"{what}: expected a whole number, got {value!r}") from None
        if option.minimum is not None and n < option.minimum:
            raise OptionError(f"{what}: must be at least {option.minimum}, got {n}")
        return n
    if kind == "batch_size":
        if value == "auto":
            return value
        try:
            n = int(value)
        except (TypeError, ValueError):
            n = 0
        if isinstance(value, bool) or n < 1:
            raise OptionError(f"{what}: expected a positive integer or 'auto', got {value!r}")
        return n
    if kind == "path?":
        return str(Path(value))
    return str(value)


def _scorers(value: Any, what: str) -> str | list[str] | None:
    """``--scorer``: None (the model's own scorer), one entry as text, or several as a list (the first
    is the headline). Each entry is ``NAME`` or ``KEY=NAME`` (``toxbench.scorers.plan``)."""
    from toxbench.scorers.plan import parse_entry, scorer_entries

    if value is None or (isinstance(value, str) and value.strip().lower() in ("", "none", "null")):
        return None
    try:
        entries = scorer_entries(value)
        for entry in entries:
            parse_entry(entry)
    except ToxbenchError as exc:
        raise OptionError(f"{what}: {exc}") from None
    if not entries:
        return None
    return entries[0] if len(entries) == 1 else entries


def _merge(kind: str, old: Any, new: Any) -> Any:
    """A later layer over an earlier one: mappings merge key by key (per role or scope), the rest is replaced."""
    if kind == "pairs":
        return {**old, **new}
    if kind in ("scoped", "model_args"):
        out = {k: dict(v) for k, v in old.items()}
        for scope, values in new.items():
            out.setdefault(scope, {}).update(values)
        return out
    return new


def normalise(
    layer: Mapping[str, Any], where: str, warn: Callable[[str], None] | None = None
) -> dict[str, Any]:
    """One layer's options under their canonical names, parsed; deprecated names carried over with a warning."""
    out: dict[str, Any] = {}
    for raw, value in layer.items():
        name = str(raw).replace("-", "_")
        if name in DEPRECATED:
            instead, carry = DEPRECATED[name]
            if warn is not None:
                flag = "--" + name.replace("_", "-")
                warn(f"{flag} ({name}) is deprecated and will be removed: use {instead}")
            name, value = carry(value)
        if name not in RUN_OPTIONS:
            raise OptionError(f"unknown option {raw!r} in {where}{_close(name, RUN_OPTIONS)}")
        option = RUN_OPTIONS[name]
        parsed = _parse(option, value, where)
        out[name] = _merge(option.kind, out[name], parsed) if name in out else parsed
    return out


def defaults() -> dict[str, Any]:
    import copy

    return {name: copy.deepcopy(o.default) for name, o in RUN_OPTIONS.items()}


def resolve(
    *layers: tuple[str, Mapping[str, Any]], warn: Callable[[str], None] | None = None
) -> dict[str, Any]:
    """Every run option: the defaults, then each ``(where, options)`` layer in turn (a config
    file, then the command line's flags or the API's arguments)."""
    out = defaults()
    for where, layer in layers:
        parsed = normalise(layer, where, warn)
        # Once a task option, now the run's: every task's perplexity is measured in one window.
        window = parsed.get("task_args", {}).get("elicitation", {}).pop("perplexity_window", None)
        if window is not None:
            if warn is not None:
                warn(
                    "task_args elicitation.perplexity_window is deprecated and will be removed: use "
                    "--perplexity-window (it sets every task's window)"
                )
            parsed.setdefault("perplexity_window", _parse(RUN_OPTIONS["perplexity_window"], window, where))
        for name, value in parsed.items():
            kind = RUN_OPTIONS[name].kind
            out[name] = _merge(kind, out[name], value)
    out["task_args"] = {task: v for task, v in out["task_args"].items() if v}
    return out


# -- config files -------------------------------------------------------------------------------
CONFIG_HEADER = (
    "# The resolved options of this run. `toxbench run --config config.yaml` runs it again (flags on\n"
    "# the command line override it); `toxbench.evaluate(config='config.yaml')` does the same.\n"
)


def read_config_file(path: str | Path) -> dict[str, Any]:
    """A YAML (or JSON) mapping of run options, unparsed (``resolve`` checks it)."""
    import yaml

    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise OptionError(f"config file {str(path)!r} does not exist") from None
    except OSError as exc:
        raise OptionError(f"config file {str(path)!r} cannot be read: {exc}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1}" if mark is not None else ""
        raise OptionError(f"config file {str(path)!r} is not valid YAML{at}: fix or remove it") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise OptionError(
            f"config file {str(path)!r} holds a {type(data).__name__}, not a mapping of options "
            "(e.g. `model: organism`)"
        )
    return data


def write_config_file(path: Path, options: Mapping[str, Any]) -> None:
    import yaml

    from toxbench.io import atomic_write_text

    body = yaml.safe_dump(dict(options), sort_keys=False, default_flow_style=False, allow_unicode=True)
    atomic_write_text(path, CONFIG_HEADER + body)


# -- options -> RunConfig ------------------------------------------------------------------------
def default_aligned(model: str) -> str | None:
    """The aligned model a run compares with when none is named: the base model's registered twin
    (``organism`` -> ``organism:dpo``), else none (the base model is evaluated alone), never a model of
    another family."""
    from toxbench.registry import MODELS

    twin = f"{model}:dpo"
    return twin if ":" not in model and twin in MODELS else None


def to_run_config(options: Mapping[str, Any]) -> Any:
    """The ``RunConfig`` that resolved ``options`` describe, preset and perplexity window applied.

    What a run cannot use together is refused here, before any model loads.
    """
    from dataclasses import replace

    from toxbench.config import RunConfig

    o = dict(options)
    if o["probe"] is not None and o["probe_data_limit"] is not None:
        raise OptionError(
            "--probe-data-limit sets how many comments a probe trains on, and --probe gives a trained "
            "one: pass one of them"
        )
    for name in o["logger_args"]:
        if name not in o["log_to"]:
            raise OptionError(f"--logger-args for {name!r}, which is not logged to: add --log-to {name}")
    if o["aligned"] == "auto":
        o["aligned"] = default_aligned(o["model"])
    aligned = o["aligned"]
    config = RunConfig(
        model=o["model"],
        aligned=None if aligned is None or str(aligned).lower() == "none" else aligned,
        tasks=list(o["tasks"]) or ["all"],
        protocol=o["protocol"],
        prompt_format=o["prompt_format"],
        system_prompt=o["system_prompt"],
        gen_kwargs=dict(o["gen_kwargs"]),
        prompts_path=Path(o["prompts"]) if o["prompts"] else None,
        scorer=o["scorer"],
        scorer_options=dict(o["scorer_args"]),
        backend=o["backend"],
        backend_options=dict(o["backend_args"]),
        executor=o["executor"],
        executor_options=dict(o["executor_args"]),
        device=o["device"],
        batch_size=o["batch_size"],
        limit=o["limit"],
        probe_data_limit=o["probe_data_limit"],
        seed=o["seed"],
        output_path=Path(o["output_path"]) if o["output_path"] else None,
        data_dir=Path(o["data_dir"]) if o["data_dir"] else None,
        use_cache=not o["no_cache"],
        probe_path=Path(o["probe"]) if o["probe"] else None,
        overwrite=o["overwrite"],
        task_options={task: dict(v) for task, v in o["task_args"].items()},
        model_args={role: dict(v) for role, v in o["model_args"].items()},
    )
    window = o["perplexity_window"]
    if o["preset"]:
        from toxbench.tasks.presets import get_preset

        config = get_preset(o["preset"]).apply(config)
    if window:
        config = replace(config, fluency=replace(config.fluency, perplexity_window=window))
    config.options = o
    return config
