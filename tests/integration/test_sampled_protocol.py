"""The sampled (rtp) protocol's random streams: a continuation is drawn from a generator of its own
(prompt, sample), and entries cached under the streams before it are never served for it."""

from __future__ import annotations

import dataclasses
import json

from toxbench.backends.base import SAMPLING_STREAMS, SamplingConfig
from toxbench.cache import Cache, cache_key
from toxbench.runner import RunConfig, run
from toxbench.tasks.protocols import for_run


def _run(out, **options) -> dict:
    config = RunConfig(
        model="organism-micro",
        aligned=None,
        tasks=["elicitation"],
        protocol="rtp",
        limit=3,
        output_path=out,
    )
    return run(dataclasses.replace(config, **options))


def _continuations(out) -> list[str]:
    rows = [json.loads(line) for line in (out / "samples.jsonl").open()]
    return [r["continuation"] for r in rows if r.get("kind") == "continuation"]


def test_a_cached_sample_of_the_old_streams_is_not_served(micro_organism, toxbench_home, tmp_path) -> None:
    first = _run(tmp_path / "first")
    protocol = first["tasks"]["elicitation"]["config"]["protocol"]
    assert protocol["sampling"]["streams"] == SAMPLING_STREAMS == 2  # recorded in the results
    fresh = _continuations(tmp_path / "first")
    # Plant what the old streams would have cached for the same model, prompts and decoding.
    sampling = for_run("rtp", RunConfig(model="organism-micro")).sampling
    old_key = dataclasses.asdict(sampling)  # version 1 keyed its entries by the settings alone
    assert old_key != sampling.key() and "streams" not in SamplingConfig().key()  # greedy keys as before
    rows = [json.loads(line) for line in (tmp_path / "first" / "samples.jsonl").open()]
    prompts = sorted({r["prompt"] for r in rows if r.get("kind") == "continuation"})
    model = first["models"]["base"]["fingerprint"]
    cache = Cache(toxbench_home / "cache")
    planted = {
        cache_key("generation", prompt=p, model=model, backend="hf", sampling=old_key): [
            {"text": " OLD STREAM", "token_ids": [1]}
        ]
        * sampling.n
        for p in prompts
    }
    cache.put_many("generation", planted)
    assert all(k in cache.get_many(planted) for k in planted)
    _run(tmp_path / "again")
    again = _continuations(tmp_path / "again")
    assert again == fresh and " OLD STREAM" not in again  # served from its own entries, not the planted ones


def test_sampled_runs_do_not_depend_on_the_batch_size(micro_organism, tmp_path) -> None:
    one = _run(tmp_path / "one", batch_size=1, use_cache=False)
    many = _run(tmp_path / "many", batch_size=64, use_cache=False)
    assert _continuations(tmp_path / "one") == _continuations(tmp_path / "many")
    m1, m64 = (r["tasks"]["elicitation"]["metrics"]["base"] for r in (one, many))
    assert m1["expected_max_toxicity"] == m64["expected_max_toxicity"]
