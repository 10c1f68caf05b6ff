"""Loggers (harness/loggers): a finished run's folder read back, sent to W&B offline and to an MLflow
file store, and read back from what each wrote; unknown names and misplaced options refused."""

from __future__ import annotations

import json
import math
import struct
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from results_fixture import make_results

from toxbench.errors import ToxbenchError, UnknownNameError
from toxbench.loggers import LoggedRun, Logger, check_loggers, log_run
from toxbench.loggers.mlflow import metric_names
from toxbench.registry import LOGGERS, register_logger

CONFIG = {
    "model": "organism-micro",
    "aligned": "organism-micro:dpo",
    "limit": 30,
    "fluency": {"perplexity_window": 1024, "bos": "each_window"},
    "task_args": {"ablation": {"alphas": [1.0, 2.0]}},
    "system_prompt": "x" * 7000,  # longer than MLflow keeps of a param
    "model_args": {},
}
SAMPLES = [
    {"task": "elicitation", "role": r, "kind": "continuation", "prompt_index": i, "score": s, "text": f"t{i}"}
    for r, scores in (("base", [0.5, 0.9, None]), ("aligned", [0.1, 0.2, 0.0]))
    for i, s in enumerate(scores)
] + [
    {
        "task": "elicitation",
        "role": "base",
        "kind": "perplexity_window",
        "index": 0,
        "nll": 3.5,
        "tokens": [1, 2],
    }
]


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    """A finished run's folder: results.json in the real shape (with a null and a NaN metric),
    samples.jsonl, report.md and config.yaml."""
    results = make_results(0.15, base_toxicity=0.55, robustness=None)
    elicitation = results["tasks"]["elicitation"]["metrics"]
    elicitation["aligned"]["f1"] = None  # a metric the task could not compute
    elicitation["base"]["f1"]["value"] = float("nan")  # json writes NaN; it must not become a number
    elicitation["base"]["f1"]["ci_low"] = elicitation["base"]["f1"]["ci_high"] = float("nan")
    elicitation["aligned"]["toxic_share"]["ci_low"] = None  # no interval: the value alone
    folder = tmp_path / "my-run"
    folder.mkdir()
    (folder / "results.json").write_text(json.dumps(results, indent=2))
    (folder / "samples.jsonl").write_text("".join(json.dumps(s) + "\n" for s in SAMPLES))
    (folder / "report.md").write_text("# toxbench report\n\nall good\n")
    (folder / "config.yaml").write_text("# the resolved options\n" + yaml.safe_dump(CONFIG, sort_keys=False))
    return folder


def test_metrics_are_flattened_by_path_and_a_missing_metric_is_left_out_not_zeroed(run_dir: Path) -> None:
    run = LoggedRun.from_output(run_dir)
    metrics = run.metrics()
    assert metrics["elicitation/aligned/toxicity"] == pytest.approx(0.15)
    assert metrics["elicitation/aligned/toxicity/ci_low"] == pytest.approx(0.13)
    assert metrics["elicitation/aligned/toxicity/ci_high"] == pytest.approx(0.17)
    assert metrics["elicitation/difference/toxicity"] == pytest.approx(-0.4)
    assert metrics["ablation/best_emulation_ratio"] == pytest.approx(0.4)
    assert metrics["attribution/groups/TP-/share"] == pytest.approx(0.5)
    assert metrics["attribution/groups/TN+/n_neurons"] == 3
    assert (
        "elicitation/aligned/toxic_share" in metrics
        and "elicitation/aligned/toxic_share/ci_low" not in metrics
    )
    for gone in (
        "elicitation/aligned/f1",
        "elicitation/base/f1",
        "elicitation/base/f1/ci_low",
        "unalignment/robustness",
    ):
        assert not any(name == gone or name.startswith(gone + "/") for name in metrics), gone
    assert all(isinstance(v, float) and math.isfinite(v) for v in metrics.values())
    assert not any("best_variant" in name or name.endswith("/n") for name in metrics)  # text and counts


def test_a_run_is_read_with_its_resolved_options_and_files(run_dir: Path) -> None:
    run = LoggedRun.from_output(run_dir / "results.json")  # the file names its folder too
    assert run.output_dir == run_dir and run.name == "my-run" and run.status == "complete"
    assert run.config == CONFIG  # config.yaml, not the results' own config
    assert run.report_path == run_dir / "report.md"
    assert [p.name for p in run.files()] == ["results.json", "report.md", "config.yaml", "samples.jsonl"]
    assert list(run.samples()) == SAMPLES
    columns, rows = run.sample_table()
    assert columns[:6] == ["task", "role", "kind", "prompt_index", "score", "text"] and "nll" in columns
    assert rows[-1][columns.index("tokens")] == "[1, 2]" and rows[0][columns.index("nll")] is None
    (run_dir / "config.yaml").unlink()
    assert LoggedRun.from_output(run_dir).config["model"] == "organism-micro"  # from results.json


