"""Registries of models, tasks, scorers, backends, executors, methods, protocols and loggers: open
to plugins, lazy, with clear errors.

An entry is added three ways, none of which edits toxbench:

- a decorator: ``@register_task("my-task")`` on a ``Task`` subclass (or ``register_scorer``,
  ``register_backend``, ``register_executor``, ``register_method``, ``register_logger``, or
  ``register_model`` on a loader function), in a user's file loaded with ``--include-path PATH``;
- a lazy ``"module:attr"`` string: ``register_scorer("my-scorer", "my_pkg.scorers:Mine")``,
  imported only when the entry is used (so heavy optional libraries cost nothing until then);
- an entry point of an installed package, in the group ``toxbench.models``, ``toxbench.tasks``,
  ``toxbench.scorers``, ``toxbench.backends``, ``toxbench.executors``, ``toxbench.methods``,
  ``toxbench.protocols`` or ``toxbench.loggers`` (``[project.entry-points."toxbench.tasks"]``),
  read the first time a registry is asked for its names.

Two plugins claiming one name, or a plugin that fails to import, get an error naming the
plugin. An unknown name gets the closest known names.
"""

from __future__ import annotations

import difflib
import importlib
import importlib.util
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from toxbench.errors import ToxbenchError, UnknownNameError


class PluginError(ToxbenchError):
    """A plugin that cannot be used: a name clash, an import failure, an unreadable include file."""


def import_object(path: str) -> Any:
    """Import ``"package.module:attr"`` and return the attribute."""
    module_name, _, attr = path.partition(":")
    if not attr:
        raise ValueError(f"expected 'module:attr', got {path!r}")
    obj: Any = importlib.import_module(module_name)
    for part in attr.split("."):
        obj = getattr(obj, part)
    return obj


def _describe(target: Any) -> str:
    if isinstance(target, str):
        return target
    if hasattr(target, "loader") and hasattr(target, "defaults"):  # a model entry
        return f"{_describe(target.loader)} {target.defaults}"
    return f"{getattr(target, '__module__', '?')}:{getattr(target, '__qualname__', repr(target))}"


@dataclass
class Registry:
    """A named collection of entries: objects, or ``"module:attr"`` strings imported on first use."""

    kind: str
    entries: dict[str, Any] = field(default_factory=dict)
    descriptions: dict[str, str] = field(default_factory=dict)
    origins: dict[str, str] = field(default_factory=dict)
    defaults: dict[str, dict[str, Any]] = field(default_factory=dict)  # arguments an entry is built with
    _entry_points_read: bool = False

    @property
    def group(self) -> str:
        """The entry-point group plugins declare entries in."""
        return f"toxbench.{self.kind}s"

    def register(
        self,
        name: str,
        target: Any = None,
        description: str = "",
        origin: str | None = None,
        defaults: dict[str, Any] | None = None,
    ):
        """Register ``target`` under ``name`` (built with ``defaults`` unless the user overrides them);
        without ``target``, a decorator that registers what it decorates."""
        if target is None:

            def decorator(obj: Any) -> Any:
                self.register(
                    name,
                    obj,
                    description or (obj.__doc__ or "").strip().split("\n")[0],
                    origin or f"module {getattr(obj, '__module__', '?')}",
                )
                return obj

            return decorator
        origin = origin or "toxbench"
        if name in self.entries and _describe(self.entries[name]) != _describe(target):
            raise PluginError(
                f"{self.kind} {name!r} is registered twice: by {self.origins[name]} ({_describe(self.entries[name])}) "
                f"and by {origin} ({_describe(target)}). Rename one of them."
            )
        self.entries[name] = target
        self.descriptions[name] = description
        self.origins[name] = origin
        if defaults:
            self.defaults[name] = dict(defaults)
        return target

    def _read_entry_points(self) -> None:
        if self._entry_points_read:
            return
        self._entry_points_read = True
        from importlib.metadata import entry_points

        for ep in entry_points(group=self.group):
            dist = getattr(getattr(ep, "dist", None), "name", None) or "an installed package"
            self.register(ep.name, ep.value, f"plugin from {dist}", origin=f"entry point of {dist}")

    def __contains__(self, name: object) -> bool:
        self._read_entry_points()
        return name in self.entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def names(self) -> list[str]:
        self._read_entry_points()
        return sorted(self.entries)

    def names_in_order(self) -> list[str]:
        """Names in registration order (for tasks: the order a report tells its story in)."""
        self._read_entry_points()
        return list(self.entries)

    def check(self, name: str, extra: str = "") -> Any:
        """Return the entry's target, or raise an error naming the closest names (then ``extra``)."""
        self._read_entry_points()
        if name in self.entries:
            return self.entries[name]
        close = difflib.get_close_matches(name, self.entries.keys(), n=3, cutoff=0.5)
        hint = f" Did you mean: {', '.join(close)}?" if close else ""
        raise UnknownNameError(
            f"unknown {self.kind} {name!r}.{hint} Known {self.kind}s: {', '.join(self.names())} "
            f"(`toxbench ls {self.kind}s` lists them; plugins register more, see CONTRIBUTING.md).{extra}"
        )

    def get(self, name: str) -> Any:
        """The entry registered under ``name``, imported now if it is a ``"module:attr"`` string."""
        target = self.check(name)
        if not isinstance(target, str):
            return target
        if self.origins.get(name) == "toxbench":
            return import_object(target)  # toxbench's own entries: a failure is a bug, shown as it is
        try:
            return import_object(target)
        except Exception as exc:  # a plugin's import can fail in any way
            raise PluginError(
                f"{self.kind} {name!r} from {self.origins[name]} cannot be imported ({target}): "
                f"{type(exc).__name__}: {exc}"
            ) from exc


