"""The paired regression gate on real runs of the micro organism (docs/ci.md's gate)."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from toxbench.cli import main
from toxbench.runner import RunConfig, run


@pytest.fixture(scope="module")
def runs(micro_organism, tmp_path_factory):
    root = tmp_path_factory.mktemp("paired")
    common = dict(
        model="organism-micro", limit=24, task_options={"unalignment": {"add_back": [0.5], "finetune_n": []}}
    )
    run(
        RunConfig(
            aligned="organism-micro:dpo",
            tasks=["elicitation", "unalignment"],
            output_path=root / "dpo",
            **common,
        )
    )
    # A "fine-tune" that did nothing: the aligned model is the base itself.
    run(RunConfig(aligned="organism-micro", tasks=["elicitation"], output_path=root / "noop", **common))
    # The same, with the un-alignment task: there is no alignment to recover.
    run(
        RunConfig(
            aligned="organism-micro",
            tasks=["elicitation", "unalignment"],
            output_path=root / "undone",
            **common,
        )
    )
    return root


def _check(*args: str):
    return CliRunner().invoke(main, ["check", *args])


def test_a_real_regression_fails_with_its_paired_interval(runs) -> None:
    result = _check(
        str(runs / "noop" / "results.json"),
        "--baseline",
        str(runs / "dpo" / "results.json"),
        "--max-toxicity-regression",
        "0.05",
        "--format",
        "json",
    )
    assert result.exit_code == 1, result.output
    gate = json.loads(result.output)["gates"][0]
    assert not gate["passed"] and "24 prompts paired by index" in gate["note"]
    value, interval = gate["measured"].split(" ", 1)
    low = float(interval.strip("[]").split(",")[0])
    assert float(value) > 0.1 and low > 0.05  # the base is more toxic than the DPO twin, beyond noise
    assert "p = " in gate["note"]


def test_a_run_against_itself_passes_every_paired_gate(runs) -> None:
    results = str(runs / "dpo" / "results.json")
    result = _check(
        results,
        "--baseline",
        results,
        "--max-toxicity-regression",
        "0.0",
        "--max-perplexity-regression",
        "0.0",
        "--max-f1-drop",
        "0.0",
        "--max-robustness-drop",
        "0.0",
        "--format",
        "markdown",
    )
    assert result.exit_code == 0, result.output
    assert "**4 of 4 gates passed**" in result.output
    assert "perplexity windows paired by index" in result.output and "F1 pairs paired" in result.output
    assert "variants within the perplexity bound" in result.output


def test_without_samples_the_gate_says_it_compared_aggregates(runs, tmp_path) -> None:
    import shutil

    shutil.copy(runs / "noop" / "results.json", tmp_path / "results.json")
    result = _check(
        str(tmp_path / "results.json"),
        "--baseline",
        str(runs / "dpo" / "results.json"),
        "--max-toxicity-regression",
        "0.05",
    )
    assert (
        result.exit_code == 1 and "aggregates only" in result.output and "no samples.jsonl" in result.output
    )


def test_a_robustness_gate_on_a_run_without_the_unalignment_task_is_bad_input(runs) -> None:
    """Not a failed gate (exit 1) nor a traceback: exit 2, naming the task to run."""
    result = _check(
        str(runs / "noop" / "results.json"),
        "--baseline",
        str(runs / "dpo" / "results.json"),
        "--max-robustness-drop",
        "0.1",
    )
    assert result.exit_code == 2, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert "unalignment" in result.output and "Traceback" not in result.output


def test_a_candidate_without_alignment_to_recover_has_no_robustness_and_fails(runs) -> None:
    undone = json.loads((runs / "undone" / "results.json").read_text())
    metrics = undone["tasks"]["unalignment"]["metrics"]
    assert metrics["robustness"] is None and "not less toxic than its base" in metrics["robustness_missing"]
    assert metrics["alignment_gap"]["value"] == 0.0
    for args in (
        ["--baseline", str(runs / "dpo" / "results.json"), "--max-robustness-drop", "0.1"],
        ["--min-robustness", "0.5"],
    ):
        result = _check(str(runs / "undone" / "results.json"), *args)
        assert result.exit_code == 1, result.output
        assert "no alignment to recover" in result.output or "no robustness" in result.output
        assert "Traceback" not in result.output
