"""What a logger is given: a finished run read back from its output folder, and the base class.

A logger runs after ``toxbench run`` has written its folder (results.json, and beside it
samples.jsonl, report.md and config.yaml where the run kept them). It reads that folder through
``LoggedRun`` and sends it somewhere; nothing is logged while the run is going, so a logger can
never slow a run down or change what it measures.
"""

from __future__ import annotations

import importlib.util
import json
import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from toxbench.errors import ToxbenchError

RESULTS_FILE = "results.json"
SAMPLES_FILE = "samples.jsonl"
REPORT_FILE = "report.md"
CONFIG_FILE = "config.yaml"
BOUNDS = ("ci_low", "ci_high")  # the interval ends a metric object may carry, logged beside its value


def _number(x: Any) -> float | None:
    """``x`` as a float when it is a finite number (not a bool), else None."""
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        return None
    x = float(x)
    return x if math.isfinite(x) else None


def _flatten_metrics(node: Any, name: str, out: dict[str, float]) -> None:
    """Add every finite number under ``node`` to ``out``, named by its path joined with ``/``.

    A metric object (a mapping with ``value``) gives its value under ``name`` and its interval
    ends under ``name/ci_low`` and ``name/ci_high``; its count and other fields are not metrics.
    Text, lists, null and NaN give nothing: a metric a task could not compute is left out.
    """
    if isinstance(node, dict):
        if "value" in node:
            for key, suffix in (("value", ""), *((b, "/" + b) for b in BOUNDS)):
                x = _number(node.get(key))
                if x is not None:
                    out[name + suffix] = x
            return
        for key, child in node.items():
            _flatten_metrics(child, f"{name}/{key}", out)
        return
    x = _number(node)
    if x is not None:
        out[name] = x


def json_scalar(x: Any) -> str | int | float | bool | None:
    """A sample's field as a value every table can hold: numbers, text, booleans and null stay as they
    are (NaN and infinities become null); lists and mappings become their JSON text."""
    if x is None or isinstance(x, (bool, int, str)):
        return x
    if isinstance(x, float):
        return x if math.isfinite(x) else None
    return json.dumps(x, sort_keys=True, default=str)


def text_list(value: Any) -> list[str]:
    """A list option as given on the command line or in a file: a list, or text such as ``a,b`` or
    ``[a, b]`` (``--logger-args wandb.tags=[a,b]`` reads as that text)."""
    if value is None:
        return []
    if isinstance(value, (list, tuple, set)):
        return [str(v) for v in value]
    text = str(value).strip()
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
    return [part.strip().strip("'\"") for part in text.split(",") if part.strip().strip("'\"")]