class ModelRegistry(Registry):
    """Models: each entry a ``toxbench.models.ModelEntry`` (a bare loader function is wrapped in one)."""

    def get(self, name: str) -> Any:
        from toxbench.models import ModelEntry

        target = super().get(name)
        if isinstance(target, ModelEntry):
            return target
        if callable(target):
            entry = ModelEntry(target, description=self.descriptions.get(name, ""))
            self.entries[name] = entry
            return entry
        raise PluginError(
            f"model {name!r} from {self.origins[name]} is a {type(target).__name__}: register a "
            "loader function returning toxbench.models.ModelSource, or a ModelEntry"
        )


def takes_options(target: Any, options: dict[str, Any]) -> bool:
    """Whether ``target``'s signature takes every one of ``options``."""
    try:
        check_options(target, options, "")
    except ToxbenchError:
        return False
    return True


def check_options(
    target: Any,
    options: dict[str, Any],
    what: str,
    also: list[str] | tuple[str, ...] = (),
    ignore: tuple[str, ...] = (),
) -> None:
    """Refuse options that ``target``'s signature does not take (unless it takes any, like vLLM's engine).

    ``also`` names options handled elsewhere (accepted too); ``ignore`` names parameters that
    toxbench passes itself (not options a user may give).
    """
    import inspect

    params = inspect.signature(target).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return
    accepted = [
        n
        for n, p in params.items()
        if n != "self" and n not in ignore and p.kind is not inspect.Parameter.VAR_POSITIONAL
    ] + list(also)
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        hints = [
            f"{u!r} (did you mean {close[0]!r}?)"
            if (close := difflib.get_close_matches(u, accepted, 1))
            else repr(u)
            for u in unknown
        ]
        raise ToxbenchError(
            f"unknown option(s) {', '.join(hints)} for {what}: it takes {', '.join(accepted) or 'no options'}"
        )


SCORERS = Registry("scorer")
SCORERS.register("lexicon", "toxbench.scorers.lexicon:LexiconScorer", "the organism's exact scorer")
SCORERS.register("detoxify", "toxbench.scorers.detoxify:DetoxifyScorer", "Detoxify 'original' (public)")
for _variant in ("original", "unbiased", "multilingual"):
    SCORERS.register(
        f"detoxify-{_variant}",
        "toxbench.scorers.detoxify:DetoxifyScorer",
        f"Detoxify {_variant!r}",
        defaults={"model_type": _variant},
    )
SCORERS.register(
    "hf-classifier",
    "toxbench.scorers.hf_classifier:HFClassifierScorer",
    "any Hugging Face sequence classifier (model=ID_OR_FOLDER, label=NAME)",
)

BACKENDS = Registry("backend")
BACKENDS.register("hf", "toxbench.backends.hf:HFBackend", "transformers, batched and length-sorted")
BACKENDS.register("vllm", "toxbench.backends.vllm:VLLMBackend", "vLLM engine (optional extra)")

