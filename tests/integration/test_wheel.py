"""The wheel a user installs: one import package, `toxbench`, holding every module of the repository's
package folders, the schemas and the shipped organisms."""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).parents[2]


def test_the_wheel_ships_the_organisms(tmp_path: Path) -> None:
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path),
            str(ROOT),
        ],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    (wheel,) = tmp_path.glob("toxbench-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    tops = {n.split("/")[0] for n in names if not n.split("/")[0].endswith((".dist-info", ".data"))}
    assert tops == {"toxbench"}, f"the wheel installs other top-level names: {sorted(tops - {'toxbench'})}"
    assert "toxbench/schemas/results.schema.json" in names
    assert "toxbench/leaderboard/schema/submission.schema.json" in names
    for folder, package in (
        ("harness", "toxbench"),
        ("tasks", "toxbench/tasks"),
        ("baselines", "toxbench/baselines"),
        ("leaderboard", "toxbench/leaderboard"),
    ):
        for source in (ROOT / folder).rglob("*.py"):
            rel = source.relative_to(ROOT / folder).as_posix()
            assert f"{package}/{rel}" in names, (
                f"{folder}/{rel} is not in the wheel (add its package to pyproject.toml)"
            )
    for size in ("micro", "default"):
        manifest = json.loads(
            (ROOT / "harness" / "organism" / "shipped" / size / "manifest.json").read_text()
        )
        shipped = [rel for rel in manifest["files"] if not rel.startswith("data/")]
        missing = [rel for rel in shipped if f"toxbench/organism/shipped/{size}/{rel}" not in names]
        assert not missing, f"the wheel lacks the shipped {size} organism's {missing}"
        assert f"toxbench/organism/shipped/{size}/manifest.json" in names
