"""Model specs -> loaded models with a fingerprint.

A spec is one of:
- a registered name (``toxbench ls models``): the embedded organism (``organism``,
  ``organism:dpo``, ``organism-micro[:dpo]``), hub aliases (``gpt2``, ``llama3.1-8b`` ...),
  and whatever plugins register with ``toxbench.registry.register_model``;
- ``hf:<hub id>[@revision]``;
- a local folder holding a transformers causal LM.

A registered name maps to a *loader* and its default arguments. The loader says where the
weights are (a ``ModelSource``: a hub id and revision, or a folder); ``load_model`` does the
rest the same way for every model, with the arguments any model takes (``LOAD_ARGUMENTS``:
dtype, device map, ``trust_remote_code``, whether the tokenizer adds BOS). ``--model-args
KEY=VALUE`` overrides a default; ``trust_remote_code`` stays off unless given.

The fingerprint identifies the weights: a hash of the config and weight files of a local
folder, the hub commit of a hub model, or a hash of the tensors of a model in memory (an
edited model). It goes into every cache key and result.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from toxbench.errors import ToxbenchError, UnknownNameError
from toxbench.io import atomic_write_json, toxbench_home

# Arguments every model takes, handled here rather than by its loader.
LOAD_ARGUMENTS = {
    "dtype": "auto, float64, float32, float16 or bfloat16 (the model is loaded in it)",
    "device_map": "a transformers device map (e.g. auto, to spread a model over GPUs); replaces --device",
    "trust_remote_code": "run the model's own code from its repository (off unless given)",
    "adds_bos": "make the tokenizer put BOS in front of every text (true) or never (false)",
}


@dataclass
class ModelSource:
    """Where a model's weights are, as its loader says."""

    kind: str  # "hub", "local", "organism", or a plugin's own word
    target: str  # hub id, or folder
    revision: str | None = None
    folder: Path | None = None  # weights in a local folder (fingerprinted by their files)
    data_dir: Path | None = None  # datasets that come with the model (the organism's own)
    notes: dict[str, Any] = field(default_factory=dict)  # recorded with the model's identity
    pairs_dir: Path | None = None  # preference pairs that come with the model (``--data organism``)
    # Prefixed to the fingerprint: a version of what made the weights (the organism's world), so
    # that results cached for another version are never served, whatever the files.
    fingerprint_tag: str | None = None
    base: str | None = None  # a PEFT adapter's base model spec (the adapter itself is ``folder``)

    @property
    def location(self) -> str:
        return str(self.folder) if self.folder is not None else self.target


def hub(hub_id: str, revision: str | None = None, base: str | None = None) -> ModelSource:
    """The loader of hub models: ``hub_id`` at ``revision`` (a branch, tag or commit). A hub repository
    that holds a PEFT adapter (``adapter_config.json``, no ``config.json``) loads as an adapter folder
    does, on the base its config names or on ``base``."""
    if not hub_id:
        raise UnknownNameError("a hub model needs a hub id: use hf:<org>/<name>[@revision]")
    snapshot = _hub_adapter(hub_id, revision or None)
    if snapshot is None:
        if base is not None:
            raise ToxbenchError(
                f"hf:{hub_id}: base= names the base model of an adapter, and this repository holds a full model"
            )
        return ModelSource("hub", hub_id, revision or None)
    found = adapter(snapshot, base)
    found.notes["adapter"]["hub_id"] = hub_id
    found.notes["adapter"]["revision"] = revision or None
    return found


def _hub_adapter(hub_id: str, revision: str | None) -> Path | None:
    """The local snapshot of a hub repository that holds a PEFT adapter, or None (a full model, or a
    repository the hub cannot tell about: the model load then says why)."""
    from huggingface_hub import hf_hub_download, snapshot_download
    from huggingface_hub.errors import EntryNotFoundError, HfHubHTTPError, LocalEntryNotFoundError

    def fetch(name: str) -> str | None:
        try:
            return hf_hub_download(hub_id, name, revision=revision)
        except (EntryNotFoundError, LocalEntryNotFoundError, HfHubHTTPError, OSError, ValueError):
            return None

    if fetch(ADAPTER_CONFIG) is None or fetch("config.json") is not None:
        return None
    patterns = ["adapter_*", "*.json", "*.model", "*.txt", "*.jinja"]  # the adapter, its tokenizer, its card
    return Path(snapshot_download(hub_id, revision=revision, allow_patterns=patterns))


