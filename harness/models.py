"""Model specs -> loaded models with a fingerprint.

A spec is one of:
- a registered name: ``organism``, ``organism:dpo`` (the embedded organism and its DPO
  twin; ``organism-micro[:dpo]`` for the small one), ``gpt2``, ``gpt2-medium``,
  ``llama2-7b``, ... (``toxbench ls models``);
- ``hf:<hub id>[@revision]``;
- a local folder holding a transformers causal LM.

The fingerprint identifies the weights: a hash of the config and weight files of a local
folder, the hub commit of a hub model, or a hash of the tensors of a model in memory (an
edited model). It goes into every cache key and result.
"""

from __future__ import annotations

import contextlib
import difflib
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.errors import ToxbenchError, UnknownNameError
from harness.io import atomic_write_json, toxbench_home

HUB_MODELS: dict[str, str] = {
    "gpt2": "openai-community/gpt2",
    "gpt2-medium": "openai-community/gpt2-medium",
    "pythia-410m": "EleutherAI/pythia-410m",
    "pythia-1.4b": "EleutherAI/pythia-1.4b",
    "llama2-7b": "meta-llama/Llama-2-7b-hf",
    "llama3.1-8b": "meta-llama/Llama-3.1-8B",
    "mistral-7b": "mistralai/Mistral-7B-v0.1",
    "gemma-2b": "google/gemma-2b",
    "gemma2-2b": "google/gemma-2-2b",
}
ORGANISM_MODELS = ("organism", "organism:dpo", "organism-micro", "organism-micro:dpo")


@dataclass(frozen=True)
class ModelSpec:
    """A parsed model spec: where the weights come from."""

    raw: str
    kind: str  # "organism" | "hub" | "local"
    target: str  # organism size, hub id, or folder
    revision: str | None = None
    variant: str = "base"  # organism: "base" | "dpo"

    @classmethod
    def parse(cls, spec: str) -> ModelSpec:
        spec = spec.strip()
        if spec in ORGANISM_MODELS:
            name, _, variant = spec.partition(":")
            size = "micro" if name == "organism-micro" else "default"
            return cls(spec, "organism", size, variant=variant or "base")
        if spec in HUB_MODELS:
            return cls(spec, "hub", HUB_MODELS[spec])
        if spec.startswith("hf:"):
            hub_id, _, revision = spec[3:].partition("@")
            if not hub_id:
                raise UnknownNameError(f"model spec {spec!r} names no hub id: use hf:<org>/<name>[@revision]")
            return cls(spec, "hub", hub_id, revision or None)
        path = Path(spec).expanduser()
        if path.is_dir():
            if not (path / "config.json").is_file():
                raise ToxbenchError(f"model folder {str(path)!r} has no config.json: not a transformers model")
            return cls(spec, "local", str(path.resolve()))
        known = list(ORGANISM_MODELS) + list(HUB_MODELS)
        close = difflib.get_close_matches(spec, known, n=3, cutoff=0.5)
        hint = f" Did you mean: {', '.join(close)}?" if close else ""
        raise UnknownNameError(
            f"unknown model {spec!r}.{hint} Use a registered name ({', '.join(known)}), "
            "hf:<hub id>[@revision], or an existing local folder."
        )


