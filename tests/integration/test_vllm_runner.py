"""The runner with ``--backend vllm``: the real engine gives the hf backend's numbers.

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