def local(path: str | Path) -> ModelSource:
    """The loader of a local folder holding a transformers model (``save_pretrained``)."""
    folder = Path(path).expanduser()
    if not folder.is_dir():
        raise ToxbenchError(f"model folder {str(folder)!r} does not exist")
    if not (folder / "config.json").is_file():
        raise ToxbenchError(f"model folder {str(folder)!r} has no config.json: not a transformers model")
    folder = folder.resolve()
    return ModelSource("local", str(folder), folder=folder)


ADAPTER_CONFIG = "adapter_config.json"


def is_adapter_folder(path: str | Path) -> bool:
    """A PEFT adapter folder (``adapter_config.json``, no full model's ``config.json``)."""
    folder = Path(path).expanduser()
    return (folder / ADAPTER_CONFIG).is_file() and not (folder / "config.json").is_file()


def adapter(path: str | Path, base: str | None = None) -> ModelSource:
    """The loader of a PEFT adapter folder: the adapter, on the base model its config names
    (``base_model_name_or_path``), or on ``base`` (``--model-args base=SPEC``)."""
    folder = Path(path).expanduser().resolve()
    try:
        config = json.loads((folder / ADAPTER_CONFIG).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ToxbenchError(f"adapter folder {str(folder)!r}: cannot read {ADAPTER_CONFIG} ({exc})") from exc
    named = base or config.get("base_model_name_or_path")
    if not named:
        raise ToxbenchError(
            f"adapter folder {str(folder)!r} names no base model (base_model_name_or_path): pass "
            "--model-args base=SPEC"
        )
    return ModelSource(
        "adapter",
        str(folder),
        folder=folder,
        base=_as_spec(str(named)),
        notes={"adapter": {"peft_type": config.get("peft_type"), "base": str(named)}},
    )


def _as_spec(named: str) -> str:
    """A base model as an adapter config names it, as a toxbench spec: a registered name or a folder as it
    is, anything else a hub id."""
    from toxbench.registry import MODELS

    if named in MODELS or named.startswith("hf:") or Path(named).expanduser().is_dir():
        return named
    return f"hf:{named}"


# Models handed to the Python API already loaded (``toxbench.evaluate(model=hf_model, tokenizer=tok)``),
# by key; ``memory:<key>`` is their spec for this process.
_HELD: dict[str, tuple[Any, Any, str]] = {}


def hold(model: Any, tokenizer: Any, name: str | None = None) -> str:
    """Make a loaded transformers causal LM and its tokenizer a spec (``memory:<name>@<hash>``) for this
    process. Its fingerprint hashes its config, every tensor and the tokenizer's vocabulary, so the
    cache serves it what it would serve the same weights again, and nothing else."""
    if tokenizer is None:
        raise ToxbenchError(
            "a model passed as an object needs its tokenizer: toxbench.evaluate(model=model, tokenizer=tokenizer)"
        )
    if not hasattr(model, "config") or not hasattr(model, "generate"):
        raise ToxbenchError(
            f"model {type(model).__name__} is not a transformers causal LM (a PreTrainedModel with "
            "generate()): pass one, or a model spec"
        )
    fingerprint = (
        "memory-"
        + hashlib.sha256((fingerprint_state(model) + _tokenizer_hash(tokenizer)).encode()).hexdigest()[:24]
    )
    label = name or str(getattr(model.config, "name_or_path", "") or model.config.model_type or "model")
    key = f"{label}@{fingerprint[7:19]}"
    _HELD[key] = (model, tokenizer, fingerprint)
    return f"memory:{key}"


def _tokenizer_hash(tokenizer: Any) -> str:
    vocab = sorted(tokenizer.get_vocab().items())
    special = {k: str(v) for k, v in sorted(getattr(tokenizer, "special_tokens_map", {}).items())}
    body = json.dumps(
        [vocab, special, getattr(tokenizer, "chat_template", None), type(tokenizer).__name__], default=str
    )
    return hashlib.sha256(body.encode()).hexdigest()


def memory(key: str) -> ModelSource:
    """The loader of ``memory:`` specs: a model held by ``hold`` in this process."""
    if key not in _HELD:
        raise ToxbenchError(
            f"no model is held as memory:{key} in this process: pass the model object to "
            "toxbench.evaluate(model=...), which holds it"
        )
    return ModelSource("memory", key)


@dataclass
class ModelEntry:
    """A registered model: its loader (a callable or ``"module:attr"``), default arguments and
    the scorer its runs use unless told otherwise (the organism's: its exact lexicon)."""

    loader: Callable[..., ModelSource] | str
    defaults: dict[str, Any] = field(default_factory=dict)
    description: str = ""
    scorer: str | None = None

    def load_fn(self) -> Callable[..., ModelSource]:
        if isinstance(self.loader, str):
            from toxbench.registry import import_object

            self.loader = import_object(self.loader)
        return self.loader  # type: ignore[return-value]


@dataclass(frozen=True)
class ModelSpec:
    """A parsed model spec: the entry that loads it and the arguments it is loaded with."""

    raw: str
    entry: ModelEntry = field(compare=False, repr=False)
    args: dict[str, Any] = field(default_factory=dict, compare=False)  # the entry's defaults, then the user's
    given: dict[str, Any] = field(default_factory=dict, compare=False)  # the user's own (--model-args)

    @classmethod
    def parse(cls, spec: str, args: dict[str, Any] | None = None) -> ModelSpec:
        """Resolve ``spec`` to its entry; ``args`` (``--model-args``) override the entry's defaults.

        Everything is checked here, before any model loads: the name, and every argument
        against the loader's signature and ``LOAD_ARGUMENTS``.
        """
        from toxbench.registry import MODELS

        spec, args = spec.strip(), dict(args or {})
        if spec in MODELS:
            entry = MODELS.get(spec)
            parsed = cls(spec, entry, {**entry.defaults, **args}, args)
        elif spec.startswith("hf:"):
            hub_id, _, revision = spec[3:].partition("@")
            if not hub_id:
                raise UnknownNameError(f"model spec {spec!r} names no hub id: use hf:<org>/<name>[@revision]")
            parsed = cls(
                spec, ModelEntry(hub), {"hub_id": hub_id, "revision": revision or None, **args}, args
            )
        elif spec.startswith("memory:"):
            parsed = cls(spec, ModelEntry(memory), {"key": spec[7:], **args}, args)
        elif Path(spec).expanduser().is_dir() and is_adapter_folder(spec):
            parsed = cls(spec, ModelEntry(adapter), {"path": spec, **args}, args)
        elif Path(spec).expanduser().is_dir():
            local(spec)  # a folder that is not a model is refused now
            parsed = cls(spec, ModelEntry(local), {"path": spec, **args}, args)
        else:
            MODELS.check(
                spec, extra=" Use a registered name, hf:<hub id>[@revision], or an existing local folder."
            )
            raise AssertionError  # check() raised
        parsed.check_args()
        return parsed

    def loader_args(self) -> dict[str, Any]:
        return {k: v for k, v in self.args.items() if k not in LOAD_ARGUMENTS}

    def load_args(self) -> dict[str, Any]:
        return {k: v for k, v in self.args.items() if k in LOAD_ARGUMENTS}

    def check_args(self) -> None:
        from toxbench.registry import check_options

        fn = self.entry.load_fn()
        check_options(
            fn,
            self.loader_args(),
            f"model {self.raw!r}",
            also=list(LOAD_ARGUMENTS),
            ignore=("show_progress",),
        )
        for key in ("trust_remote_code", "adds_bos"):
            value = self.args.get(key)
            if value is not None and not isinstance(value, bool):
                raise ToxbenchError(f"model {self.raw!r}: {key} must be true or false, got {value!r}")

    def source(self, show_progress: bool = True) -> ModelSource:
        """Ask the loader where the weights are (the organism's loader installs it on first use)."""
        import inspect

        fn = self.entry.load_fn()
        kwargs = self.loader_args()
        if "show_progress" in inspect.signature(fn).parameters:
            kwargs["show_progress"] = show_progress
        found = fn(**kwargs)
        if not isinstance(found, ModelSource):
            raise ToxbenchError(
                f"the loader of model {self.raw!r} returned {type(found).__name__}, not a "
                "toxbench.models.ModelSource (see CONTRIBUTING.md, 'Adding a model')"
            )
        return found

    @property
    def default_scorer(self) -> str | None:
        return self.entry.scorer


@dataclass
class LoadedModel:
    """A causal LM loaded once, with its tokenizer, identity and (if any) folder."""

    spec: ModelSpec
    model: Any
    tokenizer: Any
    fingerprint: str
    path: Path | None = None
    notes: dict[str, Any] = field(default_factory=dict)
    source: ModelSource | None = None
    data_dir: Path | None = None  # datasets that come with the model (the organism's)

    @property
    def name(self) -> str:
        return self.spec.raw

    @property
    def pairs_dir(self) -> Path | None:
        """Preference pairs that come with the model (the organism's), or None."""
        return self.source.pairs_dir if self.source is not None else None

    def identity(self) -> dict[str, Any]:
        cfg = self.model.config
        source = self.source or ModelSource("memory", self.spec.raw)
        return {
            "spec": self.spec.raw,
            "kind": source.kind,
            "target": source.target,
            "revision": source.revision,
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
    from toxbench.io import sha256_file

    files = sorted(
        p
        for p in folder.iterdir()
        if p.is_file() and (p.name in ("config.json", ADAPTER_CONFIG) or p.suffix in (".safetensors", ".bin"))
    )
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
        return {
            "float64": torch.float64,
            "float32": torch.float32,
            "float16": torch.float16,
            "bfloat16": torch.bfloat16,
        }[dtype]
    except KeyError as exc:
        raise ToxbenchError(
            f"unknown dtype {dtype!r}: use auto, float64, float32, float16 or bfloat16"
        ) from exc


def _config_model_type(source: str) -> str | None:
    try:
        return json.loads((Path(source) / "config.json").read_text()).get("model_type")
    except (OSError, ValueError, AttributeError):
        return None


def _made_by(folder: Path | None) -> dict[str, Any] | None:
    """How ``toxbench align`` made the model in ``folder`` (its method.json): method, training seed and
    base model; None for a folder it did not make. Recorded with the model, so that runs of one method
    trained with several seeds are told apart (``toxbench leaderboard submit --seed-run``)."""
    if folder is None or not (folder / "method.json").is_file():
        return None
    try:
        card = json.loads((folder / "method.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None  # not toxbench's card: the model is still evaluated, just not described
    if not isinstance(card, dict) or not isinstance(card.get("method"), str):
        return None
    settings = card.get("settings")
    settings = settings if isinstance(settings, dict) else {}
    base = card.get("base")
    base = base if isinstance(base, dict) else {}
    seed = settings.get("seed")
    return {
        "method": card["method"],
        "seed": seed if isinstance(seed, int) else None,
        "base_fingerprint": base.get("fingerprint"),
    }


def _notes(spec: ModelSpec, source: ModelSource, **extra: Any) -> dict[str, Any]:
    """What a loaded model's identity records beside its fingerprint: the loader's notes, what made its
    folder (``_made_by``) and the user's own loader arguments."""
    notes = {**source.notes, **extra}
    made_by = _made_by(source.folder)
    if made_by is not None:
        notes["made_by"] = made_by
    if spec.given:
        notes["model_args"] = dict(spec.given)
    return notes


def load_model(
    spec: str | ModelSpec,
    device: str | None = None,
    dtype: str | None = None,
    trust_remote_code: bool = False,
    show_progress: bool = True,
    args: dict[str, Any] | None = None,
) -> LoadedModel:
    """Load the model a spec names, once, in eval mode, on ``device``.

    ``args`` are the spec's loader and load arguments (``--model-args``); a ``dtype`` or
    ``trust_remote_code`` among them wins over the plain parameters.
    """
    from safetensors import SafetensorError
    from transformers import AutoModelForCausalLM, AutoTokenizer

    spec = spec if isinstance(spec, ModelSpec) else ModelSpec.parse(spec, args)
    options = {"dtype": dtype, "trust_remote_code": trust_remote_code, **spec.load_args()}
    source = spec.source(show_progress)
    if source.base is not None:
        return _load_adapter(spec, source, device, dtype, trust_remote_code, show_progress)
    if source.kind == "memory":
        return _held(spec, source, options)
    location = source.location
    hub_kwargs = {"revision": source.revision} if source.folder is None else {}
    remote = bool(options["trust_remote_code"])
    tok_kwargs = dict(hub_kwargs)
    if options.get("adds_bos") is not None:
        tok_kwargs["add_bos_token"] = options["adds_bos"]
    model_kwargs = dict(hub_kwargs)
    if options.get("device_map") is not None:
        model_kwargs["device_map"] = options["device_map"]
    try:
        tokenizer = AutoTokenizer.from_pretrained(location, trust_remote_code=remote, **tok_kwargs)
        model: Any = AutoModelForCausalLM.from_pretrained(
            location, dtype=_dtype(options["dtype"]), trust_remote_code=remote, **model_kwargs
        )
    except OSError as exc:
        where = "the hub (offline?)" if source.folder is None else f"folder {location!r}"
        raise ToxbenchError(
            f"cannot load model {spec.raw!r} from {where}: {str(exc)[:300]}. "
            "Download it first (HF_HUB_OFFLINE=1 uses the local cache) or pass a local folder."
        ) from exc
    except SafetensorError as exc:
        raise ToxbenchError(
            f"the weights of model {spec.raw!r} in {location!r} cannot be read ({exc}): the file is corrupt or "
            "truncated. Download or save the model again."
        ) from exc
    except ValueError as exc:
        if "trust_remote_code" in str(exc) and not remote:
            raise ToxbenchError(
                f"model {spec.raw!r} needs its repository's own code: pass --model-args trust_remote_code=true "
                "if you trust that code (it runs on this machine)"
            ) from exc
        if "Unrecognized configuration class" not in str(exc) and "does not recognize" not in str(exc):
            raise
        model_type = _config_model_type(location)
        raise ToxbenchError(
            f"model {spec.raw!r} ({location}) is a {model_type!r} model, not a causal language model: toxbench "
            "evaluates models that generate text (AutoModelForCausalLM)"
        ) from exc
    except RuntimeError as exc:
        if "size mismatch" not in str(exc) and "Error(s) in loading" not in str(exc):
            raise
        raise ToxbenchError(
            f"the weights of model {spec.raw!r} in {location!r} do not fit its config.json ({str(exc)[:200]}): "
            "the folder mixes files of two models"
        ) from exc
    if options.get("device_map") is None:
        model.to(resolve_device(device))
    model.eval()
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    _check_bos(spec, tokenizer, options.get("adds_bos"))
    if source.folder is not None:
        fingerprint = fingerprint_folder(source.folder)
    else:
        commit = getattr(model.config, "_commit_hash", None)
        fingerprint = f"hub-{source.target}@{commit}" if commit else fingerprint_state(model)
    notes = _notes(spec, source)
    # The same files read as other numbers (dtype) or other ids (BOS) are another model to the cache.
    if options["dtype"] not in (None, "auto"):
        fingerprint = f"{fingerprint}+{options['dtype']}"
    if options.get("adds_bos") is not None:
        fingerprint = f"{fingerprint}+bos{int(bool(options['adds_bos']))}"
    if source.fingerprint_tag:
        fingerprint = f"{source.fingerprint_tag}-{fingerprint}"
    return LoadedModel(spec, model, tokenizer, fingerprint, source.folder, notes, source, source.data_dir)


def _held(spec: ModelSpec, source: ModelSource, options: dict[str, Any]) -> LoadedModel:
    """A model the caller loaded: used where it is, as it is (its device, dtype and eval mode set by them)."""
    given = {k: v for k, v in spec.load_args().items() if v is not None and k != "adds_bos"}
    if given:
        raise ToxbenchError(
            f"model {spec.raw!r} is already loaded, so {', '.join(sorted(given))} cannot apply to it: load it "
            "that way yourself, or pass its spec instead"
        )
    model, tokenizer, fingerprint = _HELD[source.target]
    model.eval()
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    _check_bos(spec, tokenizer, options.get("adds_bos"))
    return LoadedModel(spec, model, tokenizer, fingerprint, None, _notes(spec, source), source, None)


def _load_adapter(
    spec: ModelSpec,
    source: ModelSource,
    device: str | None,
    dtype: str | None,
    trust_remote_code: bool,
    show_progress: bool,
) -> LoadedModel:
    """A PEFT adapter merged into its base model, in memory: every task and backend sees plain weights
    (weight edits apply to the merged ones). Its fingerprint is the base's plus the adapter files'."""
    try:
        from peft import PeftModel
    except ImportError as exc:
        raise ToxbenchError(
            f"model {spec.raw!r} is a PEFT adapter: install peft (pip install 'toxbench[peft]')"
        ) from exc
    from transformers import AutoTokenizer

    assert source.folder is not None and source.base is not None
    base_args = spec.load_args()  # dtype, device_map, adds_bos, trust_remote_code apply to the base
    base = load_model(
        ModelSpec.parse(source.base, base_args), device, dtype, trust_remote_code, show_progress
    )
    try:
        merged = PeftModel.from_pretrained(base.model, str(source.folder)).merge_and_unload()
    except (ValueError, RuntimeError, KeyError) as exc:
        raise ToxbenchError(
            f"the adapter {spec.raw!r} does not fit its base model {source.base!r} ({str(exc)[:200]}): "
            "pass the base it was trained on with --model-args base=SPEC"
        ) from exc
    merged.eval()
    tokenizer = base.tokenizer
    if any((source.folder / name).is_file() for name in ("tokenizer.json", "tokenizer_config.json")):
        tokenizer = AutoTokenizer.from_pretrained(str(source.folder))  # saved with the adapter (TRL does)
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
    notes = _notes(spec, source, base_fingerprint=base.fingerprint)
    notes["adapter"] = {**notes.get("adapter", {}), "base": source.base}
    fingerprint = f"{base.fingerprint}+adapter-{fingerprint_folder(source.folder)}"
    return LoadedModel(spec, merged, tokenizer, fingerprint, None, notes, source, base.data_dir)


def _check_bos(spec: ModelSpec, tokenizer: Any, wanted: bool | None) -> None:
    from toxbench.tokenization import special_tokens

    if wanted is None:
        return
    if special_tokens(tokenizer).adds_bos != wanted:
        raise ToxbenchError(
            f"model {spec.raw!r}: adds_bos={str(wanted).lower()} was asked for, but its tokenizer "
            f"({type(tokenizer).__name__}) {'still adds' if not wanted else 'does not add'} BOS"
            + ("" if tokenizer.bos_token_id is not None or not wanted else ": it has no BOS token")
        )


def derive(parent: LoadedModel, model: Any, edit: dict[str, Any], saveable: bool = True) -> LoadedModel:
    """A model made from ``parent`` by an edit; its fingerprint is derived from the parent's and the edit's."""
    from toxbench.io import sha256_json

    fingerprint = "edit-" + sha256_json({"parent": parent.fingerprint, "edit": edit})[:24]
    spec = ModelSpec(f"{parent.spec.raw}+{edit.get('name', 'edit')}", parent.spec.entry, parent.spec.args)
    return LoadedModel(
        spec,
        model,
        parent.tokenizer,
        fingerprint,
        None,
        {"parent": parent.fingerprint, "edit": edit, "saveable": saveable},
        ModelSource("edited", parent.spec.raw),
        parent.data_dir,
    )


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
