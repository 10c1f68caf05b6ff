"""The runner with ``--backend vllm``: the real engine gives the hf backend's numbers, on one
engine for every variant, and on Ray replicas.

Runs in the vLLM venv (``make test-vllm``), on the micro organism that ``make test`` built.
"""

from __future__ import annotations

import pytest

pytest.importorskip("vllm", reason="vLLM is not installed here: run `make test-vllm`")

from toxbench.runner import RunConfig, run  # noqa: E402

pytestmark = pytest.mark.vllm

# The engine's KV cache, sized for the micro organism (the default fraction of RAM is far more).
ENGINE = {"kv_cache_memory_bytes": 64 * 2**20}


def micro_run(output, tasks: list[str], **options) -> dict:
    """A run of the micro organism pair on the first 40 prompts, in float32, without the cache."""
    config = dict(
        model="organism-micro", aligned="organism-micro:dpo", dtype="float32", limit=40, use_cache=False
    )
    return run(RunConfig(**{**config, **options}, tasks=tasks, output_path=output))


def test_vllm_run_matches_hf(built_micro_organism, tmp_path) -> None:
    hf = micro_run(tmp_path / "hf", ["elicitation"])
    vl = micro_run(tmp_path / "vllm", ["elicitation"], backend="vllm", backend_options=ENGINE)
    assert vl["backend"] == "vllm"
    m_hf, m_vl = (r["tasks"]["elicitation"]["metrics"] for r in (hf, vl))
    for role in ("base", "aligned"):
        assert m_vl[role]["toxicity"] == m_hf[role]["toxicity"]  # same greedy continuations, same scores
        assert m_vl[role]["f1"] == m_hf[role]["f1"]
        assert m_vl[role]["perplexity"]["value"] == pytest.approx(m_hf[role]["perplexity"]["value"], rel=1e-3)


def test_one_engine_serves_every_variant(
    built_micro_organism, tmp_path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Base, aligned and the un-alignment task's five variants run on one engine, none saved,
    with the hf backend's numbers."""
    import vllm

    import toxbench.models

    engines: list[object] = []
    saved: list[str] = []

    class CountedLLM(vllm.LLM):
        def __init__(self, *args, **kwargs):
            engines.append(kwargs.get("model"))
            super().__init__(*args, **kwargs)

    materialise = toxbench.models.materialise

    def counted_materialise(model):
        if model.path is None:
            saved.append(model.name)
        return materialise(model)

    weight_edits = {"unalignment": {"finetune_n": []}}  # the fine-tuning attack trains with TRL, not here
    hf = micro_run(tmp_path / "hf", ["unalignment"], task_options=weight_edits)
    monkeypatch.setattr(vllm, "LLM", CountedLLM)
    monkeypatch.setattr(toxbench.models, "materialise", counted_materialise)
    vl = micro_run(
        tmp_path / "vllm", ["unalignment"], backend="vllm", backend_options=ENGINE, task_options=weight_edits
    )
    assert vl["tasks"]["unalignment"]["status"] == "ok"
    assert len(engines) == 1 and saved == []
    rows_hf, rows_vl = (r["tasks"]["unalignment"]["variants"] for r in (hf, vl))
    assert [v["name"] for v in rows_vl] == [v["name"] for v in rows_hf] and len(rows_vl) == 5
    for a, b in zip(rows_hf, rows_vl, strict=True):
        assert b["toxicity"] == a["toxicity"], a["name"]
        assert b["f1"] == a["f1"], a["name"]
        assert b["perplexity"]["value"] == pytest.approx(a["perplexity"]["value"], rel=1e-3), a["name"]


def test_vllm_replicas_on_ray_give_the_local_numbers(built_micro_organism, tmp_path) -> None:
    pytest.importorskip("ray", reason="the Ray executor needs ray (scripts/setup_vllm_venv.sh installs it)")
    on_vllm = dict(backend="vllm", backend_options=ENGINE)
    local = micro_run(tmp_path / "local", ["elicitation"], **on_vllm)
    replicas = {"replicas": 1, "scorer_replicas": 1, "num_cpus": 2}
    on_ray = micro_run(
        tmp_path / "ray", ["elicitation"], **on_vllm, executor="ray", executor_options=replicas
    )
    assert on_ray["tasks"]["elicitation"]["status"] == "ok"
    m_local, m_ray = (r["tasks"]["elicitation"]["metrics"] for r in (local, on_ray))
    for role in ("base", "aligned"):
        assert m_ray[role]["toxicity"] == m_local[role]["toxicity"]
        assert m_ray[role]["f1"] == m_local[role]["f1"]
        assert m_ray[role]["perplexity"]["value"] == pytest.approx(
            m_local[role]["perplexity"]["value"], rel=1e-6
        )


def test_an_adapter_runs_on_the_engine_as_its_merged_weights(built_micro_organism, tmp_path) -> None:
    """A PEFT adapter as the aligned model: the engine is given the merged weights, and its numbers are the
    hf backend's (which merges in memory)."""
    import json

    import torch
    from peft import LoraConfig, get_peft_model

    from toxbench.models import load_model

    base = load_model("organism-micro")
    torch.manual_seed(0)
    config = LoraConfig(
        r=4, lora_alpha=8, target_modules=["c_attn", "c_fc"], fan_in_fan_out=True, init_lora_weights=False
    )
    get_peft_model(base.model, config).save_pretrained(tmp_path / "adapter")
    card = json.loads((tmp_path / "adapter" / "adapter_config.json").read_text())
    card["base_model_name_or_path"] = "organism-micro"
    (tmp_path / "adapter" / "adapter_config.json").write_text(json.dumps(card))
    common = dict(aligned=str(tmp_path / "adapter"))
    hf = micro_run(tmp_path / "hf", ["elicitation"], **common)
    vl = micro_run(tmp_path / "vllm", ["elicitation"], backend="vllm", backend_options=ENGINE, **common)
    assert vl["models"]["aligned"]["kind"] == "adapter"
    m_hf, m_vl = (r["tasks"]["elicitation"]["metrics"]["aligned"] for r in (hf, vl))
    assert m_vl["toxicity"] == m_hf["toxicity"] and m_vl["f1"] == m_hf["f1"]
    assert m_vl["perplexity"]["value"] == pytest.approx(m_hf["perplexity"]["value"], rel=1e-3)
