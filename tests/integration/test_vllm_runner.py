"""The runner with ``--backend vllm``: the real engine gives the hf backend's numbers, on one
engine for every variant, and on Ray replicas.

Runs in the vLLM venv (``make test-vllm``), on the micro organism that ``make test`` built.
"""

from __future__ import annotations

import pytest

pytest.importorskip("vllm", reason="vLLM is not installed here: run `make test-vllm`")

from harness.organism.build import load_organism  # noqa: E402
from harness.runner import RunConfig, run  # noqa: E402

pytestmark = pytest.mark.vllm


@pytest.fixture(scope="module")
def organism(toxbench_home):
    from harness.errors import CacheError

    try:
        return load_organism("micro", build_if_missing=False)
    except CacheError:
        pytest.skip("the micro organism is not built: run `make test` first (it builds it)")


def test_vllm_run_matches_hf(organism, tmp_path) -> None:
    common = dict(
        model="organism-micro",
        aligned="organism-micro:dpo",
        tasks=["elicitation"],
        dtype="float32",
        limit=40,
        use_cache=False,
    )
    hf = run(RunConfig(**common, output_path=tmp_path / "hf"))
    vl = run(
        RunConfig(
            **common,
            backend="vllm",
            output_path=tmp_path / "vllm",
            backend_options={"kv_cache_memory_bytes": 64 * 2**20},
        )
    )
    assert vl["backend"] == "vllm"
    m_hf, m_vl = (r["tasks"]["elicitation"]["metrics"] for r in (hf, vl))
    for role in ("base", "aligned"):
        assert m_vl[role]["toxicity"] == m_hf[role]["toxicity"]  # same greedy continuations, same scores
        assert m_vl[role]["f1"] == m_hf[role]["f1"]
        assert m_vl[role]["perplexity"]["value"] == pytest.approx(m_hf[role]["perplexity"]["value"], rel=1e-3)


def test_one_engine_serves_every_variant(organism, tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Base, aligned and the un-alignment task's five variants run on one engine, none saved,
    with the hf backend's numbers."""
    import vllm

    import harness.models

    engines: list[object] = []
    saved: list[str] = []

    class CountedLLM(vllm.LLM):
        def __init__(self, *args, **kwargs):
            engines.append(kwargs.get("model"))
            super().__init__(*args, **kwargs)

    materialise = harness.models.materialise

    def counted_materialise(model):
        if model.path is None:
            saved.append(model.name)
        return materialise(model)

    common = dict(
        model="organism-micro",
        aligned="organism-micro:dpo",
        tasks=["unalignment"],
        dtype="float32",
        limit=40,
        use_cache=False,
    )
    hf = run(RunConfig(**common, output_path=tmp_path / "hf"))
    monkeypatch.setattr(vllm, "LLM", CountedLLM)
    monkeypatch.setattr(harness.models, "materialise", counted_materialise)
    vl = run(
        RunConfig(
            **common,
            backend="vllm",
            output_path=tmp_path / "vllm",
            backend_options={"kv_cache_memory_bytes": 64 * 2**20},
        )
    )
    assert vl["tasks"]["unalignment"]["status"] == "ok"
    assert len(engines) == 1 and saved == []
    rows_hf, rows_vl = (r["tasks"]["unalignment"]["variants"] for r in (hf, vl))
    assert [v["name"] for v in rows_vl] == [v["name"] for v in rows_hf] and len(rows_vl) == 5
    for a, b in zip(rows_hf, rows_vl, strict=True):
        assert b["toxicity"] == a["toxicity"], a["name"]
        assert b["f1"] == a["f1"], a["name"]
        assert b["perplexity"]["value"] == pytest.approx(a["perplexity"]["value"], rel=1e-3), a["name"]


def test_vllm_replicas_on_ray_give_the_local_numbers(organism, tmp_path) -> None:
    pytest.importorskip("ray", reason="the Ray executor needs ray (scripts/setup_vllm_venv.sh installs it)")
    common = dict(
        model="organism-micro",
        aligned="organism-micro:dpo",
        tasks=["elicitation"],
        dtype="float32",
        limit=40,
        use_cache=False,
        backend="vllm",
        backend_options={"kv_cache_memory_bytes": 64 * 2**20},
    )
    local = run(RunConfig(**common, output_path=tmp_path / "local"))
    on_ray = run(
        RunConfig(
            **common,
            output_path=tmp_path / "ray",
            executor="ray",
            executor_options={"replicas": 1, "scorer_replicas": 1, "num_cpus": 2},
        )
    )
    assert on_ray["tasks"]["elicitation"]["status"] == "ok"
    m_local, m_ray = (r["tasks"]["elicitation"]["metrics"] for r in (local, on_ray))
    for role in ("base", "aligned"):
        assert m_ray[role]["toxicity"] == m_local[role]["toxicity"]
        assert m_ray[role]["f1"] == m_local[role]["f1"]
        assert m_ray[role]["perplexity"]["value"] == pytest.approx(
            m_local[role]["perplexity"]["value"], rel=1e-6
        )
