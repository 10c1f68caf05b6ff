"""Import the papers' released artefacts into ordinary, safe files.

Lee et al. released their DPO GPT2-medium as ``dpo.pt``: ``{"state": state_dict}``. It is
read with ``torch.load(..., weights_only=True)`` (a file that needs pickle is refused),
checked against the base model's parameters (names and shapes), and written as a
safetensors model folder with the base's config and tokenizer, which any ``--aligned``
accepts.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from toxbench.errors import ToxbenchError
from toxbench.io import atomic_write_json, sha256_file


def _state_dict(obj: Any, path: Path) -> dict[str, Any]:
    import torch

    state = obj.get("state", obj) if isinstance(obj, dict) else obj
    if (
        not isinstance(state, dict)
        or not state
        or not all(isinstance(v, torch.Tensor) for v in state.values())
    ):
        keys = ", ".join(map(str, list(obj)[:5])) if isinstance(obj, dict) else type(obj).__name__
        raise ToxbenchError(
            f"checkpoint {str(path)!r} is not a state dict (found: {keys}): expected {{'state': state_dict}} "
            "or a state dict of tensors"
        )
    return state


def _match_keys(state: dict[str, Any], model) -> dict[str, Any]:
    """``state`` with the prefix a wrapper may have added removed, where that makes its names the model's."""
    expected = set(model.state_dict())
    if set(state) & expected:
        return state
    for prefix in ("model.", "module.", "policy."):
        stripped = {k.removeprefix(prefix): v for k, v in state.items()}
        if set(stripped) & expected:
            return stripped
    return state


def import_dpo_checkpoint(
    path: Path, base_spec: str, output: Path, device: str | None = None, force: bool = False
) -> dict[str, Any]:
    """Convert ``path`` (a ``.pt`` state dict of a fine-tune of ``base_spec``) into a model folder."""
    import torch

    from toxbench.mech.probe import torch_load_safe
    from toxbench.models import load_model

    if (output / "config.json").exists() and not force:
        raise ToxbenchError(
            f"{str(output)!r} already holds a model: choose another --output-path or pass --overwrite"
        )
    state = _state_dict(torch_load_safe(path, "checkpoint"), path)
    base = load_model(base_spec, device or "cpu", show_progress=False)
    model = base.model
    state = _match_keys(state, model)
    own = model.state_dict()
    buffers = {name for name, _ in model.named_buffers()}
    # Older library versions saved some buffers (GPT-2's attention masks) that a module no longer keeps:
    # a key naming an existing module but none of its parameters is such a buffer, and is ignored.
    modules = dict(model.named_modules())
    legacy = sorted(k for k in state if k not in own and k.rpartition(".")[0] in modules)
    unexpected = sorted(k for k in state if k not in own and k not in buffers and k not in legacy)
    ptrs = {own[k].data_ptr(): k for k in own if k in state}
    missing = sorted(k for k in own if k not in state and own[k].data_ptr() not in ptrs and k not in buffers)
    if missing or unexpected:
        raise ToxbenchError(
            f"checkpoint {str(path)!r} does not match base model {base_spec!r}: "
            f"{len(missing)} missing parameter(s) ({', '.join(missing[:4])}{', ...' if len(missing) > 4 else ''}), "
            f"{len(unexpected)} unknown ({', '.join(unexpected[:4])}{', ...' if len(unexpected) > 4 else ''}). "
            "Pass the --base model it was fine-tuned from"
        )
    wrong = [
        f"{k} {tuple(state[k].shape)} vs {tuple(own[k].shape)}"
        for k in own
        if k in state and tuple(state[k].shape) != tuple(own[k].shape)
    ]
    if wrong:
        raise ToxbenchError(
            f"checkpoint {str(path)!r} has shapes that differ from base {base_spec!r}: "
            f"{'; '.join(wrong[:3])}. Pass the --base model it was fine-tuned from"
        )
    with torch.no_grad():
        for name, tensor in own.items():
            if name in state:
                tensor.copy_(state[name].to(tensor.dtype))
    partial = output.with_name(output.name + ".partial")
    model.save_pretrained(partial, safe_serialization=True)
    base.tokenizer.save_pretrained(partial)
    card = {
        "imported_from": str(path),
        "sha256": sha256_file(path),
        "base": base_spec,
        "base_fingerprint": base.fingerprint,
        "n_tensors": len(state),
        "ignored_buffers": legacy,
        "loader": "torch.load(weights_only=True)",
    }
    atomic_write_json(partial / "import.json", card)
    if output.exists():
        import shutil

        shutil.rmtree(output)
    partial.rename(output)
    return card
