"""The Python API: ``toxbench.evaluate(...)`` runs what ``toxbench run`` runs and returns ``Results``.

    import toxbench

    results = toxbench.evaluate(model="organism-micro", aligned="organism-micro:dpo",
                                tasks=["elicitation"], limit=20, output_path="runs/api")
    results.metric("elicitation", "toxicity", role="aligned")
    results.to_pandas()          # one row per task, role and metric (needs pandas)
    for sample in results.samples(task="elicitation", role="aligned"): ...

Options are the command line's, with ``_`` for ``-`` (``toxbench.options.RUN_OPTIONS``);
``config=`` reads a config file first, and the keyword arguments override it, as flags do on the
command line. A model may also be an object: a transformers causal LM with its tokenizer
(``model=hf_model, tokenizer=tok``), evaluated where it is, as it is.
"""

from __future__ import annotations

import contextlib
import json
import math
import warnings
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from toxbench.errors import ToxbenchError


class ToxbenchDeprecationWarning(FutureWarning):
    """An option spelled the old way: it still works, and says what to use instead."""


_UNSET: Any = object()


class Results:
    """A finished (or interrupted, or failed) run: its results.json, with its samples beside it."""

    def __init__(self, data: dict[str, Any], output_path: str | Path) -> None:
        self.data = data
        self.output_path = Path(output_path)
        self.logged: dict[str, str] = {}  # tracker name -> where the run went (``log_to``)

    @classmethod
    def load(cls, path: str | Path) -> Results:
        """The results of a run folder (or its results.json)."""
        path = Path(path)
        file = path / "results.json" if path.is_dir() else path
        try:
            data = json.loads(file.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ToxbenchError(f"{str(path)!r} holds no results.json: not a toxbench run") from None
        except (OSError, ValueError) as exc:
            raise ToxbenchError(
                f"results file {str(file)!r} cannot be read ({exc}): rerun the evaluation"
            ) from None
        if not isinstance(data, dict) or "tasks" not in data:
            raise ToxbenchError(f"results file {str(file)!r} is not a toxbench results file")
        return cls(data, file.parent)

    @property
    def status(self) -> str:
        return str(self.data.get("status"))

    @property
    def config(self) -> dict[str, Any]:
        return dict(self.data.get("config", {}))

    @property
    def tasks(self) -> dict[str, dict[str, Any]]:
        return dict(self.data.get("tasks", {}))

    @property
    def metrics(self) -> dict[str, dict[str, Any]]:
        """{task: its metrics} (per role, and the difference where a task compares two models)."""
        return {name: task.get("metrics", {}) for name, task in self.tasks.items()}

    def metric(
        self, task: str, name: str, role: str | None = "aligned", scorer: str | None = None
    ) -> float | None:
        """One metric's value (``role=None`` for a task's top-level metric); None where it is missing
        or could not be computed, never 0. ``scorer``: by that scorer of a run scored with several (its
        key or name; the elicitation task's toxicity metrics), instead of the headline."""
        if task not in self.tasks:
            raise KeyError(f"this run has no task {task!r}: it ran {', '.join(self.tasks) or 'none'}")
        metrics = self.metrics[task]
        if scorer is not None:
            from toxbench.scorers.plan import choose_scorer

            choice = choose_scorer(self.data, scorer, str(self.output_path))
            if not choice.headline:
                by_scorer = metrics.get("by_scorer", {})
                if choice.key not in by_scorer:
                    raise KeyError(f"the {task} task reports no metrics by scorer {choice.key!r}")
                metrics = by_scorer[choice.key]
        value = metrics.get(role, {}).get(name) if role is not None else metrics.get(name)
        if isinstance(value, Mapping):
            value = value.get("value")
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return None
        return float(value) if isinstance(value, (int, float)) else None

    def samples(self, task: str | None = None, role: str | None = None) -> Iterator[dict[str, Any]]:
        """The run's samples (samples.jsonl), read lazily, optionally of one task and role."""
        from toxbench.io import read_jsonl

        path = self.output_path / "samples.jsonl"
        if not path.is_file():
            return
        for row in read_jsonl(path):
            if (task is None or row.get("task") == task) and (role is None or row.get("role") == role):
                yield row

    def rows(self) -> list[dict[str, Any]]:
        """The metrics as flat rows: task, role, metric, value, ci_low, ci_high, n."""
        rows = []
        for task, metrics in self.metrics.items():
            for role, values in metrics.items():
                if not isinstance(values, Mapping) or not values or not _is_role(values):
                    rows.append(_row(task, None, role, values))
                    continue
                for name, value in values.items():
                    rows.append(_row(task, role, name, value))
        return [r for r in rows if r is not None]

    def to_dict(self) -> dict[str, Any]:
        return json.loads(json.dumps(self.data))

    def to_pandas(self):
        """The metrics as a pandas DataFrame (``rows()``); needs pandas."""
        try:
            import pandas as pd
        except ImportError:
            raise ToxbenchError("Results.to_pandas() needs pandas: pip install pandas") from None
        return pd.DataFrame(
            self.rows(), columns=["task", "role", "metric", "value", "ci_low", "ci_high", "n"]
        )

    def __repr__(self) -> str:
        return f"Results({self.status}, tasks={list(self.tasks)}, output_path={str(self.output_path)!r})"


def _is_role(values: Mapping[str, Any]) -> bool:
    """A role's metrics ({name: metric}) rather than one metric ({value, ci_low, ...})."""
    return "value" not in values


def _row(task: str, role: str | None, name: str, value: Any) -> dict[str, Any] | None:
    if isinstance(value, Mapping) and "value" in value:
        return {
            "task": task,
            "role": role,
            "metric": name,
            "value": value.get("value"),
            "ci_low": value.get("ci_low"),
            "ci_high": value.get("ci_high"),
            "n": value.get("n"),
        }
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return {
            "task": task,
            "role": role,
            "metric": name,
            "value": value,
            "ci_low": None,
            "ci_high": None,
            "n": None,
        }
    return None


def _warn(message: str) -> None:
    warnings.warn(message, ToxbenchDeprecationWarning, stacklevel=4)


def evaluate(
    model: Any = _UNSET,
    aligned: Any = _UNSET,
    tasks: Any = _UNSET,
    *,
    tokenizer: Any = None,
    aligned_tokenizer: Any = None,
    config: str | Path | Mapping[str, Any] | None = None,
    **options: Any,
) -> Results:
    """Evaluate a base model and its aligned version, as ``toxbench run`` does; return the ``Results``.

    ``model`` and ``aligned`` are model specs (``"organism"``, ``"hf:org/name"``, a folder) or loaded
    transformers causal LMs, each with its tokenizer (``tokenizer=``, ``aligned_tokenizer=``);
    ``aligned=None`` evaluates the base model alone. ``tasks`` is a list of task names (default:
    every task). ``config`` is a config file (or a mapping) read first; every other keyword is a
    run option (``toxbench.options.RUN_OPTIONS``) and overrides it.
    """
    from toxbench.models import hold

    given: dict[str, Any] = dict(options)
    for name, value, tok in (("model", model, tokenizer), ("aligned", aligned, aligned_tokenizer)):
        if value is _UNSET:
            if tok is not None:
                raise ToxbenchError(
                    f"a {name.replace('model', 'base')} tokenizer was given without its model"
                )
            continue
        if value is None or isinstance(value, (str, Path)):
            given[name] = None if value is None else str(value)
        else:
            given[name] = hold(value, tok)
    if tasks is not _UNSET:
        given["tasks"] = [tasks] if isinstance(tasks, str) else list(tasks)
    layers: list[tuple[str, Mapping[str, Any]]] = []
    if config is not None:
        from toxbench.options import read_config_file

        layers.append(
            ("the config mapping", config)
            if isinstance(config, Mapping)
            else (str(config), read_config_file(config))
        )
    layers.append(("evaluate()", given))
    from toxbench.options import resolve

    return run_options(resolve(*layers, warn=_warn))


def run_options(options: Mapping[str, Any]) -> Results:
    """Run resolved options (``toxbench.options.resolve``): the one path of the CLI and the API."""
    from toxbench.console import configure_threads
    from toxbench.options import to_run_config
    from toxbench.registry import include

    configure_threads(options["threads"])
    if options["include_path"]:
        include([Path(p) for p in options["include_path"]])
    if options["log_to"]:
        from toxbench.loggers import check_loggers

        check_loggers(list(options["log_to"]), dict(options["logger_args"]))
    run_config = to_run_config(options)
    from toxbench.runner import run

    try:
        data = run(run_config)
    except BaseException:
        with contextlib.suppress(Exception):  # the run's own error is the one to see
            _log(options, run_config.output_path)
        raise
    results = Results(data, run_config.output_path)
    results.logged = _log(options, run_config.output_path)
    return results


def _log(options: Mapping[str, Any], output: Path | None) -> dict[str, str]:
    """Send a run to its trackers: after it finishes, and after it fails or is interrupted, as far as it got."""
    if not options["log_to"] or output is None or not (Path(output) / "results.json").is_file():
        return {}
    from toxbench.loggers import log_run

    return log_run(list(options["log_to"]), dict(options["logger_args"]), Path(output))
