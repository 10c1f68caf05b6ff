"""Weight edits: each equals its hook definition, leaves the original model alone, and survives save and reload."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import AutoModelForCausalLM

from toxbench.mech.edits import Edit, ablate_neurons, scale_keys, shift_residual
from toxbench.mech.hooks import active_hook_count, patch_mlp_activations
from toxbench.mech.neurons import neuron_adapter

# The fixtures of tests/unit/conftest.py.
TinyModel = Callable[..., torch.nn.Module]
Logits = Callable[[torch.nn.Module], torch.Tensor]
PreActivationScaled = Callable[
    [torch.nn.Module, Mapping[int, torch.Tensor], float], AbstractContextManager[None]
]

CHOSEN = {0: torch.tensor([1, 5, 30]), 1: torch.tensor([0, 2, 63])}
# The same neurons, out of order and with one repeated: an edit applies once per neuron.
NEURONS = [(1, 63), (0, 5), (1, 2), (0, 1), (1, 0), (0, 30), (1, 2)]
FACTOR = 5.0
ALPHA = -3.0
DIRECTION = np.random.default_rng(0).normal(size=32)
EDITS: dict[str, Callable[[torch.nn.Module], Edit]] = {
    "ablate": lambda model: ablate_neurons(model, NEURONS),
    "scale_keys": lambda model: scale_keys(model, NEURONS, FACTOR),
    "shift_residual": lambda model: shift_residual(model, DIRECTION, ALPHA),
}
HOOKED_SHIFT = (
    "mistral",
    "gemma",
    "gemma2",
    "qwen2",
    "qwen3",
    "gemma3_text",
    "phi3",
    "olmo2",
)  # no MLP bias to put the shift in


def test_shift_residual_adds_the_shift_to_the_residual_stream(
    family: str, tiny_model: TinyModel, logits: Logits
) -> None:
    """The edit equals adding alpha·unit(w) to the final norm's input, the residual stream after the last MLP."""
    model = tiny_model(family)
    edit = shift_residual(model, DIRECTION, ALPHA)
    assert edit.saveable == (family not in HOOKED_SHIFT)

    shift = torch.as_tensor(ALPHA * DIRECTION / np.linalg.norm(DIRECTION), dtype=torch.float32)
    handle = (
        neuron_adapter(model)
        .final_norm()
        .register_forward_pre_hook(lambda _m, args: (args[0] + shift, *args[1:]))
    )
    hooked = logits(model)
    handle.remove()
    torch.testing.assert_close(logits(edit.model), hooked, atol=1e-5, rtol=1e-5)
    assert not torch.allclose(hooked, logits(model), atol=1e-3)


def test_ablate_equals_patching_activations_to_zero(
    family: str, tiny_model: TinyModel, logits: Logits
) -> None:
    """Zeroed value vectors write what the neurons would write with activation 0."""
    model = tiny_model(family)
    edited = ablate_neurons(model, NEURONS).model
    keep = {
        layer: torch.ones(neuron_adapter(model).d_mlp).index_fill_(0, idx, 0.0)
        for layer, idx in CHOSEN.items()
    }
    with patch_mlp_activations(model, dict.fromkeys(CHOSEN, lambda layer, a: a * keep[layer])):
        patched = logits(model)
    torch.testing.assert_close(logits(edited), patched, atol=1e-5, rtol=1e-5)
    assert not torch.allclose(patched, logits(model), atol=1e-3)


def test_scale_keys_equals_scaling_the_pre_activation(
    family: str, tiny_model: TinyModel, logits: Logits, pre_activation_scaled: PreActivationScaled
) -> None:
    """Keys scaled by s, biases kept, is the pre-activation s·(pre - b) + b on exactly the chosen neurons."""
    model = tiny_model(family)
    edited = scale_keys(model, NEURONS, FACTOR).model
    with pre_activation_scaled(model, CHOSEN, FACTOR):
        hooked = logits(model)
    torch.testing.assert_close(logits(edited), hooked, atol=1e-5, rtol=1e-5)
    assert not torch.allclose(hooked, logits(model), atol=1e-3)


@pytest.mark.parametrize("edit", EDITS)
def test_edits_leave_the_original_untouched(family: str, edit: str, tiny_model: TinyModel) -> None:
    """An edit works on a deep copy: the original's weights, config and hooks are as they were, no tensor shared."""
    model = tiny_model(family)
    before = {name: t.clone() for name, t in model.state_dict().items()}
    config = model.config.to_dict()

    edited = EDITS[edit](model).model

    after = model.state_dict()
    assert after.keys() == before.keys()
    assert all(torch.equal(after[name], t) for name, t in before.items())
    assert model.config.to_dict() == config
    assert active_hook_count(model) == 0
    ptrs = {t.data_ptr() for t in after.values()}
    assert not ptrs & {t.data_ptr() for t in edited.state_dict().values()}


@pytest.mark.parametrize("edit", EDITS)
@pytest.mark.parametrize("family", ["gpt2", "gpt_neox", "llama"])
def test_saved_edit_reloads_with_the_same_logits(
    family: str, edit: str, tiny_model: TinyModel, logits: Logits, tmp_path: Path
) -> None:
    """The edit lives in the weights and config: save_pretrained then from_pretrained gives the edited model."""
    result = EDITS[edit](tiny_model(family))
    assert result.saveable
    result.model.save_pretrained(tmp_path, safe_serialization=True)
    assert (tmp_path / "model.safetensors").is_file()

    reloaded = AutoModelForCausalLM.from_pretrained(tmp_path).eval()
    torch.testing.assert_close(logits(reloaded), logits(result.model), atol=1e-5, rtol=1e-5)
    if family == "llama":
        assert reloaded.config.mlp_bias == (edit == "shift_residual")


@pytest.mark.parametrize("family", HOOKED_SHIFT)
def test_hooked_shift_is_marked_not_saveable(family: str, tiny_model: TinyModel) -> None:
    """Without an MLP bias the shift is a forward hook on the copy, which save_pretrained would drop."""
    model = tiny_model(family)
    edit = shift_residual(model, DIRECTION, ALPHA)
    assert not edit.saveable
    assert (active_hook_count(edit.model), active_hook_count(model)) == (1, 0)
