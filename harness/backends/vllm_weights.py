"""Weights swapped on a live vLLM engine, so that one engine serves every variant of a model.

An intervention variant (keys scaled, value vectors zeroed, a bias added) differs from its
parent in a few tensors. Rather than saving it and starting an engine on the copy, the vllm
backend writes the tensors that differ from what the engine holds to a safetensors file and
asks every engine worker to load them through vLLM's in-place reload
(``Worker.reload_weights``), which runs each layer's post-loading step again (CPU builds
re-pack their GEMM weights there). The prefix cache is then reset, since cached blocks
were computed with the old weights.

The file is the transport because an engine's workers may be other processes (vLLM's
multiprocessing, tensor parallelism): they read it from the same machine.
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Mapping
from contextlib import contextmanager
from typing import Any

import torch

# vLLM warns about every layer a partial reload leaves as it was: that is the point here.
_RELOAD_LOGGERS = (
    "vllm.model_executor.model_loader.reload.layerwise",
    "vllm.model_executor.model_loader.reload.inplace",
)

WORKER_EXTENSION = f"{__name__}.WeightSwap"


class WeightSwap:
    """Mixed into vLLM's workers (the engine's ``worker_extension_cls``)."""

    def toxbench_load_weights(self, path: str) -> int:
        """Load the checkpoint-format tensors in ``path`` into the running model; their count."""
        from safetensors.torch import load_file

        weights = load_file(path)
        with _quiet_reload():
            self.reload_weights(weights_iterator=iter(weights.items()), is_checkpoint_format=True)  # type: ignore[attr-defined]
        _reprocess_tied(self.model_runner.get_model())  # type: ignore[attr-defined]
        return len(weights)


def _reprocess_tied(model: torch.nn.Module) -> None:
    """Run the post-loading step again on layers that share a tensor with another layer.

    A tied output head is a layer of its own that the reload does not visit (its tensor arrives
    through the input embedding), and CPU builds pack that head's weights at load time: without
    this its logits would still come from the old embedding."""
    owners: dict[int, list[torch.nn.Module]] = {}
    for module in model.modules():
        for param in module._parameters.values():
            if param is not None:
                owners.setdefault(id(param), []).append(module)
    for modules in owners.values():
        if len(modules) < 2:
            continue
        for module in modules:
            method = getattr(module, "quant_method", None)
            weight = getattr(module, "weight", None)
            if method is not None and weight is not None and weight.numel() > 0:
                method.process_weights_after_loading(module)


@contextmanager
def _quiet_reload():
    loggers = [logging.getLogger(name) for name in _RELOAD_LOGGERS]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        yield
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)


def _same(a: torch.Tensor, b: torch.Tensor) -> bool:
    if a.shape != b.shape or a.dtype != b.dtype:
        return False
    if a.data_ptr() == b.data_ptr() and a.stride() == b.stride():
        return True
    return bool(torch.equal(a, b))


def tensors_to_send(
    held: Mapping[str, torch.Tensor], wanted: Mapping[str, torch.Tensor]
) -> dict[str, torch.Tensor]:
    """The tensors of ``wanted`` to load into an engine holding ``held``: every tensor of each
    module block (a name less its last two parts: ``h.3.mlp`` for ``h.3.mlp.c_fc.weight``)
    in which some tensor differs.

    Whole blocks, because an engine fuses a block's checkpoint tensors into its own (gate and
    up projections into one, q, k and v into one), and a fused layer reloads only when all of
    its parts arrive. A top-level tensor that differs (an embedding) sends everything."""
    changed = [name for name, t in wanted.items() if not _same(held[name], t)]
    blocks = {name.rsplit(".", 2)[0] if name.count(".") >= 2 else "" for name in changed}
    if "" in blocks:
        return dict(wanted)
    return {name: t for name, t in wanted.items() if any(name.startswith(b + ".") for b in blocks)}


def write_weights(tensors: Mapping[str, torch.Tensor]) -> str:
    """``tensors`` in a fresh safetensors file (in shared memory where the machine has it); its path.

    Tensors that share storage (tied embeddings) are written once: the engine ties them itself."""
    from safetensors.torch import save_file

    seen: set[tuple[int, tuple[int, ...]]] = set()
    unique: dict[str, torch.Tensor] = {}
    for name, t in tensors.items():
        key = (t.data_ptr(), tuple(t.shape))
        if key in seen:
            continue
        seen.add(key)
        unique[name] = t.detach().to("cpu").contiguous()
    folder = "/dev/shm" if os.access("/dev/shm", os.W_OK) else None
    fd, path = tempfile.mkstemp(prefix="toxbench-weights-", suffix=".safetensors", dir=folder)
    os.close(fd)
    try:
        save_file(unique, path)
    except BaseException:
        os.unlink(path)
        raise
    return path


def signature(model: Any) -> dict[str, Any]:
    """What two models must share for one engine to run either: configuration (less names and
    versions), generation settings, and every tensor's name, shape and dtype."""
    volatile = {"_name_or_path", "transformers_version", "_commit_hash", "name_or_path"}
    config = {k: v for k, v in model.config.to_dict().items() if k not in volatile}
    generation = getattr(model, "generation_config", None)
    gen = (
        {k: v for k, v in generation.to_dict().items() if k not in volatile} if generation is not None else {}
    )
    tensors = {name: (tuple(t.shape), str(t.dtype)) for name, t in model.state_dict().items()}
    return {"config": config, "generation": gen, "tensors": tensors}
