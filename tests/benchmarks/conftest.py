"""Benchmarks run on the default organism (``TOXBENCH_BENCH_SIZE=micro`` for a quick look).

A comparison is two benchmarks of one group timed in the same run: a baseline and a
candidate (``compare(benchmark, name, role)``). At the end of the session each comparison's
ratio (baseline median / candidate median) is printed beside its target and written to
``$TOXBENCH_BENCH_JSON`` (default ``.benchmarks/ratios.json``); a ratio under its target fails
the session. ``make bench`` runs them all.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

# name -> (what is compared, target ratio baseline / candidate; None: reported, not a target)
TARGETS: dict[str, tuple[str, float | None]] = {
    "generation": ("hf greedy generation vs the seeds' batches of 16", 5.0),
    "sampling": ("sampled protocol (25 x 200 prompts) batched across prompts vs the per-prompt loop", 3.0),
    "capture": ("attribution capture during generation vs generate-then-forward", 2.5),
    # A cost, not a speed-up: the patched pass may take up to 1.3x the unhooked one.
    "patching": ("teacher-forced pass: unhooked vs with activation patching", 1 / 1.3),
    "cached-rerun": ("cold toxbench run vs the same run fully cached", 10.0),
    "variant-sweep": ("vLLM variant sweep: a new engine per variant vs in-place edits", 1.0),
    "executor": ("local executor vs Ray executor on the same work (overhead, not speed-up)", None),
}
_TIMES: dict[str, dict[str, float]] = {}


@pytest.fixture
def compare():
    """``compare(benchmark, name, "baseline" | "candidate")`` records a finished benchmark's median."""

    def record(benchmark, name: str, role: str) -> None:
        assert name in TARGETS and role in ("baseline", "candidate")
        _TIMES.setdefault(name, {})[role] = float(benchmark.stats.stats.median)

    return record


def _ratios() -> list[dict]:
    rows = []
    for name, times in _TIMES.items():
        if {"baseline", "candidate"} <= set(times):
            what, target = TARGETS[name]
            ratio = times["baseline"] / times["candidate"]
            rows.append(
                {
                    "name": name,
                    "what": what,
                    **times,
                    "ratio": ratio,
                    "target": target,
                    "met": None if target is None else ratio >= target,
                }
            )
    return rows


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:
    rows = _ratios()
    if not rows:
        return
    terminalreporter.section("toxbench comparisons (baseline / candidate, same run)")
    for r in rows:
        goal = (
            "reported"
            if r["target"] is None
            else f"target >= {r['target']:.3g}x, " + ("ok" if r["met"] else "MISSED")
        )
        terminalreporter.write_line(
            f"{r['name']:<14} {r['ratio']:6.2f}x  ({goal})  "
            f"{r['baseline']:.3f}s / {r['candidate']:.3f}s  {r['what']}"
        )
    path = Path(os.environ.get("TOXBENCH_BENCH_JSON", ".benchmarks/ratios.json"))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(rows, indent=2) + "\n")
    terminalreporter.write_line(f"written to {path}")


def pytest_sessionfinish(session, exitstatus) -> None:
    if any(r["met"] is False for r in _ratios()) and session.exitstatus == 0:
        session.exitstatus = 1


@pytest.fixture(scope="session")
def bench_organism(toxbench_home):
    from toxbench.console import configure_threads
    from toxbench.organism.build import load_organism

    configure_threads()  # the process set up as `toxbench` sets itself up (threads, allocator)

    return load_organism(os.environ.get("TOXBENCH_BENCH_SIZE", "default"), show_progress=False)


@pytest.fixture(scope="session")
def challenging_prompts(bench_organism) -> list[str]:
    rows = [json.loads(line) for line in (bench_organism.data_dir / "rtp" / "prompts.jsonl").open()]
    return [r["prompt"]["text"] for r in rows if r["challenging"]]
