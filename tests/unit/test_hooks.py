"""Activation hooks: what they read is what the MLP writes, patches equal weight edits, and they always go away."""

from __future__ import annotations

import copy

import pytest
import torch
from transformers import (
    Gemma2Config,
    Gemma2ForCausalLM,
    GemmaConfig,
    GemmaForCausalLM,
    GPT2Config,
    GPT2LMHeadModel,
    GPTNeoXConfig,
    GPTNeoXForCausalLM,
    LlamaConfig,
    LlamaForCausalLM,
    MistralConfig,
    MistralForCausalLM,
)

from harness.mech.hooks import active_hook_count, mlp_activation_hooks, patch_mlp_activations
from harness.mech.neurons import neuron_adapter

_GATED = dict(
    hidden_size=32,
    intermediate_size=64,
    num_hidden_layers=2,
    num_attention_heads=2,
    num_key_value_heads=2,
    vocab_size=100,
    max_position_embeddings=64,
)
BUILDERS = {
    "gpt2": lambda: GPT2LMHeadModel(
        GPT2Config(n_layer=2, n_embd=32, n_head=2, n_positions=64, vocab_size=100)
    ),
    "gpt_neox": lambda: GPTNeoXForCausalLM(
        GPTNeoXConfig(
            hidden_size=32,
            num_hidden_layers=2,
            num_attention_heads=2,
            intermediate_size=64,
            vocab_size=100,
            max_position_embeddings=64,
        )
    ),
    "llama": lambda: LlamaForCausalLM(LlamaConfig(mlp_bias=True, **_GATED)),
    "mistral": lambda: MistralForCausalLM(MistralConfig(**_GATED)),
    "gemma": lambda: GemmaForCausalLM(GemmaConfig(head_dim=16, **_GATED)),
    "gemma2": lambda: Gemma2ForCausalLM(Gemma2Config(head_dim=16, **_GATED)),
}
IDS = torch.randint(0, 100, (2, 7), generator=torch.Generator().manual_seed(1))
CHOSEN = {0: torch.tensor([1, 5, 30]), 1: torch.tensor([0, 2, 63])}


def tiny_model(family: str) -> torch.nn.Module:
    """A seeded random model; every parameter is perturbed so that biases are not zero."""
    torch.manual_seed(0)
    model = BUILDERS[family]().eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    return model


def logits(model: torch.nn.Module) -> torch.Tensor:
    with torch.no_grad():
        return model(IDS).logits


@pytest.mark.parametrize("family", BUILDERS)
def test_captured_activations_rebuild_the_mlp_output(family: str) -> None:
    model = tiny_model(family)
    adapter = neuron_adapter(model)
    acts: dict[int, torch.Tensor] = {}
    outs: dict[int, torch.Tensor] = {}
    handles = [
        adapter.mlp(layer).register_forward_hook(lambda _m, _i, out, layer=layer: outs.setdefault(layer, out))
        for layer in range(adapter.n_layers)
    ]
    with mlp_activation_hooks(model, range(adapter.n_layers), lambda layer, a: acts.setdefault(layer, a)):
        logits(model)
    for handle in handles:
        handle.remove()
    for layer in range(adapter.n_layers):
        assert acts[layer].shape == (*IDS.shape, adapter.d_mlp)
        bias = adapter.out_bias(layer)
        rebuilt = acts[layer] @ adapter.values(layer) + (0.0 if bias is None else bias)
        torch.testing.assert_close(rebuilt, outs[layer], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("family", BUILDERS)
def test_hooks_are_removed_on_exit_and_on_error(family: str) -> None:
    model = tiny_model(family)
    before = logits(model)
    assert active_hook_count(model) == 0

    with mlp_activation_hooks(model, [0, 1], lambda layer, a: None):
        assert active_hook_count(model) == 2
    assert active_hook_count(model) == 0

    with (
        pytest.raises(RuntimeError, match="body"),
        mlp_activation_hooks(model, [0, 1, 1], lambda layer, a: None),
    ):
        assert active_hook_count(model) == 2  # a repeated layer is hooked once
        raise RuntimeError("body")
    assert active_hook_count(model) == 0

    with (
        pytest.raises(RuntimeError, match="patch"),
        patch_mlp_activations(model, {1: lambda layer, a: 0 * a}),
    ):
        assert not torch.equal(logits(model), before)
        raise RuntimeError("patch")
    assert active_hook_count(model) == 0

    with (
        pytest.raises(ValueError, match="shape"),
        patch_mlp_activations(model, {0: lambda layer, a: a[..., :3]}),
    ):
        logits(model)
    assert active_hook_count(model) == 0
    torch.testing.assert_close(logits(model), before, atol=0, rtol=0)


@pytest.mark.parametrize("family", BUILDERS)
def test_patching_to_zero_equals_zeroing_value_vectors(family: str) -> None:
    model = tiny_model(family)
    edited = copy.deepcopy(model)
    adapter = neuron_adapter(edited)
    for layer, idx in CHOSEN.items():
        adapter.zero_values(layer, idx)

    def zero(layer: int, a: torch.Tensor) -> torch.Tensor:
        a = a.clone()
        a[..., CHOSEN[layer]] = 0
        return a

    with patch_mlp_activations(model, dict.fromkeys(CHOSEN, zero)):
        patched = logits(model)
    torch.testing.assert_close(patched, logits(edited), atol=1e-5, rtol=1e-5)
    assert not torch.allclose(patched, logits(model), atol=1e-3)


@pytest.mark.parametrize("family", BUILDERS)
def test_scaling_keys_equals_scaling_the_pre_activation(family: str) -> None:
    """k_i -> s·k_i with the bias kept is the pre-activation (x·k_i + b_i) -> s·(x·k_i) + b_i (gated: of the gate)."""
    factor = 5.0
    model = tiny_model(family)
    edited = copy.deepcopy(model)
    edited_adapter = neuron_adapter(edited)
    for layer, idx in CHOSEN.items():
        edited_adapter.scale_keys(layer, idx, factor)

    adapter = neuron_adapter(model)
    handles = []
    for layer, idx in CHOSEN.items():
        bias = adapter.key_bias(layer)
        b = torch.zeros(adapter.d_mlp) if bias is None else bias.detach()

        def scale(_m, args, idx=idx, b=b):
            pre = args[0].clone()
            pre[..., idx] = factor * (pre[..., idx] - b[idx]) + b[idx]
            return (pre,)

        handles.append(adapter.activation_fn(layer).register_forward_pre_hook(scale))
    hooked = logits(model)
    for handle in handles:
        handle.remove()
    torch.testing.assert_close(hooked, logits(edited), atol=1e-5, rtol=1e-5)
    assert not torch.allclose(hooked, logits(model), atol=1e-3)


def test_hooks_fire_at_every_generation_step() -> None:
    model = tiny_model("gpt2")
    seen: list[tuple[int, int]] = []
    with mlp_activation_hooks(model, [1], lambda layer, a: seen.append((layer, a.shape[1]))), torch.no_grad():
        model.generate(IDS, max_new_tokens=3, do_sample=False, pad_token_id=0)
    assert seen == [(1, IDS.shape[1]), (1, 1), (1, 1)]  # the prompt pass, then one token per step
    assert active_hook_count(model) == 0
