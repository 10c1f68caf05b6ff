"""Every class of bad input gets a named error and exit 2, before any model loads where it can be,
and loses no finished work; one-model runs; interrupted runs write what they have and resume."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest
import torch
from click.testing import CliRunner

from toxbench.cli import main

MICRO = ["--model", "organism-micro", "--aligned", "organism-micro:dpo"]


def toxbench(*args: str):
    return CliRunner().invoke(main, list(args))


def test_unknown_model_fails_before_any_model_loads_or_folder_is_made(micro_organism, tmp_path) -> None:
    out = tmp_path / "out"
    result = toxbench(
        "run", "--model", "organism-micro", "--aligned", "gpt2-mediun", "--output-path", str(out)
    )
    assert result.exit_code == 2 and "Did you mean: gpt2-medium" in result.output
    assert not out.exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--scorer-args", "foo=bar"], "unknown option(s) 'foo' for scorer 'lexicon'"),
        (
            ["--backend-args", "bach_size=3"],
            "unknown option(s) 'bach_size' (did you mean 'batch_size'?) for backend",
        ),
        (["--probe", "/no/such/probe"], "probe '/no/such/probe' not found"),
        (["--tasks", "attribution", "--aligned", "none"], "compare two models: pass --aligned SPEC"),
    ],
)
def test_bad_options_are_refused_up_front(micro_organism, tmp_path, args, message) -> None:
    out = tmp_path / "out"
    result = toxbench("run", *MICRO, *args, "--output-path", str(out))
    assert result.exit_code == 2 and message in result.output, result.output
    assert not out.exists()


def test_unknown_task_option_is_named(micro_organism, tmp_path) -> None:
    from toxbench.errors import ToxbenchError
    from toxbench.runner import RunConfig, run

    with pytest.raises(
        ToxbenchError, match=r"unknown option\(s\) 'top_kk' \(did you mean 'top_k'\?\) for task"
    ):
        run(
            RunConfig(
                model="organism-micro",
                aligned="organism-micro:dpo",
                tasks=["ablation"],
                task_options={"ablation": {"top_kk": [2]}},
                output_path=tmp_path / "o",
            )
        )


def test_corrupt_weights_and_a_model_that_is_not_a_causal_lm(micro_organism, tmp_path) -> None:
    corrupt = tmp_path / "corrupt"
    shutil.copytree(micro_organism.base_dir, corrupt)
    weights = corrupt / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    result = toxbench(
        "run",
        "--model",
        str(corrupt),
        "--aligned",
        "none",
        "--tasks",
        "elicitation",
        "--scorer",
        "lexicon",
        "--output-path",
        str(tmp_path / "o1"),
    )
    assert result.exit_code == 2 and "corrupt or truncated" in result.output and str(corrupt) in result.output

    from transformers import DistilBertConfig, DistilBertModel

    encoder = tmp_path / "encoder"
    DistilBertModel(
        DistilBertConfig(dim=32, n_layers=1, n_heads=2, hidden_dim=64, vocab_size=100)
    ).save_pretrained(encoder)
    shutil.copy(micro_organism.base_dir / "tokenizer.json", encoder / "tokenizer.json")
    result = toxbench(
        "run",
        "--model",
        str(encoder),
        "--aligned",
        "none",
        "--tasks",
        "elicitation",
        "--scorer",
        "lexicon",
        "--output-path",
        str(tmp_path / "o2"),
    )
    assert result.exit_code == 2 and "'distilbert' model, not a causal language model" in result.output


def test_a_probe_of_the_wrong_width_is_refused_before_any_task(micro_organism, tmp_path) -> None:
    torch.save(torch.randn(7), tmp_path / "probe.pt")
    out = tmp_path / "out"
    result = toxbench(
        "run",
        *MICRO,
        "--tasks",
        "attribution",
        "--limit",
        "4",
        "--probe",
        str(tmp_path / "probe.pt"),
        "--output-path",
        str(out),
    )
    assert result.exit_code == 2 and "has width 7 but the residual stream of model" in result.output
    assert not (out / "results.json").exists()


def test_an_output_folder_of_another_run_is_refused_the_same_run_resumes(micro_organism, tmp_path) -> None:
    out = str(tmp_path / "out")
    first = toxbench("run", *MICRO, "--tasks", "elicitation", "--limit", "4", "--output-path", out)
    assert first.exit_code == 0, first.output
    again = toxbench("run", *MICRO, "--tasks", "elicitation", "--limit", "4", "--output-path", out)
    assert again.exit_code == 0, again.output
    other = toxbench("run", *MICRO, "--tasks", "elicitation", "--limit", "5", "--output-path", out)
    assert other.exit_code == 2 and "already holds the results of another run" in other.output
    assert json.loads((tmp_path / "out" / "results.json").read_text())["config"]["limit"] == 4  # nothing lost
    forced = toxbench(
        "run", *MICRO, "--tasks", "elicitation", "--limit", "5", "--output-path", out, "--overwrite"
    )
    assert forced.exit_code == 0, forced.output


def test_one_model_runs(micro_organism, tmp_path) -> None:
    only = toxbench(
        "run",
        "--model",
        "organism-micro",
        "--aligned",
        "none",
        "--tasks",
        "elicitation",
        "--limit",
        "4",
        "--output-path",
        str(tmp_path / "one"),
    )
    assert only.exit_code == 0, only.output
    results = json.loads((tmp_path / "one" / "results.json").read_text())
    assert (
        list(results["models"]) == ["base"] and "difference" not in results["tasks"]["elicitation"]["metrics"]
    )
    every = toxbench(
        "run",
        "--model",
        "organism-micro",
        "--aligned",
        "none",
        "--limit",
        "4",
        "--output-path",
        str(tmp_path / "all"),
    )
    assert every.exit_code == 0, every.output
    results = json.loads((tmp_path / "all" / "results.json").read_text())
    assert results["status"] == "complete" and results["tasks"]["elicitation"]["status"] == "ok"
    assert {results["tasks"][t]["status"] for t in ("attribution", "ablation", "unalignment")} == {"skipped"}
    assert "## attribution: skipped" in (tmp_path / "all" / "report.md").read_text()


@pytest.mark.slow  # a full run, killed and resumed: make test-all
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_an_interrupted_run_writes_its_finished_tasks_and_resumes(micro_organism, tmp_path, sig) -> None:
    out = tmp_path / "out"
    cmd = [
        sys.executable,
        "-m",
        "toxbench.cli",
        "run",
        *MICRO,
        "--tasks",
        "elicitation,attribution,ablation",
        "--limit",
        "30",
        "--output-path",
        str(out),
        "--no-cache",
    ]
    env = {**os.environ, "TOXBENCH_PROGRESS": "0"}
    proc = subprocess.Popen(
        cmd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # A shell without job control starts background jobs with SIGINT ignored, and Python keeps an
        # ignored SIGINT: give the run the default disposition, as a terminal would.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    deadline = time.monotonic() + 600  # a bound on the wait, not a measurement
    while time.monotonic() < deadline and proc.poll() is None:
        path = out / "results.json"
        if path.is_file() and "attribution" in json.loads(path.read_text() or "{}").get("tasks", {}):
            break
        time.sleep(0.2)
    assert proc.poll() is None, proc.communicate()
    proc.send_signal(sig)
    _, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 130, stderr
    assert "run the same command again to resume" in stderr
    results = json.loads((out / "results.json").read_text())
    assert results["status"] == "interrupted"
    assert results["tasks"]["elicitation"]["status"] == "ok"
    assert results["tasks"]["ablation"]["status"] == "interrupted"
    done = subprocess.run(
        cmd, env=env, capture_output=True, text=True
    )  # the same config: allowed, it resumes
    assert done.returncode == 0, done.stderr
    assert json.loads((out / "results.json").read_text())["status"] == "complete"
