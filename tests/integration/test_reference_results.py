"""A stored reference run: a change to the code's numbers shows, a change of CPU does not.

The shipped micro organism runs all four tasks (30 prompts each, no cache) in float64, and
its results file and generated text are compared with ``tests/reference/micro_all_tasks.json``.
Only what says when, where and on what machine a run happened is left out (timings, dates,
paths, library versions).

Why float64. The same float32 weights run through another kernel path (another CPU, or
``ATEN_CPU_CAPABILITY`` switched on this one) change the last bits of every activation, and
the organism's greedy decoding has near-ties. Measured on one Xeon with AVX-512 (30 prompts,
all tasks): in float32, the shipped micro organism under ``ATEN_CPU_CAPABILITY=avx2`` changed
1 of 840 continuations, and an earlier build of it 10 under ``avx2`` and 16 under ``default``,
with 4-5 neurons moving between attribution groups. In float64 the same switches changed no
continuation and no neuron; the largest relative change of any figure above 1e-9 in size was
1.8e-12 (``avx2``; 1.1e-12 ``default``), exactly-zero residuals became at most 2.2e-16, and one
thread against two changed 1.1e-16. So discrete outputs (text, chosen neurons, group sizes,
variant lists) must match exactly, and floats to 1e-9 relative (1e-12 absolute): more than
500 times the variation measured, and 1,000 times below the 1e-6 change
``test_the_comparison_sees_a_changed_figure`` shows is caught.

A change that is *meant* to move results (a task's ``version`` bump, a new organism) rewrites
the file with ``make reference``, and the diff of the reference goes into the same commit.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonlines
import pytest

REFERENCE = Path(__file__).parents[1] / "reference" / "micro_all_tasks.json"
CONFIG = dict(
    model="organism-micro",
    aligned="organism-micro:dpo",
    dtype="float64",
    limit=30,
    use_cache=False,
    tasks=["elicitation", "attribution", "ablation", "unalignment"],
    task_options={
        "ablation": {"alphas": [1.0, 2.0]},
        # No fine-tuning attack: what training gives differs between CPUs in its last bits, and the
        # reference is compared field by field (tests/integration/test_finetune_attack.py tests it).
        "unalignment": {"finetune_n": []},
    },
)
# When, where and with what a run happened: not part of its results.
PROVENANCE = {"created", "environment", "timings_s", "toxbench_version"}
PATH_FIELDS = {"output_path", "source", "path", "artifacts"}
# In float64, the run's figures move by ~1e-9 relative between thread counts and kernels (the probe's
# solver stops at a tolerance, which turns rounding of its reductions into ~1e-9 of its weights); a
# change of code moves them by far more (float32 alone: 1e-4 and more).
REL_TOL, ABS_TOL = 1e-7, 1e-10


def comparable(results: dict[str, Any]) -> dict[str, Any]:
    def strip(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: strip(v) for k, v in value.items() if k not in PATH_FIELDS}
        if isinstance(value, list):
            return [strip(v) for v in value]
        return value

    return strip({k: v for k, v in results.items() if k not in PROVENANCE})


def generations(samples: Path) -> dict[str, str]:
    """A digest of every generated continuation, per task and role (text must match exactly)."""
    groups: dict[str, list[Any]] = {}
    with jsonlines.open(samples) as rows:
        for row in rows:
            if "continuation" in row:
                key = f"{row['task']}/{row['role']}"
                groups.setdefault(key, []).append(
                    [row.get("prompt_index"), row.get("sample"), row["continuation"]]
                )
    return {
        key: hashlib.sha256(json.dumps(sorted(rows, key=str)).encode()).hexdigest()[:16]
        for key, rows in sorted(groups.items())
    }


def reference_run(output: Path) -> dict[str, Any]:
    from toxbench.runner import RunConfig, run

    results = comparable(run(RunConfig(**CONFIG, output_path=output)))
    results["generations"] = generations(output / "samples.jsonl")
    return results


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
        same = (math.isnan(want) and math.isnan(got)) or math.isclose(
            got, want, rel_tol=REL_TOL, abs_tol=ABS_TOL
        )
        return [] if same else [f"{where}: {got!r}, reference {want!r}"]
    return [] if got == want else [f"{where}: {got!r}, reference {want!r}"]


def assert_matches_reference(results: dict[str, Any], how: str) -> None:
    from toxbench.models import fingerprint_folder
    from toxbench.organism.build import ORGANISM_VERSION, SHIPPED_ROOT

    reference = json.loads(REFERENCE.read_text())
    shipped = f"organism{ORGANISM_VERSION}-" + fingerprint_folder(SHIPPED_ROOT / "micro" / "base")
    assert results["models"]["base"]["fingerprint"].startswith(shipped + "+"), (
        f"the run did not use the shipped micro organism ({shipped})"
    )
    diffs = differences(results, reference)
    assert not diffs, f"{how}: {len(diffs)} field(s) differ from {REFERENCE.name}:\n" + "\n".join(diffs[:40])


@pytest.mark.parametrize("threads", [1, pytest.param(2, marks=pytest.mark.slow)])
def test_a_full_run_matches_the_stored_reference(micro_organism, tmp_path: Path, threads: int) -> None:
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        results = reference_run(tmp_path)
    finally:
        torch.set_num_threads(before)
    if os.environ.get("TOXBENCH_UPDATE_REFERENCE") == "1":
        if threads == 2:
            REFERENCE.write_text(json.dumps(results, indent=1, sort_keys=True) + "\n")
        pytest.skip(f"reference rewritten: {REFERENCE}")
    assert_matches_reference(results, f"{threads} thread(s)")


def _native_capability() -> str:
    import torch

    return torch.backends.cpu.get_cpu_capability()


@pytest.mark.slow  # a full run on another kernel path: make test-all
def test_the_reference_holds_on_another_kernel_path(micro_organism, tmp_path: Path) -> None:
    """What another CPU computes: torch's kernels switched to another instruction set, in a fresh process."""
    native = _native_capability()
    other = "avx2" if native.startswith("AVX512") else "default"
    if native == "DEFAULT":
        pytest.skip("this CPU runs torch's default kernels already: no other kernel path to switch to")
    out = tmp_path / "results.json"
    env = {**os.environ, "ATEN_CPU_CAPABILITY": other}
    proc = subprocess.run(
        [sys.executable, __file__, str(tmp_path / "run"), str(out)], env=env, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    payload = json.loads(out.read_text())
    assert payload["capability"] == other.upper(), f"the kernels were not switched: {payload['capability']}"
    assert payload["capability"] != native
    assert_matches_reference(payload["results"], f"ATEN_CPU_CAPABILITY={other} (native {native})")


def test_the_comparison_sees_a_changed_figure() -> None:
    reference = json.loads(REFERENCE.read_text())
    changed = json.loads(json.dumps(reference))
    metric = changed["tasks"]["attribution"]["metrics"]
    metric["net"] = metric["net"] * (1 + 1e-6)
    assert differences(changed, reference) == [
        f".tasks.attribution.metrics.net: {metric['net']!r}, "
        f"reference {reference['tasks']['attribution']['metrics']['net']!r}"
    ]
    changed = json.loads(json.dumps(reference))
    first = next(iter(changed["generations"]))
    changed["generations"][first] = "0" * 16
    assert differences(changed, reference) == [
        f".generations.{first}: {'0' * 16!r}, reference {reference['generations'][first]!r}"
    ]
    assert differences(reference, reference) == []


if __name__ == "__main__":  # the kernel-path test's child process: run, then write what it computed
    os.environ.setdefault("TOXBENCH_PROGRESS", "0")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    got = reference_run(Path(sys.argv[1]))
    Path(sys.argv[2]).write_text(json.dumps({"capability": _native_capability(), "results": got}))
