"""The vLLM backend against a stand-in engine that records what it is given: parallelism and
memory options (the real engine needs several accelerators to take them), and the weights an
engine shared by several models is sent (the real engine's side: tests/integration/test_vllm_backend.py)."""

from __future__ import annotations

import sys
import types

import pytest


class RecordingLLM:
    seen: dict = {}
    started = 0

    def __init__(self, **kwargs) -> None:
        RecordingLLM.seen = kwargs
        RecordingLLM.started += 1
        config = types.SimpleNamespace(max_model_len=kwargs.get("max_model_len") or 128)
        self.llm_engine = types.SimpleNamespace(model_config=config)
        self.loads: list[dict] = []  # the tensors of each in-place load
        self.resets = 0

    def collective_rpc(self, method: str, args: tuple = ()) -> list:
        from safetensors.torch import load_file

        assert method == "toxbench_load_weights"
        self.loads.append(load_file(args[0]))
        return [len(self.loads[-1])]

    def reset_prefix_cache(self) -> None:
        self.resets += 1


@pytest.fixture
def fake_vllm(monkeypatch):
    vllm = types.ModuleType("vllm")
    vllm.LLM = RecordingLLM
    vllm.__version__ = "0.0-test"
    platforms = types.ModuleType("vllm.platforms")
    platforms.current_platform = types.SimpleNamespace(is_cpu=lambda: False)
    state = types.ModuleType("vllm.distributed.parallel_state")
    state.cleanup_dist_env_and_memory = lambda: None
    monkeypatch.setitem(sys.modules, "vllm", vllm)
    monkeypatch.setitem(sys.modules, "vllm.platforms", platforms)
    monkeypatch.setitem(sys.modules, "vllm.distributed", types.ModuleType("vllm.distributed"))
    monkeypatch.setitem(sys.modules, "vllm.distributed.parallel_state", state)
    RecordingLLM.started = 0
    return RecordingLLM


def test_parallelism_and_memory_options_reach_the_engine(fake_vllm, tmp_path) -> None:
    from toxbench.backends.vllm import VLLMBackend

    VLLMBackend(
        tmp_path,
        tokenizer=None,
        tensor_parallel_size=4,
        pipeline_parallel_size=2,
        data_parallel_size=2,
        max_model_len=4096,
        gpu_memory_utilization=0.85,
        enforce_eager=True,
    )
    seen = fake_vllm.seen
    assert (seen["tensor_parallel_size"], seen["pipeline_parallel_size"], seen["data_parallel_size"]) == (
        4,
        2,
        2,
    )
    assert (seen["max_model_len"], seen["gpu_memory_utilization"], seen["enforce_eager"]) == (
        4096,
        0.85,
        True,
    )
    assert seen["trust_remote_code"] is False


def test_one_engine_replica_leaves_data_parallelism_to_vllm_defaults(fake_vllm, tmp_path) -> None:
    from toxbench.backends.vllm import VLLMBackend

    VLLMBackend(tmp_path, tokenizer=None)
    assert "data_parallel_size" not in fake_vllm.seen
    assert fake_vllm.seen["gpu_memory_utilization"] == 0.9  # an accelerator's default


# -- one engine for several models -------------------------------------------------------------
def tiny_gpt2():
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    return GPT2LMHeadModel(GPT2Config(n_layer=2, n_embd=16, n_head=2, n_positions=32, vocab_size=50)).eval()


def loaded(model, name: str, path=None, eos: int = 0, **notes):
    tokenizer = types.SimpleNamespace(eos_token_id=eos)
    return types.SimpleNamespace(
        model=model, tokenizer=tokenizer, name=name, fingerprint=name, path=path, notes=notes
    )


RUN = types.SimpleNamespace(dtype="float32", seed=0, backend_options={})


def edited(model, edit):
    import copy

    import torch

    copy_ = copy.deepcopy(model)
    with torch.no_grad():
        edit(copy_)
    return copy_


