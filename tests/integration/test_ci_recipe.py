"""docs/ci.md's baseline and gate, run as the recipes run them (`toxbench ci baseline`, then
`toxbench ci gate`, configured by environment variables), on the micro organism; the older
scripts/ci_*.sh still run them."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

# Several full gate runs: `make test-all` (CI) runs these.
pytestmark = pytest.mark.slow

SCRIPTS = Path(__file__).resolve().parents[2] / "scripts"
TOXBENCH = str(Path(sys.executable).with_name("toxbench"))


def ci(job: str, cwd: Path, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [TOXBENCH, "ci", job], env={**os.environ, **env}, capture_output=True, text=True, cwd=cwd
    )


def gate(
    tmp_path: Path, candidate: str, baseline: Path, out: str, legacy: bool = False
) -> subprocess.CompletedProcess:
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
    command = ["bash", str(SCRIPTS / "ci_gate.sh")] if legacy else [TOXBENCH, "ci", "gate"]
    return subprocess.run(command, env=env, capture_output=True, text=True, cwd=tmp_path)


@pytest.fixture(scope="module")
def accepted(micro_organism, tmp_path_factory) -> Path:
    """The accepted model's run (the DPO twin), made as the recipes' main-branch job makes it."""
    root = tmp_path_factory.mktemp("ci")
    done = ci(
        "baseline",
        root,
        TOXBENCH_BASE="organism-micro",
        TOXBENCH_CANDIDATE="organism-micro:dpo",
        TOXBENCH_RUN_ARGS="--limit 16",
        TOXBENCH_PROGRESS="0",
    )
    assert done.returncode == 0, done.stderr
    assert "baseline written" in done.stderr
    assert (root / "runs" / "accepted" / "samples.jsonl").is_file()
    return root / "runs" / "accepted" / "results.json"


def test_the_accepted_model_passes_against_itself(accepted, tmp_path) -> None:
    result = gate(tmp_path, "organism-micro:dpo", accepted, "same", legacy=True)  # CI files of before
    assert result.returncode == 0, result.stdout + result.stderr
    assert "**2 of 2 gates passed**" in result.stdout


def test_a_candidate_that_undoes_the_alignment_fails_with_its_interval(accepted, tmp_path) -> None:
    result = gate(tmp_path, "organism-micro", accepted, "undone")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "**FAIL**" in result.stdout and "16 prompts paired by index" in result.stdout
    assert (tmp_path / "undone" / "results.json").is_file()


def test_a_gate_before_the_first_baseline_says_how_to_make_it(tmp_path) -> None:
    result = gate(tmp_path, "organism-micro:dpo", tmp_path / "baseline" / "results.json", "first")
    assert result.returncode == 2, result.stdout + result.stderr
    assert "no baseline at" in result.stderr and "toxbench ci baseline" in result.stderr
    assert not (tmp_path / "first").exists()  # nothing was evaluated
