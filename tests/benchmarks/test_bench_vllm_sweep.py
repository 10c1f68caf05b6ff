"""An intervention task's variant sweep on the vllm backend: one engine whose weights are
swapped in place, against the old path (each variant saved to disk and an engine started on
it). The un-alignment task on the micro organism: base, aligned and five variants, no cache.

Runs in the vLLM venv (``make bench-vllm``), on the micro organism that ``make test`` built.
Both paths must give the same results."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("vllm", reason="needs the vllm package: run `make bench-vllm` (its own venv)")

from toxbench.runner import RunConfig, run  # noqa: E402

RESULTS: dict[str, dict] = {}
ENGINE = {"kv_cache_memory_bytes": 64 * 2**20}


def _sweep(in_place: bool, output) -> dict:
    config = RunConfig(
        model="organism-micro",
        aligned="organism-micro:dpo",
        tasks=["unalignment"],
        task_options={"unalignment": {"finetune_n": []}},  # the weight edits' sweep only
        backend="vllm",
        dtype="float32",
        use_cache=False,
        output_path=output,
        overwrite=True,
        backend_options={**ENGINE, "in_place_weights": in_place},
    )
    result = run(config)
    assert result["tasks"]["unalignment"]["status"] == "ok"
    return result["tasks"]["unalignment"]


def _rows(task: dict) -> list:
    return json.loads(json.dumps([[v["name"], v["toxicity"], v["f1"]] for v in task["variants"]]))


@pytest.mark.benchmark(group="vllm variant sweep")
def test_new_engine_per_variant(benchmark, compare, built_micro_organism, tmp_path) -> None:
    out = benchmark.pedantic(_sweep, args=(False, tmp_path / "engines"), rounds=2, iterations=1)
    compare(benchmark, "variant-sweep", "baseline")
    RESULTS["engines"] = _rows(out)


@pytest.mark.benchmark(group="vllm variant sweep")
def test_in_place_weights(benchmark, compare, built_micro_organism, tmp_path) -> None:
    out = benchmark.pedantic(_sweep, args=(True, tmp_path / "in-place"), rounds=2, iterations=1)
    compare(benchmark, "variant-sweep", "candidate")
    assert len(out["variants"]) == 5
    if "engines" in RESULTS:
        assert _rows(out) == RESULTS["engines"]
