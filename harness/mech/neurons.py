"""Neurons addressed as (layer, index): keys, values and the activation hook point of each MLP family.

The only module that knows where an architecture keeps its MLP weights. A table row per
well-known ``config.model_type`` names the parts; any other model's layout is found from its
loaded modules (``discover_layout``: a gated MLP with gate/up/down projections, a fused
``gate_up_proj``, or a dense MLP of two projections and a nonlinearity), and
``register_mlp_layout`` names what that search cannot find. ``MLPAdapter`` presents the parts
in the protocol's terms (docs/protocol.md), with x the MLP's input:

- dense (GPT-2, GPT-NeoX): a_i = act(x·k_i + b_i); the MLP returns Σ_i a_i v_i + b_out.
- gated (Llama, Mistral, Gemma, Gemma 2): a_i = act(x·k_i + b_i) · (x·u_i + c_i), where the key
  k_i is row i of ``gate_proj`` (transposed to a column), u_i row i of ``up_proj``, and the
  value v_i column i of ``down_proj``; the biases exist only for Llama with ``mlp_bias``.
  "Scaling a key" scales the gate row, so it moves the neuron through its nonlinearity as
  scaling a GPT-2 key does ([A] §5); scaling the up row would only rescale a_i linearly.
- fused gated (Phi-3): one ``gate_up_proj`` holds the gate rows, then the up rows; keys and
  up keys are views of its two halves.

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
    fused: bool = False  # ``key`` holds the gate rows then the up rows (``up`` names the same module)
    mlp: str = "mlp"  # the MLP inside a block ("": the block holds the projections itself, as OPT's)


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

SUPPORTED_MODEL_TYPES: tuple[str, ...] = tuple(_LAYOUTS)  # by name; others by structure
_REGISTERED: dict[str, _Layout] = {}

_GATED_NAMES = ("gate_proj", "up_proj", "down_proj")
_ACT_NAMES = ("act_fn", "activation_fn", "act", "activation")
_NORM_NAMES = ("norm", "final_layer_norm", "ln_f", "final_layernorm", "norm_f")
_MOE_HINTS = ("experts", "shared_expert", "router", "block_sparse_moe")


def register_mlp_layout(
    model_type: str,
    *,
    blocks: str,
    key: str,
    value: str,
    act: str,
    final_norm: str,
    up: str | None = None,
    conv1d: bool = False,
    fused: bool = False,
    mlp: str = "mlp",
) -> None:
    """Name where models of ``model_type`` keep their MLP parts, for a layout the structure search
    cannot find: ``blocks`` (the ModuleList of blocks, each with an ``mlp``) and ``final_norm``
    relative to the model, the rest relative to the MLP. ``up`` makes it gated; ``fused`` says
    ``key`` holds the gate rows then the up rows; ``conv1d`` that weights are stored [in, out];
    ``mlp`` is the MLP's path inside a block ("" where the block holds the projections itself)."""
    if model_type in _LAYOUTS:
        raise ToxbenchError(f"model type {model_type!r} already has a built-in MLP layout")
    _REGISTERED[model_type] = _Layout(
        blocks, key, value, act, final_norm, up=key if fused else up, conv1d=conv1d, fused=fused, mlp=mlp
    )


def _is_projection(module: nn.Module) -> bool:
    return isinstance(module, nn.Linear) or type(module).__name__ == "Conv1D"


def _in_out(module: nn.Module) -> tuple[int, int]:
    """A projection's (input, output) widths, nn.Linear or GPT-2's Conv1D."""
    if isinstance(module, nn.Linear):
        return module.in_features, module.out_features
    weight: Tensor = module.weight  # type: ignore[assignment]  # Conv1D stores [in, out]
    return int(weight.shape[0]), int(weight.shape[1])


