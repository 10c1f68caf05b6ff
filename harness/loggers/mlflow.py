"""``--log-to mlflow``: a finished run as an MLflow run (``pip install 'toxbench[mlflow]'``).

Params are the resolved options flattened to dotted keys (``fluency.perplexity_window``), each
value as text, cut to MLflow's length limit with a trailing ``...``. Metrics are
``LoggedRun.metrics``, their names made valid for MLflow the same way every time: a character
MLflow refuses becomes ``_`` (``TP+`` -> ``TP_``), and because MLflow's file store keeps each
metric as a file, an interval end is joined to its metric with ``_`` rather than ``/``
(``elicitation/aligned/toxicity_ci_low``). Where any name changed, the artifact
``toxbench/metric_names.json`` maps MLflow's names back to toxbench's. The run's files are
artifacts, the samples also a table (``samples.json``) when pandas is installed, and report.md
the run's description.

The tracking URI is the ``tracking_uri`` option, else MLflow's own choice (``MLFLOW_TRACKING_URI``,
then its default). MLflow 3 refuses a ``file:`` store unless ``MLFLOW_ALLOW_FILE_STORE=true`` is
set; toxbench never sets it for you, and says how to go on when MLflow refuses.
"""

from __future__ import annotations

import contextlib
import json
import re
import time
from collections.abc import Iterable
from typing import Any

from toxbench.errors import ToxbenchError
from toxbench.loggers.base import BOUNDS, LoggedRun, Logger, text_list

_REFUSED = re.compile(r"[^\w./\- ]")  # MLflow allows letters, digits, _ . / - space (and : off Windows)
DESCRIPTION_TAG = "mlflow.note.content"


def mlflow_name(name: str) -> str:
    """``name`` as MLflow accepts a metric or param key: refused characters become ``_``, and empty,
    ``.`` and ``..`` path parts (which MLflow refuses, its file store resolving them) become ``_``."""
    parts = _REFUSED.sub("_", name).split("/")
    return "/".join("_" if p in ("", ".", "..") else p for p in parts)


def metric_names(names: Iterable[str]) -> dict[str, str]:
    """toxbench metric name -> the name it is logged under in MLflow (``mlflow_name``; an interval end
    joined with ``_``; a clash after that gets ``_2``, ``_3``)."""
    names = list(names)
    present = set(names)
    out: dict[str, str] = {}
    taken: set[str] = set()
    for name in names:
        head, _, last = name.rpartition("/")
        logged = mlflow_name(f"{head}_{last}" if last in BOUNDS and head in present else name)
        out[name] = _unused(logged, taken)
    return out


def _unused(name: str, taken: set[str]) -> str:
    """``name``, or ``name_2``, ``name_3``, ... if it is taken; the result is then taken."""
    candidate, i = name, 1
    while candidate in taken:
        i += 1
        candidate = f"{name}_{i}"
    taken.add(candidate)
    return candidate


def _max_length(name: str, fallback: int) -> int:
    try:
        from mlflow.utils import validation
    except ImportError:
        return fallback
    return int(getattr(validation, name, fallback))


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def flatten_params(config: dict[str, Any]) -> dict[str, str]:
    """The resolved options as ``{dotted.key: text}``: mappings are walked into (an empty one is
    ``{}``), text stays as it is, anything else is its JSON (``null``, ``true``, ``[1, 2]``)."""
    out: dict[str, str] = {}

    def walk(node: Any, key: str) -> None:
        if isinstance(node, dict) and node:
            for k, v in node.items():
                walk(v, f"{key}.{k}" if key else str(k))
        elif key:
            out[key] = node if isinstance(node, str) else json.dumps(node, sort_keys=True, default=str)

    walk(config, "")
    return out


def is_file_store(uri: str) -> bool:
    """Whether MLflow reads ``uri`` as its file store (``file:`` or a bare path)."""
    scheme = uri.split(":", 1)[0].lower() if re.match(r"^[A-Za-z][A-Za-z0-9+.-]*:", uri) else ""
    return scheme in ("", "file") or len(scheme) == 1  # one letter: a Windows drive