EXECUTORS = Registry("executor")
EXECUTORS.register("local", "toxbench.executors:Executor", "in this process, one chunk after another")
EXECUTORS.register(
    "ray", "toxbench.executors.ray_actors:RayExecutor", "persistent Ray actors (optional extra)"
)

LOGGERS = Registry("logger")
LOGGERS.register("wandb", "toxbench.loggers.wandb:WandbLogger", "Weights & Biases (optional extra)")
LOGGERS.register("mlflow", "toxbench.loggers.mlflow:MlflowLogger", "MLflow tracking (optional extra)")

MODELS = ModelRegistry("model")


def _builtin_models() -> None:
    from toxbench.models import ModelEntry

    organism = "toxbench.organism.build:organism_source"
    for size, name in (("default", "organism"), ("micro", "organism-micro")):
        for variant, what in (("base", "the embedded model organism"), ("dpo", "its DPO-aligned twin")):
            label = name if variant == "base" else f"{name}:dpo"
            MODELS.register(
                label,
                ModelEntry(
                    organism, {"size": size, "variant": variant}, f"{what} ({size})", scorer="lexicon"
                ),
                f"{what} ({size})",
            )
    for name, hub_id in {
        "gpt2": "openai-community/gpt2",
        "gpt2-medium": "openai-community/gpt2-medium",
        "pythia-410m": "EleutherAI/pythia-410m",
        "pythia-1.4b": "EleutherAI/pythia-1.4b",
        "llama2-7b": "meta-llama/Llama-2-7b-hf",
        "llama3.1-8b": "meta-llama/Llama-3.1-8B",
        "mistral-7b": "mistralai/Mistral-7B-v0.1",
        "gemma-2b": "google/gemma-2b",
        "gemma2-2b": "google/gemma-2-2b",
    }.items():
        MODELS.register(name, ModelEntry("toxbench.models:hub", {"hub_id": hub_id}, hub_id), hub_id)


_builtin_models()

PROTOCOLS = Registry("protocol")
PROTOCOLS.register(
    "paper",
    "toxbench.tasks.protocols:PAPER",
    "[A]/[B]: challenging prompts (32 tokens), greedy, 20 new tokens",
)
PROTOCOLS.register(
    "rtp", "toxbench.tasks.protocols:RTP", "RealToxicityPrompts: 25 samples, nucleus p=0.9, 20 new tokens"
)

METHODS = Registry("method")
METHODS.register(
    "dpo", "toxbench.baselines.dpo:DPOMethod", "DPO (TRL), [A]'s settings; early stopping on held-out pairs"
)
METHODS.register("ipo", "toxbench.baselines.dpo:IPOMethod", "IPO: TRL's DPO trainer with loss_type=ipo")
METHODS.register(
    "kto", "toxbench.baselines.kto:KTOMethod", "KTO (TRL): chosen desirable, rejected undesirable"
)
METHODS.register(
    "sft", "toxbench.baselines.sft:SFTMethod", "supervised fine-tuning on the chosen continuations"
)
METHODS.register(
    "subtract",
    "toxbench.baselines.edits:SubtractMethod",
    "α x the probe direction subtracted after the last MLP (given, or matched to a model's perplexity)",
)
METHODS.register("ablate", "toxbench.baselines.edits:AblateMethod", "the top-k toxic value vectors zeroed")
METHODS.register("profs", "toxbench.baselines.profs:ProFSMethod", "ProFS: toxic subspace out of MLP values")

TASKS = Registry("task")
TASKS.register("elicitation", "toxbench.tasks.elicitation:ElicitationTask", "toxicity, perplexity, F1")
TASKS.register("attribution", "toxbench.tasks.attribution:AttributionTask", "probe-direction neuron groups")
TASKS.register(
    "ablation", "toxbench.tasks.ablation:AblationTask", "can surgery on the base emulate alignment"
)
TASKS.register("unalignment", "toxbench.tasks.unalignment:UnalignmentTask", "how cheaply alignment is undone")


def _caller() -> str:
    """Who called a ``register_*`` function: the origin an error about the entry names."""
    return f"module {sys._getframe(2).f_globals.get('__name__', '?')}"