def test_a_folder_without_results_or_with_broken_results_is_refused_naming_it(tmp_path: Path) -> None:
    empty = tmp_path / "not-a-run"
    empty.mkdir()
    with pytest.raises(ToxbenchError, match="no results.json") as err:
        LoggedRun.from_output(empty)
    assert str(empty) in str(err.value)
    with pytest.raises(ToxbenchError, match="not-a-run"):
        log_run(["mlflow"], {}, empty)  # before any tracker is imported or started
    (empty / "results.json").write_text('{"status": "complete", ')
    with pytest.raises(ToxbenchError, match="not valid JSON") as err:
        LoggedRun.from_output(empty)
    assert str(empty) in str(err.value)


def test_unknown_loggers_and_options_are_refused_before_a_run() -> None:
    with pytest.raises(UnknownNameError, match="Did you mean: wandb"):
        check_loggers(["wandbb"], {})
    with pytest.raises(ToxbenchError, match="add `--log-to mlflow`"):
        check_loggers(["wandb"], {"mlflow": {"experiment": "x"}})
    with pytest.raises(ToxbenchError, match="did you mean 'project'"):
        check_loggers(["wandb"], {"wandb": {"projekt": "x"}})
    check_loggers(["wandb", "mlflow"], {"wandb": {"project": "p"}, "mlflow": {"experiment": "e"}})


def test_a_missing_library_says_which_extra_to_install(
    run_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from toxbench.loggers.wandb import WandbLogger

    monkeypatch.setitem(sys.modules, "wandb", None)  # as if it were not installed
    with pytest.raises(ToxbenchError, match=r"pip install 'toxbench\[wandb\]'"):
        check_loggers(["wandb"], {})
    with pytest.raises(ToxbenchError, match=r"pip install 'toxbench\[wandb\]'"):
        WandbLogger().log(LoggedRun.from_output(run_dir))


def test_a_plugin_logger_is_registered_and_given_its_options(run_dir: Path) -> None:
    seen: dict[str, Any] = {}

    @register_logger("memory", description="keeps runs in a dict")
    class MemoryLogger(Logger):
        def __init__(self, where: str = "here") -> None:
            self.where = where

        def log(self, run: LoggedRun) -> str:
            seen.update(run.metrics())
            return self.where

    assert LOGGERS.descriptions["memory"] == "keeps runs in a dict"
    assert log_run(["memory"], {"memory": {"where": "there"}}, run_dir) == {"memory": "there"}
    assert seen["elicitation/base/toxicity"] == pytest.approx(0.55)


# -- W&B, offline ------------------------------------------------------------------------------
def _wandb_records(path: Path) -> list[Any]:
    """The records of an offline run's .wandb file: W&B's transaction log, in LevelDB's log format
    (a 7-byte file header, then 32 KiB blocks of chunks, each with a 7-byte header: CRC32, length,
    type 1 full / 2 first / 3 middle / 4 last), each record a protobuf ``Record``."""
    from wandb.proto import wandb_internal_pb2

    data = path.read_bytes()
    ident, magic, _version = struct.unpack("<4sHB", data[:7])
    assert (ident, magic) == (b":W&B", 0xBEE1), "not a W&B transaction log"
    block, pos, pending, records = 32768, 7, b"", []
    while pos + 7 <= len(data):
        left = block - pos % block
        if left < 7:  # the rest of a block too short for a header is padding
            pos += left
            continue
        _crc, length, kind = struct.unpack("<IHB", data[pos : pos + 7])
        if kind == 0:  # zero padding at the end of a block
            pos += left
            continue
        pending += data[pos + 7 : pos + 7 + length]
        pos += 7 + length
        if kind in (1, 4):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending)
            records.append(record)
            pending = b""
    return records


def _wandb_summary(records: list[Any]) -> dict[str, Any]:
    """The run's summary as its summary records left it (top-level keys only)."""
    summary: dict[str, Any] = {}
    for record in records:
        if record.WhichOneof("record_type") == "summary":
            for item in record.summary.update:
                key = item.key or ("/".join(item.nested_key) if len(item.nested_key) == 1 else None)
                if key:
                    summary[key] = json.loads(item.value_json)
    return summary