@dataclass
class LoggedRun:
    """A run as its output folder holds it: the parsed results, the resolved options, and the files."""

    output_dir: Path
    results: dict[str, Any]
    config: dict[str, Any]

    @classmethod
    def from_output(cls, output_dir: str | Path) -> LoggedRun:
        """Read a run's folder (or its results.json); a ToxbenchError naming the folder when the
        results are missing or cannot be parsed."""
        from toxbench.check import read_json_object

        path = Path(output_dir)
        if path.name == RESULTS_FILE and path.is_file():
            path = path.parent
        results_path = path / RESULTS_FILE
        if not path.is_dir():
            raise ToxbenchError(f"cannot log the run in {str(path)!r}: there is no such folder")
        if not results_path.is_file():
            raise ToxbenchError(
                f"cannot log the run in {str(path)!r}: the folder has no {RESULTS_FILE} (is it the "
                "output folder of a `toxbench run` that got as far as its first task?)"
            )
        try:
            results = read_json_object(results_path, "results file")
        except ToxbenchError as exc:
            raise ToxbenchError(f"cannot log the run in {str(path)!r}: {exc}") from exc
        return cls(path, results, cls._read_config(path, results))

    @staticmethod
    def _read_config(folder: Path, results: dict[str, Any]) -> dict[str, Any]:
        """The options in config.yaml beside the results, else the config the results record."""
        config_path = folder / CONFIG_FILE
        if not config_path.is_file():
            config = results.get("config")
            return dict(config) if isinstance(config, dict) else {}
        import yaml

        try:
            data = yaml.safe_load(config_path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
            raise ToxbenchError(
                f"cannot log the run in {str(folder)!r}: its {CONFIG_FILE} cannot be read as YAML "
                f"({type(exc).__name__}); fix or remove it"
            ) from exc
        if data is None:
            return {}
        if not isinstance(data, dict):
            raise ToxbenchError(
                f"cannot log the run in {str(folder)!r}: its {CONFIG_FILE} holds a "
                f"{type(data).__name__}, not a mapping of options"
            )
        return data

    @property
    def name(self) -> str:
        """The run's name: its folder's."""
        return self.output_dir.resolve().name

    @property
    def status(self) -> str:
        return str(self.results.get("status", "unknown"))

    @property
    def results_path(self) -> Path:
        return self.output_dir / RESULTS_FILE

    @property
    def report_path(self) -> Path | None:
        """report.md, or None where the run wrote none."""
        path = self.output_dir / REPORT_FILE
        return path if path.is_file() else None

    @property
    def samples_path(self) -> Path | None:
        """samples.jsonl, or None where the run kept none."""
        path = self.output_dir / SAMPLES_FILE
        return path if path.is_file() else None

    @property
    def config_path(self) -> Path | None:
        """config.yaml, or None where the run wrote none."""
        path = self.output_dir / CONFIG_FILE
        return path if path.is_file() else None

    def files(self) -> list[Path]:
        """The run's files that exist: results.json, report.md, config.yaml, samples.jsonl."""
        optional = (self.report_path, self.config_path, self.samples_path)
        return [self.results_path, *(p for p in optional if p is not None)]

    def metrics(self) -> dict[str, float]:
        """Every task's metrics as ``task/path/to/metric`` -> value (e.g. ``elicitation/aligned/toxicity``),
        with ``.../ci_low`` and ``.../ci_high`` where a metric has an interval.

        Only finite numbers: a metric that is null, NaN or missing is left out, never logged as 0.
        """
        out: dict[str, float] = {}
        tasks = self.results.get("tasks")
        if not isinstance(tasks, dict):
            return out
        for task, entry in tasks.items():
            if isinstance(entry, dict) and isinstance(entry.get("metrics"), dict):
                _flatten_metrics(entry["metrics"], str(task), out)
        return out

    def samples(self) -> Iterator[dict[str, Any]]:
        """The rows of samples.jsonl, one at a time (none where the run kept no samples)."""
        from toxbench.io import read_jsonl

        if self.samples_path is not None:
            yield from read_jsonl(self.samples_path)

    def sample_table(self) -> tuple[list[str], list[list[Any]]]:
        """The samples as columns (every key any row has, in the order first seen) and rows of
        table-safe values (``json_scalar``; a key a row lacks is null)."""
        rows = list(self.samples())
        columns: dict[str, None] = {}
        for row in rows:
            columns.update(dict.fromkeys(row))
        names = list(columns)
        return names, [[json_scalar(row.get(c)) for c in names] for row in rows]


class Logger:
    """Sends a finished run somewhere: a subclass takes its options as keyword arguments (checked
    against its signature before the run starts) and implements ``log``.

    ``requires`` names the module the logger imports when it logs and ``extra`` the toxbench
    extra that installs it, so that a missing library is reported before any model loads.
    """

    requires: ClassVar[str | None] = None
    extra: ClassVar[str | None] = None

    @classmethod
    def check_available(cls) -> None:
        """Raise a ToxbenchError saying what to install when ``requires`` cannot be imported (without importing it)."""
        if cls.requires and importlib.util.find_spec(cls.requires) is None:
            raise ToxbenchError(cls.missing_message())

    @classmethod
    def missing_message(cls) -> str:
        extra = cls.extra or cls.requires
        return f"logging to {extra} needs the {cls.requires} package: pip install 'toxbench[{extra}]'"

    @classmethod
    def import_library(cls) -> Any:
        """The module ``requires`` names, imported now; a ToxbenchError saying what to install if it is missing."""
        import importlib

        assert cls.requires, f"{cls.__name__} names no library"
        try:
            return importlib.import_module(cls.requires)
        except ImportError as exc:
            if isinstance(exc, ModuleNotFoundError) and (exc.name or "").split(".")[0] == cls.requires:
                raise ToxbenchError(cls.missing_message()) from exc
            raise ToxbenchError(  # installed, but one of its own imports fails
                f"{cls.requires} is installed but cannot be imported ({exc}): reinstall it with "
                f"pip install --force-reinstall 'toxbench[{cls.extra or cls.requires}]'"
            ) from exc

    def log(self, run: LoggedRun) -> str:
        """Send ``run``; return where it went (a URL, a run id, a folder), for the command line to print."""
        raise NotImplementedError
