"""Read or replace MLP neuron activations during the loaded model's own forward passes.

The hooks are plain PyTorch forward hooks on the point the neuron adapter names for each
layer (dense: the output of the nonlinearity; gated: the input of ``down_proj``), which is
what TransformerLens calls ``blocks.{l}.mlp.hook_post``. They fire inside ``model(...)`` and
``model.generate(...)``, so any caller (the HF backend's generation, a scoring pass) is seen.

Why not TransformerLens 4.3.0's ``TransformerBridge``: it can wrap
an already loaded model without copying a weight (``sources.build_bridge_from_module``; the
bridge's parameters are the model's), and its ``blocks.{l}.mlp.hook_post`` fires during the
HF model's own forward and generate, for all six families here. But it wraps by replacing
the model's submodules in place, for good (there is no unwrap): every state_dict key gains
``_original_component``, ``save_pretrained`` fails, ``copy.deepcopy`` fails on GPT-2 after a
forward with gradients, the MLP becomes a bridge component, and greedy generation on a small
CPU model runs ~1.6x slower. ``boot_transformers(name, hf_model=...)`` in addition switches
the model to eager attention and, given an in-memory tokenizer, fails reloading it by name.
The one loaded model must stay an ordinary transformers model that weight edits deep-copy,
save and hand to any backend, so these hooks never touch the module tree.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager

from torch import Tensor, nn
from torch.utils.hooks import RemovableHandle

from toxbench.mech.neurons import HookSide, neuron_adapter

ActivationFn = Callable[[int, Tensor], object]  # (layer, a [..., d_mlp]); the result is ignored
PatchFn = Callable[[int, Tensor], Tensor]  # (layer, a) -> the activation to use instead


def _register(
    module: nn.Module, side: HookSide, layer: int, fn: ActivationFn, patch: bool
) -> RemovableHandle:
    def value(act: Tensor) -> Tensor | None:
        result = fn(layer, act)
        if not patch:
            return None
        if not isinstance(result, Tensor) or result.shape != act.shape:
            raise ValueError(
                f"layer {layer}: a patch must return a tensor of shape {tuple(act.shape)}, "
                f"got {getattr(result, 'shape', type(result).__name__)}"
            )
        return result

    if side == "output":
        return module.register_forward_hook(lambda _m, _args, out: value(out))

    def pre_hook(_m: nn.Module, args: tuple) -> tuple | None:
        new = value(args[0])
        return None if new is None else (new, *args[1:])

    return module.register_forward_pre_hook(pre_hook)


@contextmanager
def _hooked(model: nn.Module, fns: Mapping[int, ActivationFn], patch: bool) -> Iterator[None]:
    adapter = neuron_adapter(model)
    handles: list[RemovableHandle] = []
    try:
        for layer, fn in fns.items():
            module, side = adapter.activation_hook_point(layer)
            handles.append(_register(module, side, layer, fn, patch))
        yield
    finally:
        for handle in handles:
            handle.remove()


@contextmanager
def mlp_activation_hooks(model: nn.Module, layers: Iterable[int], fn: ActivationFn) -> Iterator[None]:
    """While active, each forward calls ``fn(layer, a)`` with every listed layer's activation a."""
    with _hooked(model, dict.fromkeys(layers, fn), patch=False):
        yield


@contextmanager
def patch_mlp_activations(model: nn.Module, layer_to_fn: Mapping[int, PatchFn]) -> Iterator[None]:
    """While active, each forward replaces layer l's activation a by ``layer_to_fn[l](l, a)``."""
    with _hooked(model, layer_to_fn, patch=True):
        yield


def active_hook_count(model: nn.Module) -> int:
    """Forward hooks and pre-hooks on the model's modules, whoever registered them."""
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules())


@contextmanager
def patch_to_means(model: nn.Module, masks, target) -> Iterator[None]:
    """While active, the masked neurons' activation is set to ``target`` (e.g. another model's mean).

    ``masks`` and ``target`` are [n_layers, d_mlp] arrays. While generating, the last position
    is patched ([B]'s code: the position being predicted, step by step); in a teacher-forced
    pass (``toxbench.passes.teacher_forced``: perplexity, features) every position is, since
    every position is then being predicted.
    """
    import numpy as np
    import torch

    from toxbench.passes import is_teacher_forced

    fns: dict[int, PatchFn] = {}
    for layer in range(masks.shape[0]):
        idx = torch.from_numpy(np.nonzero(masks[layer])[0])
        if len(idx) == 0:
            continue
        values = torch.from_numpy(np.asarray(target[layer])[idx.numpy()])

        def fn(_layer: int, act: Tensor, idx: Tensor = idx, values: Tensor = values) -> Tensor:
            act = act.clone()
            v = values.to(act.dtype).to(act.device)
            if is_teacher_forced():
                act[..., idx.to(act.device)] = v
            else:
                act[:, -1, idx.to(act.device)] = v
            return act

        fns[layer] = fn
    with patch_mlp_activations(model, fns):
        yield
