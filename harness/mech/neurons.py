"""Neurons addressed as (layer, index): keys, values and the activation hook point of each MLP family.

The only module that knows where an architecture keeps its MLP weights. One table row per
supported ``config.model_type`` names the parts; ``MLPAdapter`` presents them in the
protocol's terms (docs/protocol.md), with x the MLP's input:

- dense (GPT-2, GPT-NeoX): a_i = act(x·k_i + b_i); the MLP returns Σ_i a_i v_i + b_out.
- gated (Llama, Mistral, Gemma, Gemma 2): a_i = act(x·k_i + b_i) · (x·u_i + c_i), where the key
  k_i is row i of ``gate_proj`` (transposed to a column), u_i row i of ``up_proj``, and the
  value v_i column i of ``down_proj``; the biases exist only for Llama with ``mlp_bias``.
  "Scaling a key" scales the gate row, so it moves the neuron through its nonlinearity as
  scaling a GPT-2 key does ([A] §5); scaling the up row would only rescale a_i linearly.

Gemma 2 normalises the MLP's output (``post_feedforward_layernorm``) before adding it to the
residual stream: here, as for every family, values live in the MLP module's output space.

Weight layouts differ: GPT-2's Conv1D stores a weight as [in, out], ``nn.Linear`` as
[out, in]. ``keys``/``values`` return views of the live weights in one orientation;
``key_param``/``value_param`` say which axis of the stored parameter indexes the neurons.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal, NamedTuple

import torch
from torch import Tensor, nn

from toxbench.errors import ToxbenchError

Family = Literal["dense", "gated"]
HookSide = Literal["input", "output"]


@dataclass(frozen=True)
class _Layout:
    """Where one architecture keeps its MLP parts (paths relative to the model / to the MLP)."""

    blocks: str  # the ModuleList of transformer blocks; each has an ``mlp``
    key: str  # W_in (gated: the gate projection)
    value: str  # W_out
    act: str
    final_norm: str
    up: str | None = None  # gated MLPs only
    conv1d: bool = False  # weights stored [in, out] (GPT-2 Conv1D) instead of nn.Linear's [out, in]
    bias_flag: str | None = None  # a config flag that gives every MLP projection a bias (Llama's mlp_bias)


_GATED: dict[str, Any] = {
    "key": "gate_proj",
    "up": "up_proj",
    "value": "down_proj",
    "act": "act_fn",
    "final_norm": "model.norm",
}

_LAYOUTS: dict[str, _Layout] = {
    "gpt2": _Layout("transformer.h", "c_fc", "c_proj", "act", "transformer.ln_f", conv1d=True),
    "gpt_neox": _Layout(
        "gpt_neox.layers", "dense_h_to_4h", "dense_4h_to_h", "act", "gpt_neox.final_layer_norm"
    ),
    "llama": _Layout("model.layers", bias_flag="mlp_bias", **_GATED),
    "mistral": _Layout("model.layers", **_GATED),
    "gemma": _Layout("model.layers", **_GATED),
    "gemma2": _Layout("model.layers", **_GATED),
}

SUPPORTED_MODEL_TYPES: tuple[str, ...] = tuple(_LAYOUTS)


class NeuronParam(NamedTuple):
    """A stored weight and the axis along which entry i belongs to neuron i."""

    param: nn.Parameter
    dim: int


class MLPAdapter:
    """Keys, values, activation hook point and in-place edits of one model's MLP neurons."""

    def __init__(self, model: Any, model_type: str, layout: _Layout) -> None:
        self.model = model
        self.model_type = model_type
        self.family: Family = "gated" if layout.up else "dense"
        self._layout = layout
        self._blocks: Any = model.get_submodule(layout.blocks)
        self.n_layers: int = len(self._blocks)
        self.d_model, self.d_mlp = (int(n) for n in self.keys(0).shape)

    def mlp(self, layer: int) -> nn.Module:
        """The MLP module of ``layer``."""
        if not 0 <= layer < self.n_layers:
            raise IndexError(f"layer {layer} is out of range: the model has {self.n_layers} layers")
        return self._blocks[layer].mlp

    def _part(self, layer: int, name: str) -> Any:
        return getattr(self.mlp(layer), name)

    def _in_param(self, layer: int, name: str) -> NeuronParam:
        return NeuronParam(self._part(layer, name).weight, 1 if self._layout.conv1d else 0)

    def key_param(self, layer: int) -> NeuronParam:
        """The stored W_in (gated: gate_proj) and its neuron axis."""
        return self._in_param(layer, self._layout.key)

    def value_param(self, layer: int) -> NeuronParam:
        """The stored W_out and its neuron axis."""
        return NeuronParam(self._part(layer, self._layout.value).weight, 0 if self._layout.conv1d else 1)

    def keys(self, layer: int) -> Tensor:
        """[d_model, d_mlp]: column i is neuron i's key (gated: gate_proj row i)."""
        param, dim = self.key_param(layer)
        return param if dim == 1 else param.T

    def key_bias(self, layer: int) -> Tensor | None:
        """[d_mlp] bias added to x·k_i, or None."""
        return self._part(layer, self._layout.key).bias

    def up_keys(self, layer: int) -> Tensor | None:
        """Gated only: [d_model, d_mlp], column i is up_proj row i; None for dense MLPs."""
        if self._layout.up is None:
            return None
        param, dim = self._in_param(layer, self._layout.up)
        return param if dim == 1 else param.T

    def up_bias(self, layer: int) -> Tensor | None:
        """Gated only: [d_mlp] bias of up_proj, or None."""
        return None if self._layout.up is None else self._part(layer, self._layout.up).bias

    def values(self, layer: int) -> Tensor:
        """[d_mlp, d_model]: row i is neuron i's value vector."""
        param, dim = self.value_param(layer)
        return param if dim == 0 else param.T

    def out_bias(self, layer: int) -> Tensor | None:
        """[d_model] bias the MLP adds to its output (the live parameter), or None."""
        return self._part(layer, self._layout.value).bias

    def ensure_out_bias(self, layer: int) -> Tensor | None:
        """The MLP's output bias, created (zero) where the family can have one; None where it cannot.

        Llama has ``mlp_bias``: switching it on gives every projection of every layer a zero bias,
        so that a saved model reloads with the same parameters. Mistral and Gemma have no such flag.
        """
        bias = self.out_bias(layer)
        if bias is not None or self._layout.bias_flag is None:
            return bias
        setattr(self.model.config, self._layout.bias_flag, True)
        names = [n for n in (self._layout.key, self._layout.up, self._layout.value) if n]
        for index in range(self.n_layers):
            for name in names:
                proj = self._part(index, name)
                if proj.bias is None:
                    proj.bias = nn.Parameter(
                        torch.zeros(proj.weight.shape[0], dtype=proj.weight.dtype, device=proj.weight.device)
                    )
        return self.out_bias(layer)

    def activation_fn(self, layer: int) -> nn.Module:
        """The nonlinearity applied to x·k_i + b_i."""
        return self._part(layer, self._layout.act)

    def activation_hook_point(self, layer: int) -> tuple[nn.Module, HookSide]:
        """The module whose forward ``"input"`` or ``"output"`` is the activation a, [..., d_mlp].

        Dense: the output of the nonlinearity (its input is the pre-activation). Gated:
        act(gate)·up is computed inline, so the point is the input of the value projection.
        """
        if self.family == "gated":
            return self._part(layer, self._layout.value), "input"
        return self.activation_fn(layer), "output"

    def scale_keys(self, layer: int, idx: Tensor | Sequence[int], factor: float) -> None:
        """Multiply the keys of neurons ``idx`` by ``factor`` in place; biases untouched."""
        param, dim = self.key_param(layer)
        index = _as_index(idx, param.device)
        with torch.no_grad():
            param.index_copy_(dim, index, param.index_select(dim, index) * factor)

    def zero_values(self, layer: int, idx: Tensor | Sequence[int]) -> None:
        """Zero the value vectors of neurons ``idx`` in place: they still fire but write nothing."""
        param, dim = self.value_param(layer)
        with torch.no_grad():
            param.index_fill_(dim, _as_index(idx, param.device), 0.0)

    def unembedding(self) -> Tensor:
        """[d_model, vocab]: W_U, for projecting vectors onto the vocabulary."""
        return self.model.get_output_embeddings().weight.T

    def final_norm(self) -> nn.Module:
        """The norm applied to the residual stream before the unembedding."""
        return self.model.get_submodule(self._layout.final_norm)


def _as_index(idx: Tensor | Sequence[int], device: torch.device) -> Tensor:
    return torch.as_tensor(idx, dtype=torch.long, device=device).reshape(-1)


def neuron_adapter(model: nn.Module) -> MLPAdapter:
    """The adapter for ``model``'s MLP family, chosen from ``model.config.model_type``."""
    model_type = getattr(getattr(model, "config", None), "model_type", None)
    layout = _LAYOUTS.get(model_type) if isinstance(model_type, str) else None
    if layout is None:
        raise ToxbenchError(
            f"no neuron adapter for model type {model_type!r} ({type(model).__name__}); "
            f"supported model types: {', '.join(SUPPORTED_MODEL_TYPES)}"
        )
    return MLPAdapter(model, str(model_type), layout)