def register_model(
    name: str, loader: Any = None, description: str = "", scorer: str | None = None, **defaults: Any
):
    """Register a model under ``name``, three ways:

    - an alias: ``register_model("my-llama", hub_id="org/name", revision="abc123")`` or
      ``register_model("my-model", path="/models/mine")`` (any ``LOAD_ARGUMENTS`` too, e.g.
      ``trust_remote_code=True``, ``dtype="bfloat16"``);
    - a loader: ``register_model("mine", "my_pkg.models:load_mine", size="7b")``, a function
      (or ``"module:attr"``) that takes the defaults as keyword arguments and returns a
      ``toxbench.models.ModelSource``;
    - a decorator on such a function: ``@register_model("mine", size="7b")``.
    """
    from toxbench.models import ModelEntry

    if loader is None and ("hub_id" in defaults or "path" in defaults):
        loader = "toxbench.models:hub" if "hub_id" in defaults else "toxbench.models:local"
    if loader is None:

        def decorator(fn: Any) -> Any:
            text = description or (fn.__doc__ or "").strip().split("\n")[0]
            MODELS.register(
                name,
                ModelEntry(fn, defaults, text, scorer),
                text,
                origin=f"module {getattr(fn, '__module__', '?')}",
            )
            return fn

        return decorator
    text = description or str(defaults.get("hub_id") or defaults.get("path") or "")
    return MODELS.register(name, ModelEntry(loader, defaults, text, scorer), text, origin=_caller())


def register_protocol(name: str, target: Any = None, description: str = ""):
    """Register an evaluation protocol (a ``toxbench.tasks.protocols.Protocol``, or ``"module:attr"`` naming one)."""
    return PROTOCOLS.register(
        name, target, description or getattr(target, "description", ""), origin=_caller()
    )


def register_method(name: str, target: Any = None, description: str = ""):
    """Register an alignment method (a ``toxbench.baselines.base.Method`` subclass), for ``toxbench align``."""
    return METHODS.register(name, target, description, origin=_caller())


def register_task(name: str, target: Any = None, description: str = ""):
    """Register a task (a ``toxbench.tasks.base.Task`` subclass): as a decorator, or with a ``"module:attr"`` string."""
    return TASKS.register(name, target, description, origin=_caller())


def register_scorer(name: str, target: Any = None, description: str = ""):
    """Register a scorer (a ``toxbench.scorers.base.Scorer`` subclass)."""
    return SCORERS.register(name, target, description, origin=_caller())


def register_executor(name: str, target: Any = None, description: str = ""):
    """Register an executor class (``toxbench.executors.Executor``): where a run's work is done."""
    return EXECUTORS.register(name, target, description, origin=_caller())


def register_logger(name: str, target: Any = None, description: str = ""):
    """Register a logger class (a ``toxbench.loggers.base.Logger`` subclass): where ``--log-to`` sends a finished run."""
    return LOGGERS.register(name, target, description, origin=_caller())


def register_backend(name: str, target: Any = None, description: str = ""):
    """Register a generation backend (a ``toxbench.backends.base.Backend`` subclass)."""
    return BACKENDS.register(name, target, description, origin=_caller())


_INCLUDED: dict[Path, Any] = {}


def include(paths: list[Path] | tuple[Path, ...]) -> list[Path]:
    """Load a user's plugin files (``--include-path``): each ``.py`` file, or every ``.py`` file of a folder.

    A file is loaded once per process, as a module of its own; what it registers is then
    available by name. A file that fails to load is reported with its path.
    """
    loaded: list[Path] = []
    for path in paths:
        path = Path(path).expanduser().resolve()
        if path.is_dir():
            files = sorted(p for p in path.glob("*.py") if not p.name.startswith("_"))
        elif path.is_file() and path.suffix == ".py":
            files = [path]
        else:
            raise PluginError(f"--include-path {str(path)!r} is neither a .py file nor a folder of them")
        for file in files:
            if file in _INCLUDED:
                continue
            name = f"toxbench_include_{abs(hash(str(file))):x}_{file.stem}"
            spec = importlib.util.spec_from_file_location(name, file)
            if spec is None or spec.loader is None:
                raise PluginError(f"--include-path {str(file)!r} cannot be loaded as a Python module")
            module = importlib.util.module_from_spec(spec)
            sys.modules[name] = module
            try:
                spec.loader.exec_module(module)
            except PluginError:
                sys.modules.pop(name, None)
                raise
            except Exception as exc:
                sys.modules.pop(name, None)
                raise PluginError(
                    f"plugin file {str(file)!r} failed to load: {type(exc).__name__}: {exc}"
                ) from exc
            _INCLUDED[file] = module
            loaded.append(file)
    return loaded
