"""The cache: keyed by what determines a value, and safe for two runs writing at once."""

from __future__ import annotations

import multiprocessing as mp
from pathlib import Path

from toxbench.cache import Cache, cache_key


def _writer(root: str, tag: str) -> None:
    cache = Cache(Path(root))
    for batch in range(20):
        cache.put_many(
            "generation", {cache_key("generation", run=tag, i=batch * 10 + j): [tag, j] for j in range(10)}
        )


def test_two_processes_write_at_once(tmp_path: Path) -> None:
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_writer, args=(str(tmp_path), tag)) for tag in ("a", "b")]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=60)
    assert [p.exitcode for p in procs] == [0, 0]
    cache = Cache(tmp_path)
    assert cache.count("generation") == 400
    key = cache_key("generation", run="b", i=37)
    assert cache.get_many([key]) == {key: ["b", 7]}


def test_keys_hold_every_part() -> None:
    base = dict(model="files-aaa", backend="hf", sampling={"greedy": True}, prompt="p")
    assert cache_key("generation", **base) == cache_key("generation", **dict(reversed(list(base.items()))))
    for change in (
        {"model": "files-bbb"},
        {"backend": "vllm"},
        {"sampling": {"greedy": False}},
        {"prompt": "q"},
    ):
        assert cache_key("generation", **{**base, **change}) != cache_key("generation", **base)
    assert cache_key("score", **base) != cache_key("generation", **base)


def test_disabled_cache_stores_nothing() -> None:
    cache = Cache(None)
    cache.put_many("score", {"k": 1.0})
    assert cache.get_many(["k"]) == {} and cache.count() == 0
