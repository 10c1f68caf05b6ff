"""Interventions as weight edits ([A] §3.3, §5; [B] §7).

Each edit returns a new model (a deep copy; the original is untouched) that is an ordinary
transformers model: any backend runs it, vLLM included, and ``save_pretrained`` keeps the
edit. Only where a family has nowhere to put an edit in its weights is a hook used
instead (documented per edit), and such a model is marked as not saveable.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from toxbench.mech.neurons import neuron_adapter

NeuronId = tuple[int, int]  # (layer, index)


@dataclass
class Edit:
    """An edited model and what was done to it."""

    model: object
    saveable: bool = True


def _by_layer(neurons: Sequence[NeuronId]) -> dict[int, torch.Tensor]:
    layers: dict[int, list[int]] = {}
    for layer, index in neurons:
        layers.setdefault(int(layer), []).append(int(index))
    return {layer: torch.tensor(sorted(set(idx)), dtype=torch.long) for layer, idx in layers.items()}


def ablate_neurons(model, neurons: Sequence[NeuronId]) -> Edit:
    """Zero the value vectors of ``neurons``: they still fire but write nothing."""
    edited = copy.deepcopy(model)
    adapter = neuron_adapter(edited)
    for layer, idx in _by_layer(neurons).items():
        adapter.zero_values(layer, idx)
    return Edit(edited)


def scale_keys(model, neurons: Sequence[NeuronId], factor: float) -> Edit:
    """Scale the keys of ``neurons`` by ``factor``, biases untouched ([A] §5's un-alignment)."""
    edited = copy.deepcopy(model)
    adapter = neuron_adapter(edited)
    for layer, idx in _by_layer(neurons).items():
        adapter.scale_keys(layer, idx, factor)
    return Edit(edited)


def shift_residual(model, direction: np.ndarray, alpha: float, normalize: bool = True) -> Edit:
    """Add ``alpha`` * direction to the residual stream after the last MLP, at every position.

    ``normalize`` (default) uses the unit direction, so α is in the residual stream's units;
    without, the vector as given ([A]'s units: α x the raw probe or value vector). Subtracting
    a direction is ``alpha < 0``. Where the family has or can have an MLP output bias (GPT-2,
    GPT-NeoX; Llama through ``mlp_bias``), the shift is added to the last MLP's bias and the
    edit survives saving. Elsewhere (Mistral, Gemma, Gemma 2) it is a hook on the final norm's
    input, and the model is marked not saveable.
    """
    edited = copy.deepcopy(model)
    adapter = neuron_adapter(edited)
    last = adapter.n_layers - 1
    w = torch.as_tensor(direction, dtype=torch.float64)
    shift = alpha * (w / w.norm() if normalize else w)
    bias = adapter.ensure_out_bias(last)
    if bias is not None:
        with torch.no_grad():
            bias.add_(shift.to(bias.dtype).to(bias.device))
        return Edit(edited)
    # The residual stream after the last MLP is what the final norm reads: shift its input. (A hook
    # on the MLP's output would not do for Gemma 2, which normalises that output first.)
    norm = adapter.final_norm()
    offset = shift.to(next(edited.parameters()).dtype).to(next(edited.parameters()).device)
    norm.register_forward_pre_hook(lambda _m, args: (args[0] + offset, *args[1:]))
    return Edit(edited, saveable=False)  # a forward hook: this family has no MLP bias to carry the shift
