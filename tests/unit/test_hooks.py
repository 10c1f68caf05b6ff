"""Activation hooks: what they read is what the MLP writes, patches equal weight edits, and they always go away."""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager

import pytest
import torch

from toxbench.mech.hooks import active_hook_count, mlp_activation_hooks, patch_mlp_activations
from toxbench.mech.neurons import neuron_adapter

# The fixtures of tests/unit/conftest.py.
TinyModel = Callable[..., torch.nn.Module]
Logits = Callable[[torch.nn.Module], torch.Tensor]
PreActivationScaled = Callable[
    [torch.nn.Module, Mapping[int, torch.Tensor], float], AbstractContextManager[None]
]
CHOSEN = {0: torch.tensor([1, 5, 30]), 1: torch.tensor([0, 2, 63])}


def test_captured_activations_rebuild_the_mlp_output(
    family: str, tiny_model: TinyModel, logits: Logits, ids: torch.Tensor
) -> None:
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
        assert acts[layer].shape == (*ids.shape, adapter.d_mlp)
        bias = adapter.out_bias(layer)
        rebuilt = acts[layer] @ adapter.values(layer) + (0.0 if bias is None else bias)
        torch.testing.assert_close(rebuilt, outs[layer], atol=1e-5, rtol=1e-5)


def test_hooks_are_removed_on_exit_and_on_error(family: str, tiny_model: TinyModel, logits: Logits) -> None:
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


def test_patching_to_zero_equals_zeroing_value_vectors(
    family: str, tiny_model: TinyModel, logits: Logits
) -> None:
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


def test_scaling_keys_equals_scaling_the_pre_activation(
    family: str, tiny_model: TinyModel, logits: Logits, pre_activation_scaled: PreActivationScaled
) -> None:
    """k_i -> s·k_i with the bias kept is the pre-activation (x·k_i + b_i) -> s·(x·k_i) + b_i (gated: of the gate)."""
    factor = 5.0
    model = tiny_model(family)
    edited = copy.deepcopy(model)
    edited_adapter = neuron_adapter(edited)
    for layer, idx in CHOSEN.items():
        edited_adapter.scale_keys(layer, idx, factor)

    with pre_activation_scaled(model, CHOSEN, factor):
        hooked = logits(model)
    torch.testing.assert_close(hooked, logits(edited), atol=1e-5, rtol=1e-5)
    assert not torch.allclose(hooked, logits(model), atol=1e-3)


def test_hooks_fire_at_every_generation_step(tiny_model: TinyModel, ids: torch.Tensor) -> None:
    model = tiny_model("gpt2")
    seen: list[tuple[int, int]] = []
    with mlp_activation_hooks(model, [1], lambda layer, a: seen.append((layer, a.shape[1]))), torch.no_grad():
        model.generate(ids, max_new_tokens=3, do_sample=False, pad_token_id=0)
    assert seen == [(1, ids.shape[1]), (1, 1), (1, 1)]  # the prompt pass, then one token per step
    assert active_hook_count(model) == 0
