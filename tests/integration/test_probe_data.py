"""The probe's comments are bounded: `--probe-data-limit` caps them, balanced, and the run records
how many it used and where they came from."""

from __future__ import annotations

import json

from click.testing import CliRunner

from toxbench.cli import main


def test_probe_data_limit_caps_the_comments_and_is_recorded(micro_organism, tmp_path) -> None:
    out = tmp_path / "run"
    args = ["run", "--model", "organism-micro", "--aligned", "organism-micro:dpo", "--tasks", "attribution"]
    done = CliRunner().invoke(
        main, [*args, "--limit", "10", "--probe-data-limit", "50", "--output-path", str(out)]
    )
    assert done.exit_code == 0, done.output
    results = json.loads((out / "results.json").read_text())
    comments = results["tasks"]["attribution"]["datasets"]["comments"]
    assert results["config"]["probe_data_limit"] == 50 and comments["n"] == 50
    assert "balanced by label" in comments["source"]
    uncapped = CliRunner().invoke(main, [*args, "--limit", "10", "--output-path", str(tmp_path / "whole")])
    assert uncapped.exit_code == 0, uncapped.output
    whole = json.loads((tmp_path / "whole" / "results.json").read_text())["datasets"]["comments"]
    assert whole["n"] > 50 and "balanced" not in whole["source"]  # the micro organism's set is within the cap


def test_a_probe_given_as_a_plain_tensor_runs_every_task_that_takes_one(micro_organism, tmp_path) -> None:
    """Lee et al.'s probe.pt is a bare vector: no accuracy, no training data."""
    import torch

    from toxbench.mech.neurons import neuron_adapter
    from toxbench.models import load_model

    width = neuron_adapter(load_model("organism-micro").model).d_model
    torch.manual_seed(0)
    torch.save(torch.randn(width), tmp_path / "probe.pt")
    out = tmp_path / "run"
    args = ["run", "--model", "organism-micro", "--aligned", "organism-micro:dpo", "--limit", "10"]
    done = CliRunner().invoke(
        main,
        [
            *args,
            "--tasks",
            "attribution,ablation,unalignment",
            "--task-args",
            "unalignment.finetune_n=[]",
            "--probe",
            str(tmp_path / "probe.pt"),
            "--output-path",
            str(out),
        ],
    )
    assert done.exit_code == 0, done.output
    results = json.loads((out / "results.json").read_text())
    assert {results["tasks"][t]["status"] for t in ("attribution", "ablation", "unalignment")} == {"ok"}
    assert results["tasks"]["attribution"]["metrics"]["probe_accuracy"] is None
    assert "a probe given with --probe, not trained here" in (out / "report.md").read_text()
