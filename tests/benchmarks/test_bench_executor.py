"""The Ray executor against the local one on the same work: elicitation on the micro organism,
no cache, the same process. On a 2-core machine this measures Ray's overhead (starting a
local instance, shipping models, actor round trips), not a speed-up: the ratio is reported,
and the results must be the same."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("ray")

from toxbench.runner import RunConfig, run  # noqa: E402

WORK = dict(model="organism-micro", aligned="organism-micro:dpo", tasks=["elicitation"], use_cache=False)
RESULTS: dict[str, dict] = {}


def _run(executor: str, options: dict, output) -> dict:
    return run(
        RunConfig(**WORK, executor=executor, executor_options=options, output_path=output, overwrite=True)
    )


@pytest.mark.benchmark(group="executor: local vs ray")
def test_local_executor(benchmark, compare, micro_organism, tmp_path) -> None:
    out = benchmark.pedantic(_run, args=("local", {}, tmp_path / "local"), rounds=2, iterations=1)
    compare(benchmark, "executor", "baseline")
    RESULTS["local"] = json.loads(json.dumps(out["tasks"]))


@pytest.mark.benchmark(group="executor: local vs ray")
def test_ray_executor(benchmark, compare, micro_organism, tmp_path) -> None:
    options = {"replicas": 1, "scorer_replicas": 1, "num_cpus": 2}
    out = benchmark.pedantic(_run, args=("ray", options, tmp_path / "ray"), rounds=2, iterations=1)
    compare(benchmark, "executor", "candidate")
    if "local" in RESULTS:
        assert json.loads(json.dumps(out["tasks"])) == RESULTS["local"]
