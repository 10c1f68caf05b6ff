"""The lean activation forwards: the same values bit for bit, hooks still fire, and nothing stays swapped."""

from __future__ import annotations

import pytest
import torch
from transformers.activations import NewGELUActivation

from toxbench.backends.lean import lean_activations
from toxbench.mech.hooks import patch_mlp_activations
from toxbench.mech.neurons import neuron_adapter


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
def test_lean_gelu_new_is_bit_identical(dtype: torch.dtype) -> None:
    x = torch.randn(64, 257, generator=torch.Generator().manual_seed(0), dtype=torch.float64) * 4
    x = torch.cat([x.flatten(), torch.tensor([0.0, -0.0, 1e-30, -1e-30, 30.0, -30.0, 1e4, -1e4])]).to(dtype)
    module = NewGELUActivation()
    expected = module(x)
    with torch.inference_mode(), lean_activations(module):
        assert "forward" in module.__dict__  # swapped while active
        got = module(x)
    assert torch.equal(got, expected)
    assert "forward" not in module.__dict__  # and restored after


def test_gpt2_logits_and_patches_unchanged_under_lean_forwards(tiny_model, logits) -> None:
    model = tiny_model("gpt2")
    adapter = neuron_adapter(model)
    zero_some = {0: lambda _layer, a: a.index_fill(-1, torch.tensor([1, 5]), 0.0)}
    with torch.inference_mode():
        plain = logits(model)
        with patch_mlp_activations(model, zero_some):
            patched = logits(model)
        with lean_activations(model):
            assert any("forward" in m.__dict__ for m in model.modules())
            lean_plain = logits(model)
            with patch_mlp_activations(model, zero_some):  # a hook on the swapped module still replaces
                lean_patched = logits(model)
    assert torch.equal(lean_plain, plain)
    assert torch.equal(lean_patched, patched)
    assert not torch.equal(patched, plain)
    assert adapter.n_layers == 2 and not any("forward" in m.__dict__ for m in model.modules())


def test_nothing_is_swapped_when_gradients_are_on(tiny_model) -> None:
    model = tiny_model("gpt2")
    with lean_activations(model):
        assert not any("forward" in m.__dict__ for m in model.modules())
