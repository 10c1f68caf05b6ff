"""The Ray executor on a local Ray instance (2 CPUs, hf replicas, the micro organism).

The same results as the local executor for elicitation and an intervention task; a cache a
Ray run wrote serves a local run without a single generation; a replica killed mid-run is
restarted and its chunk retried; one that keeps dying stops the run with an error naming
the work, with the finished work cached and no score missing or zero.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

ray = pytest.importorskip("ray")

from toxbench.backends.hf import HFBackend  # noqa: E402
from toxbench.cache import Cache  # noqa: E402
from toxbench.errors import ToxbenchError  # noqa: E402
from toxbench.executors import Executor  # noqa: E402
from toxbench.registry import register_scorer  # noqa: E402
from toxbench.runner import RunConfig, run  # noqa: E402
from toxbench.scorers.lexicon import LexiconScorer  # noqa: E402

# A local Ray instance per test: `make test-all` (CI) runs these.
pytestmark = pytest.mark.slow

# The scorers below are defined here, not in an installed module: the actors get them by value.
ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])

MICRO = dict(
    model="organism-micro",
    aligned="organism-micro:dpo",
    limit=24,
    task_options={"unalignment": {"finetune_n": []}},
)
RAY = {"replicas": 1, "scorer_replicas": 1, "num_cpus": 2}


@pytest.fixture
def fresh_home(micro_organism, toxbench_home, tmp_path, monkeypatch) -> Path:
    """A TOXBENCH_HOME with the built organisms and an empty cache (the actors see it too)."""
    home = tmp_path / "home"
    home.mkdir()
    (home / "organism").symlink_to(toxbench_home / "organism", target_is_directory=True)
    monkeypatch.setenv("TOXBENCH_HOME", str(home))
    return home


def tasks_of(results: dict) -> dict:
    return json.loads(json.dumps(results["tasks"]))


def test_ray_gives_the_local_results_and_its_cache_serves_a_local_run(
    fresh_home, tmp_path, monkeypatch
) -> None:
    tasks = ["elicitation", "unalignment"]
    local = run(RunConfig(**MICRO, tasks=tasks, use_cache=False, output_path=tmp_path / "local"))
    on_ray = run(
        RunConfig(**MICRO, tasks=tasks, executor="ray", executor_options=RAY, output_path=tmp_path / "ray")
    )
    assert on_ray["status"] == local["status"] == "complete"
    assert tasks_of(on_ray) == tasks_of(local)
    assert on_ray["config"]["executor"] == "ray"
    assert (fresh_home / "cache").is_dir()

    def no_generation(*_args, **_kwargs):
        raise AssertionError("the Ray run's cache should have served every generation")

    monkeypatch.setattr(HFBackend, "generate", no_generation)
    monkeypatch.setattr(HFBackend, "window_nll", no_generation)
    again = run(RunConfig(**MICRO, tasks=tasks, output_path=tmp_path / "again"))
    assert tasks_of(again) == tasks_of(local)


class DiesOnce(LexiconScorer):
    """The lexicon, from a process that exits the first time it is asked to score (a killed worker)."""

    name = "dies-once"

    def __init__(self, marker: str, device: str | None = None) -> None:
        super().__init__()
        self.marker = marker

    def score(self, texts):
        if not os.path.exists(self.marker):
            Path(self.marker).write_text(str(os.getpid()))
            os._exit(1)
        return super().score(texts)


class AlwaysDies(LexiconScorer):
    name = "always-dies"

    def score(self, texts):
        os._exit(1)


def test_a_killed_replica_is_restarted_and_its_chunk_retried(fresh_home, tmp_path) -> None:
    register_scorer("dies-once", DiesOnce)
    marker = tmp_path / "died"
    config = dict(**MICRO, tasks=["elicitation"], scorer="dies-once", scorer_options={"marker": str(marker)})
    on_ray = run(RunConfig(**config, executor="ray", executor_options=RAY, output_path=tmp_path / "ray"))
    assert marker.is_file() and int(marker.read_text()) != os.getpid()  # a worker process died
    local = run(RunConfig(**config, use_cache=False, output_path=tmp_path / "local"))
    assert tasks_of(on_ray) == tasks_of(local)
    assert on_ray["tasks"]["elicitation"]["metrics"]["base"]["toxicity"]["n_failed"] == 0


def test_a_replica_that_keeps_dying_stops_the_run_and_keeps_the_generations(
    fresh_home, tmp_path, monkeypatch
) -> None:
    register_scorer("always-dies", AlwaysDies)
    config = dict(**MICRO, tasks=["elicitation"], scorer="always-dies")
    options = {**RAY, "max_retries": 1}
    with pytest.raises(ToxbenchError, match="Ray worker was lost during scoring"):
        run(RunConfig(**config, executor="ray", executor_options=options, output_path=tmp_path / "ray"))
    results = json.loads((tmp_path / "ray" / "results.json").read_text())
    assert results["tasks"]["elicitation"]["status"] == "failed"  # no score was made up
    cache = Cache(fresh_home / "cache")
    n = MICRO["limit"]
    assert cache.count("generation") == n and cache.count("score") == 0  # the base model's continuations

    asked: list[tuple[str, int]] = []
    local_work = Executor.model_work

    def recording(self, ctx, model, method, chunks, *args):
        asked.extend((model.name, len(c)) for c in chunks if method == "generate")
        yield from local_work(self, ctx, model, method, chunks, *args)

    monkeypatch.setattr(Executor, "model_work", recording)
    rerun = run(RunConfig(**MICRO, tasks=["elicitation"], scorer="lexicon", output_path=tmp_path / "local"))
    assert rerun["status"] == "complete"
    # The base model generated only what the failed run never reached (its F1 continuations).
    assert sum(k for name, k in asked if name == "organism-micro") == n


def test_more_replicas_than_the_cluster_has_is_a_clear_error(fresh_home, tmp_path) -> None:
    options = {**RAY, "replicas": 3}
    with pytest.raises(ToxbenchError, match="replicas"):
        run(
            RunConfig(
                **MICRO,
                tasks=["elicitation"],
                executor="ray",
                executor_options=options,
                output_path=tmp_path / "r",
            )
        )