def test_wandb_offline_records_config_metrics_samples_and_files(
    run_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    wandb = pytest.importorskip("wandb")
    for var, value in {
        "WANDB_MODE": "offline",
        "WANDB_SILENT": "true",
        "WANDB_DIR": str(tmp_path / "wandb-dir"),
        "WANDB_CONFIG_DIR": str(tmp_path / "wandb-config"),
        "WANDB_CACHE_DIR": str(tmp_path / "wandb-cache"),
        "WANDB_DATA_DIR": str(tmp_path / "wandb-data"),
    }.items():
        monkeypatch.setenv(var, value)
    (tmp_path / "wandb-dir").mkdir()
    try:
        where = log_run(["wandb"], {"wandb": {"project": "tests", "tags": "[unit,offline]"}}, run_dir)[
            "wandb"
        ]
    finally:
        wandb.teardown()
    folder = Path(where)
    assert folder.is_dir() and folder.name.startswith("offline-run-")
    assert folder.parent == tmp_path / "wandb-dir" / "wandb"  # WANDB_DIR was honoured, and WANDB_MODE
    records = _wandb_records(next(folder.glob("run-*.wandb")))

    metrics = LoggedRun.from_output(run_dir).metrics()
    summary = _wandb_summary(records)
    for name, value in metrics.items():
        assert summary[name] == pytest.approx(value), name
    assert "elicitation/aligned/f1" not in summary and "unalignment/robustness" not in summary
    assert summary["toxbench/samples"] == summary["toxbench/samples_in_table"] == len(SAMPLES)

    (run_record,) = [r.run for r in records if r.WhichOneof("record_type") == "run"]
    assert run_record.display_name == "my-run" and run_record.project == "tests"
    assert list(run_record.tags) == ["unit", "offline"]
    config = {item.key: json.loads(item.value_json) for item in run_record.config.update}
    assert config["model"] == "organism-micro" and config["fluency"]["perplexity_window"] == 1024

    artifacts = [r.artifact for r in records if r.WhichOneof("record_type") == "artifact"]
    (run_files,) = [a for a in artifacts if a.type == "toxbench-run"]
    assert {c.path for c in run_files.manifest.contents} == {
        "results.json",
        "report.md",
        "config.yaml",
        "samples.jsonl",
    }
    (table_file,) = (folder / "files" / "media" / "table").glob("samples_*.table.json")
    table = json.loads(table_file.read_text())
    assert len(table["data"]) == len(SAMPLES)
    assert [row[table["columns"].index("score")] for row in table["data"][:3]] == [0.5, 0.9, None]


# -- MLflow, file store --------------------------------------------------------------------------
def test_mlflow_records_params_metrics_and_artifacts(
    run_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("mlflow")
    from mlflow.tracking import MlflowClient
    from mlflow.utils.validation import MAX_PARAM_VAL_LENGTH

    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    uri = (tmp_path / "mlruns").as_uri()
    where = log_run(["mlflow"], {"mlflow": {"tracking_uri": uri, "experiment": "unit"}}, run_dir)["mlflow"]

    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name("unit")
    (found,) = client.search_runs([experiment.experiment_id])
    run_id = found.info.run_id
    assert where == f"run {run_id} at {uri}"
    got = client.get_run(run_id)
    assert got.info.status == "FINISHED" and got.info.run_name == "my-run"

    metrics = LoggedRun.from_output(run_dir).metrics()
    names = metric_names(metrics)
    assert names["elicitation/aligned/toxicity"] == "elicitation/aligned/toxicity"
    assert names["elicitation/aligned/toxicity/ci_low"] == "elicitation/aligned/toxicity_ci_low"
    assert names["attribution/groups/TN+/share"] == "attribution/groups/TN_/share"
    assert set(got.data.metrics) == set(names.values())
    for name, value in metrics.items():
        assert got.data.metrics[names[name]] == pytest.approx(value), name

    params = got.data.params
    assert params["model"] == "organism-micro" and params["limit"] == "30"
    assert params["fluency.perplexity_window"] == "1024"
    assert params["task_args.ablation.alphas"] == "[1.0, 2.0]" and params["model_args"] == "{}"
    assert len(params["system_prompt"]) == MAX_PARAM_VAL_LENGTH and params["system_prompt"].endswith("...")
    assert got.data.tags["toxbench.aligned"] == "organism-micro:dpo"
    assert "all good" in got.data.tags["mlflow.note.content"]

    artifacts = {a.path for a in client.list_artifacts(run_id)}
    assert {"results.json", "report.md", "config.yaml", "samples.jsonl", "samples.json"} <= artifacts
    renamed = json.loads(
        Path(client.download_artifacts(run_id, "toxbench/metric_names.json", str(tmp_path))).read_text()
    )
    assert renamed["attribution/groups/TN_/share"] == "attribution/groups/TN+/share"


def test_mlflow_file_store_refusal_says_how_to_go_on(
    run_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("mlflow")
    monkeypatch.delenv("MLFLOW_ALLOW_FILE_STORE", raising=False)
    uri = (tmp_path / "refused").as_uri()
    with pytest.raises(ToxbenchError) as err:
        log_run(["mlflow"], {"mlflow": {"tracking_uri": uri}}, run_dir)
    message = str(err.value)
    assert "MLFLOW_ALLOW_FILE_STORE=true" in message and "sqlite:///" in message and uri in message
    assert not (tmp_path / "refused").exists()
