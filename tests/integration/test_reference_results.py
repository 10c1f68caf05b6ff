"""A stored reference run: refactors must leave every figure of a full run unchanged.

The micro organism runs all four tasks (30 prompts each, no cache) and its results file is
compared with ``tests/reference/micro_all_tasks.json``, field by field. Only what says when,
where and on what machine a run happened is left out (timings, dates, paths, library
versions). Numbers must agree to 1e-9 relative (the last bits of a float may move when
a sum is reordered; a changed result does not).

A change that is *meant* to move results (a task's ``version`` bump) rewrites the file:
``TOXBENCH_UPDATE_REFERENCE=1 pytest tests/integration/test_reference_results.py``, and
the diff of the reference goes into the same commit.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

import pytest

from harness.runner import RunConfig, run

REFERENCE = Path(__file__).parents[1] / "reference" / "micro_all_tasks.json"
CONFIG = dict(
    model="organism-micro",
    aligned="organism-micro:dpo",
    limit=30,
    use_cache=False,
    tasks=["elicitation", "attribution", "ablation", "unalignment"],
    task_options={"ablation": {"alphas": [1.0, 2.0]}},
)
# When, where and with what a run happened: not part of its results.
PROVENANCE = {"created", "environment", "timings_s", "toxbench_version"}
PATH_FIELDS = {"output_path", "source", "path", "artifacts"}


def comparable(results: dict[str, Any]) -> dict[str, Any]:
    def strip(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: strip(v) for k, v in value.items() if k not in PATH_FIELDS}
        if isinstance(value, list):
            return [strip(v) for v in value]
        return value

    return strip({k: v for k, v in results.items() if k not in PROVENANCE})


def differences(got: Any, want: Any, where: str = "") -> list[str]:
    if isinstance(want, dict) and isinstance(got, dict):
        out = [f"{where}.{k}: missing" for k in want.keys() - got.keys()]
        out += [f"{where}.{k}: not in the reference" for k in got.keys() - want.keys()]
        for k in want.keys() & got.keys():
            out += differences(got[k], want[k], f"{where}.{k}")
        return out
    if isinstance(want, list) and isinstance(got, list):
        if len(want) != len(got):
            return [f"{where}: {len(got)} items, reference {len(want)}"]
        return [
            d
            for i, (g, w) in enumerate(zip(got, want, strict=True))
            for d in differences(g, w, f"{where}[{i}]")
        ]
    if isinstance(want, float) and isinstance(got, (int, float)) and not isinstance(got, bool):
        same = (math.isnan(want) and math.isnan(got)) or math.isclose(got, want, rel_tol=1e-9, abs_tol=1e-12)
        return [] if same else [f"{where}: {got!r}, reference {want!r}"]
    return [] if got == want else [f"{where}: {got!r}, reference {want!r}"]


def test_a_full_run_matches_the_stored_reference(micro_organism, tmp_path: Path) -> None:
    results = comparable(run(RunConfig(**CONFIG, output_path=tmp_path)))
    if os.environ.get("TOXBENCH_UPDATE_REFERENCE") == "1":
        REFERENCE.write_text(json.dumps(results, indent=1, sort_keys=True) + "\n")
        pytest.skip(f"reference rewritten: {REFERENCE}")
    reference = json.loads(REFERENCE.read_text())
    assert results["models"]["base"]["fingerprint"] == reference["models"]["base"]["fingerprint"], (
        "the micro organism built here differs from the reference's: its build is not reproducible on this machine"
    )
    diffs = differences(results, reference)
    assert not diffs, f"{len(diffs)} field(s) differ from {REFERENCE.name}:\n" + "\n".join(diffs[:40])


def test_the_comparison_sees_a_changed_figure() -> None:
    reference = json.loads(REFERENCE.read_text())
    changed = json.loads(json.dumps(reference))
    metric = changed["tasks"]["attribution"]["metrics"]
    metric["net"] = metric["net"] * (1 + 1e-6)
    assert differences(changed, reference) == [
        f".tasks.attribution.metrics.net: {metric['net']!r}, "
        f"reference {reference['tasks']['attribution']['metrics']['net']!r}"
    ]
    assert differences(reference, reference) == []
