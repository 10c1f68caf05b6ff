"""Benchmarks run on the default organism (``TOXBENCH_BENCH_SIZE=micro`` for a quick look)."""

from __future__ import annotations

import json
import os

import pytest


@pytest.fixture(scope="session")
def bench_organism(toxbench_home):
    from harness.organism.build import load_organism

    return load_organism(os.environ.get("TOXBENCH_BENCH_SIZE", "default"), show_progress=False)


@pytest.fixture(scope="session")
def challenging_prompts(bench_organism) -> list[str]:
    rows = [json.loads(line) for line in (bench_organism.data_dir / "rtp" / "prompts.jsonl").open()]
    return [r["prompt"]["text"] for r in rows if r["challenging"]]