@dataclass
class LoadedModel:
    """A causal LM loaded once, with its tokenizer, identity and (if any) folder."""

    spec: ModelSpec
    model: Any
    tokenizer: Any
    fingerprint: str
    path: Path | None = None
    notes: dict[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.spec.raw

    def identity(self) -> dict[str, Any]:
        cfg = self.model.config
        return {
            "spec": self.spec.raw,
            "kind": self.spec.kind,
            "target": self.spec.target,
            "revision": self.spec.revision,
            "fingerprint": self.fingerprint,
            "model_type": getattr(cfg, "model_type", None),
            "n_parameters": sum(p.numel() for p in self.model.parameters()),
            **self.notes,
        }


def fingerprint_state(model) -> str:
    """Hash of a model's config and every tensor (for models in memory, e.g. edited ones)."""
    import torch

    h = hashlib.sha256(json.dumps(model.config.to_dict(), sort_keys=True, default=str).encode())
    for name, tensor in sorted(model.state_dict().items()):
        h.update(name.encode())
        t = tensor.detach().to("cpu").contiguous()
        h.update(str(t.dtype).encode())
        h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return "state-" + h.hexdigest()[:24]


def fingerprint_folder(folder: Path) -> str:
    """Hash of a model folder's config and weight files, memoised by size and mtime."""
    from harness.io import sha256_file

    files = sorted(p for p in folder.iterdir() if p.is_file() and (
        p.name == "config.json" or p.suffix in (".safetensors", ".bin")))
    memo_path = toxbench_home() / "fingerprints.json"
    try:
        memo = json.loads(memo_path.read_text())
    except (OSError, json.JSONDecodeError):
        memo = {}
    h = hashlib.sha256()
    changed = False
    for p in files:
        st = p.stat()
        key = f"{p.resolve()}:{st.st_size}:{st.st_mtime_ns}"
        if key not in memo:
            memo[key] = sha256_file(p)
            changed = True
        h.update(p.name.encode() + memo[key].encode())
    if changed:
        with contextlib.suppress(OSError):  # the memo only saves time
            atomic_write_json(memo_path, memo)
    return "files-" + h.hexdigest()[:24]


def context_length(model) -> int:
    """The number of positions the model reads (the one place toxbench asks a config for it)."""
    cfg = getattr(model, "config", model)
    cfg = getattr(cfg, "get_text_config", lambda: cfg)()
    for attr in ("n_positions", "max_position_embeddings", "n_ctx", "max_sequence_length"):
        value = getattr(cfg, attr, None)
        if isinstance(value, int) and value > 0:
            return value
    raise ToxbenchError(f"cannot tell the context length of {type(model).__name__}: its config names none")


def resolve_device(device: str | None) -> str:
    import torch

    if device in (None, "auto"):
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


def _dtype(dtype: str | None):
    import torch

    if dtype in (None, "auto"):
        return "auto"
    try:
        return {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}[dtype]
    except KeyError as exc:
        raise ToxbenchError(f"unknown dtype {dtype!r}: use auto, float32, float16 or bfloat16") from exc


def _config_model_type(source: str) -> str | None:
    try:
        return json.loads((Path(source) / "config.json").read_text()).get("model_type")
    except (OSError, ValueError, AttributeError):
        return None


def load_model(spec: str | ModelSpec, device: str | None = None, dtype: str | None = None,
               trust_remote_code: bool = False, show_progress: bool = True) -> LoadedModel:
    """Load the model a spec names, once, in eval mode, on ``device``."""
    from safetensors import SafetensorError
    from transformers import AutoModelForCausalLM, AutoTokenizer

    spec = spec if isinstance(spec, ModelSpec) else ModelSpec.parse(spec)
    notes: dict[str, Any] = {}
    if spec.kind == "organism":
        from harness.organism.build import load_organism

        organism = load_organism(spec.target, show_progress=show_progress)
        folder = organism.dpo_dir if spec.variant == "dpo" else organism.base_dir
        source, kwargs = str(folder), {}
        notes["organism_config_hash"] = organism.manifest["config_hash"]
    elif spec.kind == "local":
        folder = Path(spec.target)
        source, kwargs = str(folder), {}
    else:
        folder = None
        source, kwargs = spec.target, {"revision": spec.revision}
    try:
        tokenizer = AutoTokenizer.from_pretrained(source, trust_remote_code=trust_remote_code, **kwargs)
        model = AutoModelForCausalLM.from_pretrained(
            source, dtype=_dtype(dtype), trust_remote_code=trust_remote_code, **kwargs
        )
    except OSError as exc:
        where = "the hub (offline?)" if spec.kind == "hub" else f"folder {source!r}"
        raise ToxbenchError(
            f"cannot load model {spec.raw!r} from {where}: {str(exc)[:300]}. "
            "Download it first (HF_HUB_OFFLINE=1 uses the local cache) or pass a local folder."
        ) from exc
    except SafetensorError as exc:
        raise ToxbenchError(
            f"the weights of model {spec.raw!r} in {source!r} cannot be read ({exc}): the file is corrupt or "
            "truncated. Download or save the model again."
        ) from exc
    except ValueError as exc:
        if "Unrecognized configuration class" not in str(exc) and "does not recognize" not in str(exc):
            raise
        model_type = _config_model_type(source)
        raise ToxbenchError(
            f"model {spec.raw!r} ({source}) is a {model_type!r} model, not a causal language model: toxbench "
            "evaluates models that generate text (AutoModelForCausalLM)"
        ) from exc
    except RuntimeError as exc:
        if "size mismatch" not in str(exc) and "Error(s) in loading" not in str(exc):
            raise
        raise ToxbenchError(
            f"the weights of model {spec.raw!r} in {source!r} do not fit its config.json ({str(exc)[:200]}): "
            "the folder mixes files of two models"
        ) from exc
    model.to(resolve_device(device)).eval()
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    if folder is not None:
        fingerprint = fingerprint_folder(folder)
    else:
        commit = getattr(model.config, "_commit_hash", None)
        fingerprint = f"hub-{spec.target}@{commit}" if commit else fingerprint_state(model)
    return LoadedModel(spec, model, tokenizer, fingerprint, folder, notes)


def derive(parent: LoadedModel, model: Any, edit: dict[str, Any], saveable: bool = True) -> LoadedModel:
    """A model made from ``parent`` by an edit; its fingerprint is derived from the parent's and the edit's."""
    from harness.io import sha256_json

    fingerprint = "edit-" + sha256_json({"parent": parent.fingerprint, "edit": edit})[:24]
    spec = ModelSpec(f"{parent.spec.raw}+{edit.get('name', 'edit')}", "edited", parent.spec.raw)
    return LoadedModel(spec, model, parent.tokenizer, fingerprint, None,
                       {"parent": parent.fingerprint, "edit": edit, "saveable": saveable})


def materialise(model: LoadedModel) -> Path:
    """A folder holding ``model`` (saved once under ``$TOXBENCH_HOME/edited/``), for backends that load from disk."""
    if model.path is not None:
        return model.path
    if not model.notes.get("saveable", True):
        raise ToxbenchError(f"model {model.name!r} is edited by hooks and cannot be saved: use --backend hf")
    folder = toxbench_home() / "edited" / model.fingerprint
    if not (folder / "config.json").is_file():
        partial = folder.with_name(folder.name + ".partial")
        model.model.save_pretrained(partial, safe_serialization=True)
        model.tokenizer.save_pretrained(partial)
        partial.rename(folder)
    model.path = folder
    return folder