def discover_layout(model: nn.Module) -> _Layout:
    """The MLP layout of a model no table row names, found from its modules; a ToxbenchError that
    says what is missing where none is found (mixture-of-experts MLPs are refused by name)."""
    what = (
        f"{type(model).__name__} (model type {getattr(getattr(model, 'config', None), 'model_type', None)!r})"
    )
    blocks_name = next(
        (
            name
            for name, module in model.named_modules()
            if isinstance(module, nn.ModuleList) and len(module) and all(hasattr(b, "mlp") for b in module)
        ),
        None,
    )
    if blocks_name is None:
        raise ToxbenchError(
            f"no neuron adapter for {what}: no list of blocks with an `mlp` module was found; name its "
            "layout with toxbench.mech.neurons.register_mlp_layout"
        )
    blocks: Any = model.get_submodule(blocks_name)
    mlp = blocks[0].mlp
    children = dict(mlp.named_children())
    moe = [h for h in _MOE_HINTS if h in children]
    if moe:
        raise ToxbenchError(
            f"{what} has a mixture-of-experts MLP ({', '.join(moe)}): its neurons are split across "
            "experts that each token sees only some of, so the papers' neuron analysis (one key and one "
            "value per neuron, seen by every token) does not apply; toxbench does not support it"
        )
    act = next((n for n in _ACT_NAMES if n in children), None)
    prefix = blocks_name.rsplit(".", 1)[0] if "." in blocks_name else ""
    norm = next(
        (
            f"{prefix}.{n}" if prefix else n
            for n in _NORM_NAMES
            if _has_module(model, f"{prefix}.{n}" if prefix else n)
        ),
        None,
    )
    if act is None or norm is None:
        missing = "its nonlinearity" if act is None else "the final norm beside its blocks"
        raise ToxbenchError(
            f"no neuron adapter for {what}: {missing} was not found; name its layout with "
            "toxbench.mech.neurons.register_mlp_layout"
        )
    if all(n in children for n in _GATED_NAMES):
        return _Layout(blocks_name, "gate_proj", "down_proj", act, norm, up="up_proj")
    if "gate_up_proj" in children and "down_proj" in children:
        return _Layout(blocks_name, "gate_up_proj", "down_proj", act, norm, up="gate_up_proj", fused=True)
    projections = {n: m for n, m in children.items() if _is_projection(m)}
    embeddings: Any = model.get_input_embeddings()  # type: ignore[operator]
    d_model = int(embeddings.embedding_dim)
    into = [n for n, m in projections.items() if _in_out(m)[0] == d_model and _in_out(m)[1] != d_model]
    out_of = [n for n, m in projections.items() if _in_out(m)[1] == d_model and _in_out(m)[0] != d_model]
    if len(projections) == 2 and len(into) == 1 and len(out_of) == 1:
        conv1d = type(projections[into[0]]).__name__ == "Conv1D"
        return _Layout(blocks_name, into[0], out_of[0], act, norm, conv1d=conv1d)
    raise ToxbenchError(
        f"no neuron adapter for {what}: its MLP ({type(mlp).__name__}: {', '.join(children)}) is neither "
        "gated (gate_proj, up_proj, down_proj), fused (gate_up_proj, down_proj) nor dense (one projection "
        "in, one out); name its layout with toxbench.mech.neurons.register_mlp_layout"
    )


def _has_module(model: nn.Module, name: str) -> bool:
    try:
        model.get_submodule(name)
    except AttributeError:
        return False
    return True


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
        if layout.fused:  # [2 d_mlp, d_model]: the gate rows, then the up rows
            self.d_mlp = int(self._part(0, layout.key).weight.shape[0]) // 2
        self.d_model, self.d_mlp = (int(n) for n in self.keys(0).shape)

    def mlp(self, layer: int) -> nn.Module:
        """The MLP module of ``layer``."""
        if not 0 <= layer < self.n_layers:
            raise IndexError(f"layer {layer} is out of range: the model has {self.n_layers} layers")
        block = self._blocks[layer]
        return block.get_submodule(self._layout.mlp) if self._layout.mlp else block

    def _part(self, layer: int, name: str) -> Any:
        return getattr(self.mlp(layer), name)

    def _in_param(self, layer: int, name: str, half: int = 0) -> NeuronParam:
        """An input projection's weight and its neuron axis; of a fused one, the ``half``-th half (a view)."""
        weight = self._part(layer, name).weight
        if self._layout.fused:
            return NeuronParam(weight[half * self.d_mlp : (half + 1) * self.d_mlp], 0)
        return NeuronParam(weight, 1 if self._layout.conv1d else 0)

    def _in_bias(self, layer: int, name: str, half: int = 0) -> Tensor | None:
        bias = self._part(layer, name).bias
        if bias is None or not self._layout.fused:
            return bias
        return bias[half * self.d_mlp : (half + 1) * self.d_mlp]

    def key_param(self, layer: int) -> NeuronParam:
        """The stored W_in (gated: gate_proj; fused: a view of gate_up_proj's gate half) and its neuron axis."""
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
        return self._in_bias(layer, self._layout.key)

    def up_keys(self, layer: int) -> Tensor | None:
        """Gated only: [d_model, d_mlp], column i is up_proj row i; None for dense MLPs."""
        if self._layout.up is None:
            return None
        param, dim = self._in_param(layer, self._layout.up, half=1)
        return param if dim == 1 else param.T

    def up_bias(self, layer: int) -> Tensor | None:
        """Gated only: [d_mlp] bias of up_proj, or None."""
        return None if self._layout.up is None else self._in_bias(layer, self._layout.up, half=1)

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
        names = list(dict.fromkeys(n for n in (self._layout.key, self._layout.up, self._layout.value) if n))
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

    def unembedding_bias(self) -> Tensor | None:
        """[vocab] bias added to the logits (GPT-J's ``lm_head`` has one), or None."""
        return getattr(self.model.get_output_embeddings(), "bias", None)

    def final_norm(self) -> nn.Module:
        """The norm applied to the residual stream before the unembedding."""
        return self.model.get_submodule(self._layout.final_norm)


def _as_index(idx: Tensor | Sequence[int], device: torch.device) -> Tensor:
    return torch.as_tensor(idx, dtype=torch.long, device=device).reshape(-1)


def neuron_adapter(model: nn.Module) -> MLPAdapter:
    """The adapter for ``model``'s MLP: by ``config.model_type`` where a table row or
    ``register_mlp_layout`` names it, else from the model's structure (``discover_layout``)."""
    model_type = getattr(getattr(model, "config", None), "model_type", None)
    name = str(model_type)
    layout = _LAYOUTS.get(name) or _REGISTERED.get(name)
    if layout is None:
        layout = discover_layout(model)
    return MLPAdapter(model, name, layout)
