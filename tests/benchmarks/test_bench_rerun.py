"""A fully cached re-run of ``toxbench run`` against a cold one: same command, same organism,
each a fresh process (start-up and imports are part of what a user waits for). The cold
round starts from an empty cache; the cached rounds reuse it. The target (a re-run costs at
most a tenth of a cold run) is for the default organism, whose cold run is minutes long; on
the micro organism start-up alone is more than a tenth."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest


def _command(size: str, output: Path) -> list[str]:
    suffix = "" if size == "default" else f"-{size}"
    return [
        sys.executable,
        "-m",
        "toxbench.cli",
        "run",
        "--model",
        f"organism{suffix}",
        "--aligned",
        f"organism{suffix}:dpo",
        "--output-path",
        str(output),
        "--overwrite",
    ]


@pytest.fixture(scope="module")
def home(tmp_path_factory, bench_organism, toxbench_home) -> Path:
    """A TOXBENCH_HOME that shares the built organisms but starts with no cache."""
    path = tmp_path_factory.mktemp("rerun-home")
    (path / "organism").symlink_to(toxbench_home / "organism", target_is_directory=True)
    return path


def _run(home: Path, output: Path) -> None:
    size = os.environ.get("TOXBENCH_BENCH_SIZE", "default")
    env = {**os.environ, "TOXBENCH_HOME": str(home), "TOXBENCH_PROGRESS": "0"}
    subprocess.run(_command(size, output), env=env, check=True, capture_output=True)


@pytest.mark.benchmark(group="toxbench run: cold vs cached")
def test_cold_run(benchmark, compare, home) -> None:
    benchmark.pedantic(_run, args=(home, home / "runs" / "cold"), rounds=1, iterations=1)
    compare(benchmark, "cached-rerun", "baseline")
    assert (home / "runs" / "cold" / "results.json").is_file()


@pytest.mark.benchmark(group="toxbench run: cold vs cached")
def test_cached_rerun(benchmark, compare, home) -> None:
    cold = home / "runs" / "cold"
    if not (cold / "results.json").is_file():  # run alone: fill the cache first, outside the timing
        _run(home, cold)
    again = home / "runs" / "again"
    benchmark.pedantic(_run, args=(home, again), rounds=3, iterations=1)
    compare(benchmark, "cached-rerun", "candidate")

    def tasks(folder: Path) -> dict:
        return json.loads((folder / "results.json").read_text())["tasks"]

    assert tasks(again) == tasks(cold)  # the cache serves the same results
