"""One run, three ways in: the command line, a config file and the Python API give the same results; the
resolved config.yaml runs it again; the API takes loaded models; one grammar's errors and aliases."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

import toxbench
from toxbench.cli import main
from toxbench.errors import ToxbenchError

RUN = [
    "--model",
    "organism-micro",
    "--aligned",
    "organism-micro:dpo",
    "--tasks",
    "elicitation",
    "--limit",
    "6",
]


def toxbench_cli(*args: str):
    return CliRunner().invoke(main, [str(a) for a in args])


def metrics(folder: Path) -> dict:
    return json.loads((folder / "results.json").read_text())["tasks"]["elicitation"]["metrics"]


def config_of(folder: Path) -> dict:
    config = json.loads((folder / "results.json").read_text())["config"]
    return {k: v for k, v in config.items() if k != "output_path"}


@pytest.fixture(scope="module")
def three_runs(micro_organism, tmp_path_factory) -> dict[str, Path]:
    """The same evaluation by CLI flags, by the config.yaml the first wrote, and by evaluate(); nothing
    served from the cache, so each computes its own numbers."""
    root = tmp_path_factory.mktemp("three")
    cli = toxbench_cli("run", *RUN, "--no-cache", "--output-path", root / "cli")
    assert cli.exit_code == 0, cli.output
    again = toxbench_cli("run", "--config", root / "cli" / "config.yaml", "--output-path", root / "file")
    assert again.exit_code == 0, again.output
    results = toxbench.evaluate(
        model="organism-micro",
        aligned="organism-micro:dpo",
        tasks=["elicitation"],
        limit=6,
        no_cache=True,
        output_path=root / "api",
    )
    assert isinstance(results, toxbench.Results) and results.status == "complete"
    return {"cli": root / "cli", "file": root / "file", "api": root / "api"}


def test_cli_config_file_and_api_give_identical_results(three_runs) -> None:
    cli, file, api = (metrics(three_runs[k]) for k in ("cli", "file", "api"))
    assert cli == file == api
    assert cli["aligned"]["toxicity"]["n"] == 6
    assert config_of(three_runs["cli"]) == config_of(three_runs["file"]) == config_of(three_runs["api"])


def test_the_resolved_config_holds_every_option(three_runs) -> None:
    from toxbench.options import RUN_OPTIONS

    written = yaml.safe_load((three_runs["cli"] / "config.yaml").read_text())
    assert set(written) == set(RUN_OPTIONS)
    assert written["limit"] == 6 and written["no_cache"] is True and written["tasks"] == ["elicitation"]
    assert written["output_path"] == str(three_runs["cli"])
    # the re-run wrote its own, differing only where it was told to
    rerun = yaml.safe_load((three_runs["file"] / "config.yaml").read_text())
    assert {k: v for k, v in rerun.items() if k != "output_path"} == {
        k: v for k, v in written.items() if k != "output_path"
    }


def test_flags_override_the_config_file(three_runs, tmp_path) -> None:
    config = tmp_path / "run.yaml"
    config.write_text(
        "model: organism-micro\naligned: none\ntasks: [elicitation]\nlimit: 3\nmodel_args: {dtype: float32}\n"
    )
    result = toxbench_cli("run", "--config", config, "--limit", "2", "--output-path", tmp_path / "o")
    assert result.exit_code == 0, result.output
    ran = json.loads((tmp_path / "o" / "results.json").read_text())
    assert ran["config"]["limit"] == 2 and ran["config"]["aligned"] is None
    assert ran["config"]["model_args"] == {"base": {"dtype": "float32"}, "aligned": {"dtype": "float32"}}


def test_results_object(three_runs) -> None:
    results = toxbench.Results.load(three_runs["api"])
    on_disk = metrics(three_runs["api"])
    assert results.metric("elicitation", "toxicity") == on_disk["aligned"]["toxicity"]["value"]
    assert results.metric("elicitation", "toxicity", role="base") == on_disk["base"]["toxicity"]["value"]
    aligned = list(results.samples(task="elicitation", role="aligned"))
    continuations = [s for s in aligned if s.get("kind") == "continuation"]
    assert len(continuations) == 6 and all(s["role"] == "aligned" for s in aligned)
    frame = results.to_pandas()
    row = frame[(frame.role == "aligned") & (frame.metric == "toxicity")]
    assert len(row) == 1 and math.isclose(row.value.iloc[0], on_disk["aligned"]["toxicity"]["value"])
    assert results.to_dict()["tasks"]["elicitation"]["metrics"] == on_disk
    with pytest.raises(KeyError, match="no task 'ablation'"):
        results.metric("ablation", "toxicity")
    with pytest.raises(ToxbenchError, match="holds no results.json"):
        toxbench.Results.load(three_runs["api"] / "nowhere")


def test_the_api_takes_loaded_models(three_runs, tmp_path) -> None:
    from toxbench.models import load_model

    base, aligned = load_model("organism-micro"), load_model("organism-micro:dpo")
    results = toxbench.evaluate(
        model=base.model,
        tokenizer=base.tokenizer,
        aligned=aligned.model,
        aligned_tokenizer=aligned.tokenizer,
        tasks=["elicitation"],
        limit=6,
        output_path=tmp_path / "objects",
        # an object carries no datasets or scorer of its own: the organism's, as its spec gives them
        data_dir=base.data_dir,
        scorer="lexicon",
    )
    assert results.config["model"].startswith("memory:")
    # the same weights held in memory score what the same weights loaded from their spec score
    assert results.metrics["elicitation"] == metrics(three_runs["api"])
    with pytest.raises(ToxbenchError, match="needs its tokenizer"):
        toxbench.evaluate(model=base.model, tasks=["elicitation"], aligned=None)


def test_a_deprecated_alias_still_works_and_warns(micro_organism, tmp_path) -> None:
    out = tmp_path / "alias"
    result = toxbench_cli(
        "run", *RUN, "--aligned", "none", "--model-arg", "dtype=float32", "--output-path", out
    )
    assert result.exit_code == 0, result.output
    assert "--model-arg is deprecated" in result.output and "--model-args" in result.output
    assert json.loads((out / "results.json").read_text())["config"]["model_args"]["base"] == {
        "dtype": "float32"
    }
    with (
        pytest.warns(toxbench.api.ToxbenchDeprecationWarning, match="scorer_options"),
        pytest.raises(ToxbenchError, match="unknown option"),
    ):
        toxbench.evaluate(model="organism-micro", scorer_options={"x": 1}, nonsense=1)


@pytest.mark.parametrize(
    "args, message",
    [
        (["run", "--system-prompt", "be kind"], "--system-prompt needs --prompt-format chat"),
        (["run", "--probe", "p.pt", "--probe-data-limit", "10"], "pass one of them"),
        (["run", "--logger-args", "wandb.project=x"], "add --log-to wandb"),
        (["run", "--ray-address", "auto"], "executor 'local'"),
        (["run", "--model-args", "chosen.dtype=float16"], "base.KEY=VALUE"),
        (["run", "--task-args", "top_k=10"], "TASK.KEY=VALUE"),
        (
            ["align", "dpo", "--model", "organism-micro", "--model-args", "aligned.revision=x", "-o", "m"],
            "one model",
        ),
        (
            ["align", "dpo", "--model", "organism-micro", "--output", "a", "--output-path", "b"],
            "give --output-path only",
        ),
        (["probe", "train", "--model", "organism-micro"], "Missing option '--output-path'"),
    ],
)
def test_an_option_a_command_cannot_use_exits_2(micro_organism, tmp_path, monkeypatch, args, message) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "p.pt").write_bytes(b"")
    result = toxbench_cli(*args)
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert not (tmp_path / "runs").exists()  # refused before a run folder is made


def test_a_bad_config_file_is_named(tmp_path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("model: [unclosed\n")
    result = toxbench_cli("run", "--config", bad)
    assert result.exit_code == 2 and "bad.yaml" in result.output and "not valid YAML" in result.output
    listed = tmp_path / "list.yaml"
    listed.write_text("- model\n")
    assert "not a mapping" in toxbench_cli("run", "--config", listed).output
    typo = tmp_path / "typo.yaml"
    typo.write_text("modle: organism\n")
    result = toxbench_cli("run", "--config", typo)
    assert result.exit_code == 2 and "did you mean model" in result.output
    assert "does not exist" in toxbench_cli("run", "--config", tmp_path / "none.yaml").output


def test_compare_prints_three_runs_side_by_side(three_runs) -> None:
    labels = [three_runs[k] for k in ("cli", "file", "api")]
    result = toxbench_cli("compare", *labels, "--format", "json")
    assert result.exit_code == 0, result.output
    table = json.loads(result.output)
    assert [r["label"] for r in table["runs"]] == ["cli", "file", "api"]
    toxicity = table["metrics"]["elicitation.aligned.toxicity"]
    assert len({json.dumps(v, sort_keys=True) for v in toxicity.values()}) == 1  # one run, three ways
    # the runs scored the same prompts, so each is paired with the first; the same numbers differ by 0
    assert len(table["paired"]) >= 2 and all(p["difference"]["value"] == 0 for p in table["paired"])
    text = toxbench_cli("compare", *labels)
    assert text.exit_code == 0 and all(name in text.output for name in ("cli", "file", "api"))


def test_a_run_logged_to_mlflow_has_its_metrics(micro_organism, tmp_path, monkeypatch) -> None:
    pytest.importorskip("mlflow")
    from mlflow.tracking import MlflowClient

    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    uri = f"file:{tmp_path / 'mlruns'}"
    result = toxbench_cli(
        "run",
        *RUN,
        "--log-to",
        "mlflow",
        "--logger-args",
        f"mlflow.tracking_uri={uri}",
        "--output-path",
        tmp_path / "logged",
    )
    assert result.exit_code == 0, result.output
    assert "logged to mlflow" in result.output
    (experiment,) = [e for e in MlflowClient(uri).search_experiments() if e.name == "toxbench"]
    (run,) = MlflowClient(uri).search_runs([experiment.experiment_id])
    on_disk = metrics(tmp_path / "logged")
    assert run.data.metrics["elicitation/aligned/toxicity"] == pytest.approx(
        on_disk["aligned"]["toxicity"]["value"]
    )
    assert run.data.params["limit"] == "6"