def test_a_variant_on_the_live_engine_gets_its_changed_blocks_and_back(fake_vllm, tmp_path) -> None:
    import torch

    from toxbench.backends.vllm import VLLMBackend

    model = tiny_gpt2()
    base = VLLMBackend.for_model(loaded(model, "base", tmp_path), RUN)
    assert fake_vllm.seen["worker_extension_cls"] == "toxbench.backends.vllm_weights.WeightSwap"
    variant_model = edited(model, lambda m: m.transformer.h[1].mlp.c_fc.weight[:, 3].mul_(5.0))
    variant = base.serve(loaded(variant_model, "base+keys"), RUN)
    assert variant is not None and fake_vllm.started == 1
    engine = base.llm
    assert engine.loads == []  # nothing moves until the variant is used

    assert variant.llm is engine
    block = sorted(n for n in model.state_dict() if n.startswith("transformer.h.1.mlp."))
    assert sorted(engine.loads[-1]) == block and len(block) == 4  # the whole block: c_fc, c_proj
    want = variant_model.state_dict()
    assert all(torch.equal(engine.loads[-1][n], want[n]) for n in block)
    assert variant.llm is engine and len(engine.loads) == 1  # already held: nothing sent
    assert engine.resets == 1

    assert base.llm is engine  # back to the base's tensors
    assert sorted(engine.loads[-1]) == block
    assert all(torch.equal(engine.loads[-1][n], model.state_dict()[n]) for n in block)
    assert engine.resets == 2

    variant.close()
    variant.close()  # twice is once
    assert base._engine.users == 1 and hasattr(base._engine, "llm")
    base.close()
    assert base._engine.users == 0 and not hasattr(base._engine, "llm")


def test_a_changed_embedding_sends_every_tensor_once(fake_vllm, tmp_path) -> None:
    from toxbench.backends.vllm import VLLMBackend

    model = tiny_gpt2()
    base = VLLMBackend.for_model(loaded(model, "base", tmp_path), RUN)
    other = edited(model, lambda m: m.transformer.wte.weight[7].mul_(2.0))
    view = base.serve(loaded(other, "other"), RUN)
    assert view is not None
    sent = view.llm.loads[-1]
    names = set(model.state_dict())
    # lm_head.weight is the embedding (tied): it is written once, under the embedding's name.
    assert set(sent) == names - {"lm_head.weight"} and "transformer.wte.weight" in sent


def test_models_the_engine_cannot_run_get_engines_of_their_own(fake_vllm, tmp_path) -> None:
    from transformers import GPT2Config, GPT2LMHeadModel

    from toxbench.backends import build
    from toxbench.backends.vllm import VLLMBackend

    model = tiny_gpt2()
    live: dict = {}
    live["base"] = build(VLLMBackend, loaded(model, "base", tmp_path), RUN, live)
    aligned = build(
        VLLMBackend,
        loaded(edited(model, lambda m: m.lm_head.weight.add_(0.1)), "aligned", tmp_path),
        RUN,
        live,
    )
    assert fake_vllm.started == 1 and aligned._engine is live["base"]._engine
    live["aligned"] = aligned

    wider = GPT2LMHeadModel(GPT2Config(**{**model.config.to_dict(), "n_inner": 24}))
    for refused in (
        loaded(wider, "wider", tmp_path),
        loaded(model, "other-eos", tmp_path, eos=3),
        loaded(model, "hooks", tmp_path, saveable=False),
    ):
        assert live["base"].serve(refused, RUN) is None
    engine = live["base"]._engine
    build(VLLMBackend, loaded(wider, "wider", tmp_path), RUN, live)
    assert fake_vllm.started == 2 and live == {} and engine.users == 0  # the old engine was shut first

    no_swaps = types.SimpleNamespace(**{**vars(RUN), "backend_options": {"in_place_weights": False}})
    fixed = VLLMBackend.for_model(loaded(model, "base", tmp_path), no_swaps)
    assert "worker_extension_cls" not in fake_vllm.seen
    assert fixed.serve(loaded(edited(model, lambda m: m.lm_head.weight.add_(0.1)), "x"), no_swaps) is None


def test_a_failed_load_stops_the_engine_with_a_clear_error(fake_vllm, tmp_path) -> None:
    from toxbench.backends.vllm import VLLMBackend
    from toxbench.errors import ToxbenchError

    model = tiny_gpt2()
    base = VLLMBackend.for_model(loaded(model, "base", tmp_path), RUN)
    variant = base.serve(loaded(edited(model, lambda m: m.lm_head.weight.add_(0.1)), "variant"), RUN)
    assert variant is not None

    def broken(method, args=()):
        raise RuntimeError("worker lost")

    base._engine.llm.collective_rpc = broken
    with pytest.raises(ToxbenchError, match="in_place_weights=false"):
        _ = variant.llm
    # Its weights are now unknown: the base may not run on it either, though it "holds" them.
    with pytest.raises(ToxbenchError, match="worker lost"):
        _ = base.llm