class MlflowLogger(Logger):
    """MLflow: params from the resolved options, metrics, the run's files as artifacts, a samples table."""

    requires = "mlflow"
    extra = "mlflow"

    def __init__(
        self,
        tracking_uri: str | None = None,
        experiment: str = "toxbench",
        run_name: str | None = None,
        tags: dict[str, Any] | list[str] | str | None = None,
    ) -> None:
        self.tracking_uri = None if tracking_uri is None else str(tracking_uri)
        self.experiment = experiment
        self.run_name = run_name
        self.tags = self._tags(tags)
        self.run_id: str | None = None  # set by log
        self.experiment_id: str | None = None

    @staticmethod
    def _tags(tags: Any) -> dict[str, str]:
        """Tags as {key: text}: a mapping, or items ``key=value`` (a bare ``key`` is ``key=true``)."""
        if isinstance(tags, dict):
            return {str(k): str(v) for k, v in tags.items()}
        out = {}
        for item in text_list(tags):
            key, eq, value = item.partition("=")
            out[key.strip()] = value.strip() if eq else "true"
        return out

    def _refusal(self, exc: Exception, uri: str) -> Exception:
        """MLflow's refusal of a file store as what to do about it; any other error as it is."""
        if "MLFLOW_ALLOW_FILE_STORE" in str(exc) and is_file_store(uri):
            return ToxbenchError(
                f"MLflow refuses to log to the file store {uri!r}: MLflow 3 keeps file stores only for "
                "those who opt in. Either set the environment variable MLFLOW_ALLOW_FILE_STORE=true "
                "(toxbench does not set it for you), or log to a database or a tracking server: "
                "--logger-args mlflow.tracking_uri=sqlite:///mlflow.db, or an http(s):// URI "
                "(MLFLOW_TRACKING_URI works too)"
            )
        return exc

    def _experiment_id(self, client: Any) -> str:
        experiment = client.get_experiment_by_name(self.experiment)
        if experiment is None:
            return str(client.create_experiment(self.experiment))
        if getattr(experiment, "lifecycle_stage", "active") == "deleted":
            raise ToxbenchError(
                f"the MLflow experiment {self.experiment!r} is deleted: restore it (mlflow experiments "
                "restore) or pass another one with --logger-args mlflow.experiment=NAME"
            )
        return str(experiment.experiment_id)

    def _run_tags(self, run: LoggedRun) -> dict[str, str]:
        from toxbench import __version__

        tags = {
            "toxbench.version": __version__,
            "toxbench.status": run.status,
            "toxbench.output_dir": str(run.output_dir.resolve()),
        }
        models = run.results.get("models")
        for role in ("base", "aligned"):
            model = models.get(role) if isinstance(models, dict) else None
            if isinstance(model, dict) and model.get("spec"):
                tags[f"toxbench.{role}"] = str(model["spec"])
        if run.report_path is not None:
            limit = _max_length("MAX_TAG_VAL_LENGTH", 5000)
            note = "\n\n(cut here: the artifact report.md is the whole report)"
            report = run.report_path.read_text(encoding="utf-8")
            tags[DESCRIPTION_TAG] = report if len(report) <= limit else report[: limit - len(note)] + note
        return {**tags, **self.tags}

    def log(self, run: LoggedRun) -> str:
        mlflow = self.import_library()
        from mlflow.exceptions import MlflowException
        from mlflow.tracking import MlflowClient

        uri = self.tracking_uri or str(mlflow.get_tracking_uri())
        try:
            client = MlflowClient(tracking_uri=uri)
            experiment_id = self._experiment_id(client)
            created = client.create_run(
                experiment_id, run_name=self.run_name or run.name, tags=self._run_tags(run)
            )
        except MlflowException as exc:
            raise self._refusal(exc, uri) from exc
        run_id = created.info.run_id
        self.run_id, self.experiment_id = run_id, experiment_id
        try:
            self._log(client, run_id, run)
        except BaseException as exc:
            with contextlib.suppress(Exception):  # the logging error is the one to see
                client.set_terminated(run_id, "FAILED")
            if isinstance(exc, MlflowException):
                raise self._refusal(exc, uri) from exc
            raise
        client.set_terminated(run_id, "FINISHED")
        if uri.startswith(("http://", "https://")):
            return f"{uri.rstrip('/')}/#/experiments/{experiment_id}/runs/{run_id}"
        return f"run {run_id} at {uri}"

    def _log(self, client: Any, run_id: str, run: LoggedRun) -> None:
        from mlflow.entities import Metric, Param

        value_limit = _max_length("MAX_PARAM_VAL_LENGTH", 500)
        key_limit = _max_length("MAX_ENTITY_KEY_LENGTH", 250)
        taken: set[str] = set()
        params = [
            Param(_unused(_cut(mlflow_name(key), key_limit), taken), _cut(value, value_limit))
            for key, value in flatten_params(run.config).items()
        ]
        metrics = run.metrics()
        names = metric_names(metrics)
        now = int(time.time() * 1000)
        client.log_batch(
            run_id,
            metrics=[Metric(names[k], v, now, 0) for k, v in metrics.items()],
            params=params,
        )
        renamed = {logged: name for name, logged in names.items() if logged != name}
        if renamed:
            client.log_dict(run_id, renamed, "toxbench/metric_names.json")
        for path in run.files():
            client.log_artifact(run_id, str(path))
        if run.samples_path is None:
            return
        try:
            import pandas as pd
        except ImportError:
            return  # samples.jsonl is an artifact already; the table view needs pandas
        columns, rows = run.sample_table()
        if columns:
            client.log_table(run_id, pd.DataFrame(rows, columns=columns), "samples.json")
