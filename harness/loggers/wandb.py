"""``--log-to wandb``: a finished run as a Weights & Biases run (``pip install 'toxbench[wandb]'``).

The run's config is the resolved options; its summary holds every metric (``LoggedRun.metrics``:
``elicitation/aligned/toxicity``, ``.../ci_low``, ...), logged once as a step too so that the
workspace charts them; the samples are a ``wandb.Table``; and results.json, report.md,
config.yaml and samples.jsonl are one artifact of type ``toxbench-run``. W&B keeps at most
``wandb.Table.MAX_ROWS`` rows of a logged table: a longer one is logged as
``samples_first_<limit>_of_<n>`` (the summary's ``toxbench/samples`` and
``toxbench/samples_in_table`` say how many), and the artifact's samples.jsonl holds every row.

W&B's own settings apply as usual: ``WANDB_MODE=offline`` (or ``mode=offline``) writes the run to
a local folder for ``wandb sync``, ``WANDB_DIR`` or ``dir=`` says where, ``WANDB_PROJECT`` and
``WANDB_ENTITY`` are overridden only by the options given here.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from toxbench.loggers.base import LoggedRun, Logger, text_list

ARTIFACT_TYPE = "toxbench-run"
TABLE_KEY = "samples"


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(p) for p in re.findall(r"\d+", text)[:3])


def _artifact_name(run_name: str) -> str:
    """An artifact name W&B accepts (letters, digits, ``-``, ``_`` and ``.``) from the run's folder name."""
    return "toxbench-" + (re.sub(r"[^A-Za-z0-9_.-]+", "-", run_name).strip("-.") or "run")


class WandbLogger(Logger):
    """Weights & Biases: config, summary metrics, a samples table and the run's files as an artifact."""

    requires = "wandb"
    extra = "wandb"

    def __init__(
        self,
        project: str | None = "toxbench",
        entity: str | None = None,
        name: str | None = None,
        group: str | None = None,
        tags: list[str] | str | None = None,
        dir: str | None = None,
        mode: str | None = None,
    ) -> None:
        self.project = project
        self.entity = entity
        self.name = name
        self.group = group
        self.tags = text_list(tags) or None
        self.dir = dir
        self.mode = mode

    def _init_kwargs(self, wandb: Any, run: LoggedRun) -> dict[str, Any]:
        kwargs: dict[str, Any] = {
            "project": self.project,
            "entity": self.entity,
            "name": self.name or run.name,
            "group": self.group,
            "tags": self.tags,
            "config": run.config,
            "job_type": "evaluation",
            # Another run may be active in this process (a notebook, a training script): start a
            # separate one and leave that one alone where this wandb can (0.19.10 and later).
            "reinit": "create_new" if _version(wandb.__version__) >= (0, 19, 10) else True,
            # The run is logged after the fact: the console of this process is not its output.
            "settings": wandb.Settings(console="off"),
        }
        if self.dir is not None:
            Path(self.dir).expanduser().mkdir(parents=True, exist_ok=True)
            kwargs["dir"] = str(Path(self.dir).expanduser())
        if self.mode is not None:  # else WANDB_MODE and W&B's own default decide
            kwargs["mode"] = self.mode
        return kwargs

    def log(self, run: LoggedRun) -> str:
        wandb = self.import_library()
        wb_run = wandb.init(**self._init_kwargs(wandb, run))
        try:
            where = self._log(wandb, wb_run, run)
        except BaseException:
            wb_run.finish(exit_code=1)
            raise
        wb_run.finish()
        return where

    def _log(self, wandb: Any, wb_run: Any, run: LoggedRun) -> str:
        metrics = run.metrics()
        step: dict[str, Any] = dict(metrics)
        summary: dict[str, Any] = {"toxbench/status": run.status}
        columns, rows = run.sample_table()
        if columns:
            total, limit = len(rows), int(getattr(wandb.Table, "MAX_ROWS", 10000))
            key = TABLE_KEY
            if total > limit:  # W&B would cut a logged table to its limit without a word: say so
                key, rows = f"{TABLE_KEY}_first_{limit}_of_{total}", rows[:limit]
            summary["toxbench/samples"] = total
            summary["toxbench/samples_in_table"] = len(rows)
            step[key] = wandb.Table(columns=columns, data=rows, allow_mixed_types=True)
        wb_run.log(step)
        wb_run.summary.update({**metrics, **summary})

        artifact = wandb.Artifact(
            _artifact_name(run.name),
            type=ARTIFACT_TYPE,
            description=f"toxbench run folder {run.output_dir.resolve()}",
            metadata={"status": run.status, "output_dir": str(run.output_dir.resolve())},
        )
        for path in run.files():
            artifact.add_file(str(path), name=path.name)
        wb_run.log_artifact(artifact)

        if getattr(wb_run, "disabled", False) or getattr(wb_run.settings, "mode", None) == "disabled":
            return "nowhere: W&B is disabled (WANDB_MODE=disabled)"
        url = wb_run.url
        if url:
            return str(url)
        sync_dir = getattr(wb_run.settings, "sync_dir", None)
        if not sync_dir:
            sync_dir = str(Path(wb_run.dir).parent)
        return str(sync_dir)
