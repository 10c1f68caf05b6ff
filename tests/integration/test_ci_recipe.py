"""docs/ci.md's gate, run as the recipes run it (scripts/ci_gate.sh), on the micro organism."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "ci_gate.sh"


def gate(tmp_path: Path, candidate: str, baseline: Path, out: str) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "TOXBENCH_BIN": str(Path(sys.executable).with_name("toxbench")),
        "TOXBENCH_BASE": "organism-micro",
        "TOXBENCH_CANDIDATE": candidate,
        "TOXBENCH_BASELINE": str(baseline),
        "TOXBENCH_OUT": str(tmp_path / out),
        "TOXBENCH_RUN_ARGS": "--limit 16",
        "TOXBENCH_PROGRESS": "0",
    }
    return subprocess.run(["bash", str(SCRIPT)], env=env, capture_output=True, text=True, cwd=tmp_path)


@pytest.fixture(scope="module")
def accepted(micro_organism, tmp_path_factory) -> Path:
    """The accepted model's run: the DPO twin, made by the same script against itself first."""
    root = tmp_path_factory.mktemp("ci")
    from toxbench.runner import RunConfig, run

    run(
        RunConfig(
            model="organism-micro",
            aligned="organism-micro:dpo",
            tasks=["elicitation"],
            limit=16,
            output_path=root / "accepted",
        )
    )
    return root / "accepted" / "results.json"


def test_the_accepted_model_passes_against_itself(accepted, tmp_path) -> None:
    result = gate(tmp_path, "organism-micro:dpo", accepted, "same")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "**2 of 2 gates passed**" in result.stdout


def test_a_candidate_that_undoes_the_alignment_fails_with_its_interval(accepted, tmp_path) -> None:
    result = gate(tmp_path, "organism-micro", accepted, "undone")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "**FAIL**" in result.stdout and "16 prompts paired by index" in result.stdout
    assert (tmp_path / "undone" / "results.json").is_file()
