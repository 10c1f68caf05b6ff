"""The wheel a user installs carries what toxbench needs at run time: the shipped organisms and the schemas."""

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
    assert "harness/schemas/results.schema.json" in names
    for size in ("micro", "default"):
        manifest = json.loads(
            (ROOT / "harness" / "organism" / "shipped" / size / "manifest.json").read_text()
        )
        shipped = [rel for rel in manifest["files"] if not rel.startswith("data/")]
        missing = [rel for rel in shipped if f"harness/organism/shipped/{size}/{rel}" not in names]
        assert not missing, f"the wheel lacks the shipped {size} organism's {missing}"
        assert f"harness/organism/shipped/{size}/manifest.json" in names
