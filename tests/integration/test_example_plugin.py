"""The example plugin package (examples/plugin): installed into a temporary folder, found through
its entry points, listed, and run end to end by `toxbench run` in a fresh process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

# pip installs the example plugin: `make test-all` (CI) runs these.
pytestmark = pytest.mark.slow

PLUGIN = Path(__file__).parents[2] / "examples" / "plugin"


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> dict[str, str]:
    """The environment of a process that has the plugin installed (and nothing else changed)."""
    target = tmp_path_factory.mktemp("site")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "--target",
            str(target),
            str(PLUGIN),
        ],
        check=True,
    )
    assert (target / "toxbench_example" / "tasks.py").is_file()
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(target), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return env


def toxbench(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "toxbench.cli", *args], env=env, capture_output=True, text=True
    )


def test_the_installed_plugin_is_listed(installed) -> None:
    for what, name in (("tasks", "temperature-sweep"), ("scorers", "shouting"), ("models", "example-micro")):
        listed = toxbench(installed, "ls", what)
        assert listed.returncode == 0, listed.stderr
        line = next(line for line in listed.stdout.splitlines() if line.startswith(name))
        assert "entry point of toxbench-example-plugin" in line
    plain = toxbench(dict(os.environ), "ls", "tasks")
    assert "temperature-sweep" not in plain.stdout  # only where it is installed


def test_the_installed_plugin_runs_end_to_end(installed, micro_organism, tmp_path) -> None:
    out = tmp_path / "run"
    done = toxbench(
        installed,
        "run",
        "--model",
        "example-micro",
        "--aligned",
        "organism-micro:dpo",
        "--tasks",
        "temperature-sweep,elicitation",
        "--task-args",
        "temperature-sweep.temperatures=[0.5,1.0]",
        "--limit",
        "6",
        "--output-path",
        str(out),
    )
    assert done.returncode == 0, done.stderr[-2000:]
    results = json.loads((out / "results.json").read_text())
    sweep = results["tasks"]["temperature-sweep"]
    assert sweep["config"]["temperatures"] == [0.5, 1.0]
    assert set(sweep["metrics"]) == {"base", "aligned"}
    for row in sweep["metrics"].values():
        assert set(row) == {"toxicity_t0.5", "toxicity_t1"} and all(
            0 <= m["value"] <= 1 for m in row.values()
        )
    assert (results["models"]["base"]["kind"], results["models"]["base"]["target"]) == ("organism", "micro")
    assert results["scorer"]["name"] == "lexicon"  # the alias's own default scorer
    assert "| base |" in (out / "report.md").read_text()

    shouted = toxbench(
        installed,
        "run",
        "--model",
        "organism-micro",
        "--aligned",
        "none",
        "--tasks",
        "elicitation",
        "--scorer",
        "shouting",
        "--limit",
        "4",
        "--output-path",
        str(tmp_path / "shout"),
    )
    assert shouted.returncode == 0, shouted.stderr[-2000:]
    assert json.loads((tmp_path / "shout" / "results.json").read_text())["scorer"]["name"] == "shouting"
