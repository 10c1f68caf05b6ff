"""Alignment methods: a base model, its data and settings in; a model folder any ``--aligned`` accepts out.

A method is a ``Method`` subclass registered by name (``toxbench.registry.register_method``,
or the entry-point group ``toxbench.methods``). ``align`` runs one the same way every time:

- the settings are the method's dataclass of defaults, overridden by ``--method-args KEY=VALUE``
  (an unknown key is an error naming the closest one);
- the data are preference pairs in the ``prompt/chosen/rejected`` schema TRL reads, from a
  JSON Lines file or the organism's own (``--data organism``), checked before training;
- the output folder gets the model (safetensors), its tokenizer and ``method.json``, the card:
  method, settings, data hash, base fingerprint, toxbench version, training statistics. The
  card is written last, so a folder with a card is finished: ``align`` refuses to overwrite it
  without ``force``. A folder without one holds an interrupted training, which resumes from
  its last checkpoint (``<output>/_checkpoints``).
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from toxbench.errors import ToxbenchError

CARD = "method.json"
CHECKPOINTS = "_checkpoints"
PAIRS_CARD = "card.json"  # a pairs folder's card: how the pairs were made, the settings they need
PAIR_FIELDS = ("prompt", "chosen", "rejected")


@dataclass
class PreferenceData:
    """Preference pairs for training, and those held out for early stopping."""

    train: list[dict[str, str]]
    valid: list[dict[str, str]]
    source: str
    sha256: str
    # Training settings the data's card names for them (the organism's pairs: the settings its
    # twin was trained with); a method takes those it knows, under the user's own.
    settings: dict[str, Any] = field(default_factory=dict)

    def describe(self) -> dict[str, Any]:
        out = {
            "source": self.source,
            "sha256": self.sha256,
            "n_train": len(self.train),
            "n_valid": len(self.valid),
        }
        if self.settings:
            out["card_settings"] = dict(self.settings)
        return out


@dataclass
class AlignContext:
    """What a method may use: the base model, the data, where to keep checkpoints, progress."""

    base: Any  # a toxbench.models.LoadedModel
    data: PreferenceData | None
    output: Path
    device: str | None
    show_progress: bool = True

    @property
    def checkpoints(self) -> Path:
        return self.output / CHECKPOINTS


class Method(ABC):
    """An alignment method. ``settings`` is a dataclass whose fields are the method's options."""

    name: str = "method"
    kind: str = "trained"  # "trained" (an optimiser changes the weights) or "edit" (a fixed weight edit)
    needs_data: bool = True
    settings_class: type = dict
    description: str = ""

    def settings(self, overrides: dict[str, Any]) -> Any:
        from toxbench.registry import check_options

        check_options(self.settings_class, overrides, f"method {self.name!r}")
        try:
            return self.settings_class(**overrides)
        except (TypeError, ValueError) as exc:
            raise ToxbenchError(f"method {self.name!r}: {exc}") from exc

    def prepare(self, settings: Any, ctx: AlignContext) -> Any:
        """The settings the method will run with (the card records these): e.g. checkpoints on."""
        return settings

    @abstractmethod
    def align(self, ctx: AlignContext, settings: Any) -> tuple[Any, dict[str, Any]]:
        """Return the aligned model (a transformers causal LM) and its training statistics."""


def load_pairs(data: str | Path, base: Any = None, valid_fraction: float = 0.05) -> PreferenceData:
    """Pairs from ``data``: a JSON Lines file (or a folder holding ``train.jsonl`` and optionally
    ``valid.jsonl``), or ``organism`` for the organism's own pairs (the base model's data folder)."""
    from toxbench.io import sha256_file

    card_settings: dict[str, Any] = {}
    if str(data) == "organism":
        folder = getattr(base, "pairs_dir", None)
        if folder is None:
            raise ToxbenchError(
                "--data organism needs an organism model (its pairs come with it): pass a pairs file"
            )
        data = Path(folder)
        card = Path(folder) / PAIRS_CARD
        if card.is_file():
            card_settings = dict(json.loads(card.read_text()).get("align_settings") or {})
    path = Path(data).expanduser()
    if path.is_dir():
        train_file, valid_file = path / "train.jsonl", path / "valid.jsonl"
        if not train_file.is_file():
            raise ToxbenchError(f"data folder {str(path)!r} has no train.jsonl (prompt/chosen/rejected rows)")
    elif path.is_file():
        train_file, valid_file = path, None
    else:
        raise ToxbenchError(
            f"data {str(path)!r} not found: pass a JSON Lines file of prompt/chosen/rejected rows "
            "(`toxbench pairs build` writes one), a folder with train.jsonl, or 'organism'"
        )
    train = _read_pairs(train_file)
    valid = _read_pairs(valid_file) if valid_file is not None and valid_file.is_file() else []
    if not valid and len(train) >= 20:  # hold some out for early stopping, deterministically
        n_valid = max(1, int(len(train) * valid_fraction))
        train, valid = train[:-n_valid], train[-n_valid:]
    digest = sha256_file(train_file) + (
        sha256_file(valid_file) if valid_file and valid_file.is_file() else ""
    )
    from toxbench.io import sha256_json

    return PreferenceData(train, valid, str(path), sha256_json(digest)[:32], card_settings)


def _read_pairs(path: Path) -> list[dict[str, str]]:
    from datasets import load_dataset

    try:
        rows = load_dataset("json", data_files=str(path), split="train")
    except Exception as exc:  # datasets raises many kinds for a malformed file
        raise ToxbenchError(
            f"cannot read preference pairs from {str(path)!r}: {type(exc).__name__}: {exc}"
        ) from exc
    missing = [f for f in PAIR_FIELDS if f not in rows.column_names]
    if missing:
        raise ToxbenchError(
            f"preference pairs in {str(path)!r} lack the field(s) {', '.join(missing)}: each row needs "
            f"{', '.join(PAIR_FIELDS)} (strings); found {', '.join(rows.column_names) or 'no fields'}"
        )
    out = []
    for i, row in enumerate(rows):
        bad = [f for f in PAIR_FIELDS if not isinstance(row[f], str)]
        if bad:
            raise ToxbenchError(
                f"row {i} of {str(path)!r}: {', '.join(bad)} must be text, got {row[bad[0]]!r}"
            )
        out.append({f: row[f] for f in PAIR_FIELDS})
    if not out:
        raise ToxbenchError(f"{str(path)!r} holds no preference pairs")
    return out


def base_probe(base: Any, path: str | Path | None, seed: int = 0, data_dir: Path | None = None):
    """The toxicity probe of ``base``: the one at ``path`` (its width checked), or one trained now on
    the comments under ``data_dir/jigsaw/`` where that folder exists, else those that come with the
    model (the organism's), else the hub's."""
    from toxbench.data import load_comments
    from toxbench.mech.neurons import neuron_adapter
    from toxbench.mech.probe import Probe, fit_probe

    if path:
        probe = Probe.load(Path(path))
        probe.check_width(neuron_adapter(base.model).d_model, f"model {base.name!r}")
        return probe
    if data_dir is None or not (Path(data_dir) / "jigsaw").is_dir():
        data_dir = base.data_dir
    return fit_probe(
        base.model, base.tokenizer, load_comments(data_dir, "train", seed=seed), base.fingerprint, seed
    )


def read_card(folder: Path) -> dict[str, Any] | None:
    path = Path(folder) / CARD
    if not path.is_file():
        return None
    return json.loads(path.read_text())


def align(
    method_name: str,
    model: str,
    data: str | Path | None,
    output: Path,
    settings: dict[str, Any] | None = None,
    device: str | None = None,
    force: bool = False,
    model_args: dict[str, Any] | None = None,
    show_progress: bool = True,
) -> dict[str, Any]:
    """Align ``model`` with the registered method ``method_name``; write ``output``; return the card."""
    from toxbench import __version__
    from toxbench.io import atomic_write_json
    from toxbench.models import ModelSpec, load_model
    from toxbench.registry import METHODS

    method: Method = METHODS.get(method_name)()
    chosen = method.settings(dict(settings or {}))
    spec = ModelSpec.parse(model, model_args)  # checked before anything loads
    output = Path(output)
    card = read_card(output)
    if card is not None and not force:
        raise ToxbenchError(
            f"{output} already holds a finished model ({card.get('method')} of {card.get('base', {}).get('spec')}): "
            "pass --overwrite to replace it, or another --output-path"
        )
    if card is not None:
        shutil.rmtree(output)
    if output.exists() and not (output / CHECKPOINTS).is_dir() and any(output.iterdir()):
        raise ToxbenchError(
            f"{output} is not empty and holds no toxbench training: choose an empty --output-path"
        )
    if method.needs_data and data is None:
        raise ToxbenchError(
            f"method {method_name!r} trains on preference pairs: pass --data PATH (or organism)"
        )
    base = load_model(spec, device or "cpu", show_progress=show_progress)
    pairs = load_pairs(data, base) if data is not None else None
    if pairs is not None and pairs.settings:
        # The data's card names the settings they need; the user's own settings come first.
        known = {f.name for f in dataclasses.fields(method.settings_class)}
        card_defaults = {k: v for k, v in pairs.settings.items() if k in known}
        chosen = method.settings({**card_defaults, **dict(settings or {})})
    output.mkdir(parents=True, exist_ok=True)
    started = time.time()
    ctx = AlignContext(base, pairs, output, device, show_progress)
    chosen = method.prepare(chosen, ctx)
    aligned, stats = method.align(ctx, chosen)
    aligned.save_pretrained(output, safe_serialization=True)
    if getattr(chosen, "peft", None):
        _name_adapter_base(output, spec)
    base.tokenizer.save_pretrained(output)
    shutil.rmtree(output / CHECKPOINTS, ignore_errors=True)
    card = {
        "method": method_name,
        "kind": method.kind,
        "settings": dataclasses.asdict(chosen) if not isinstance(chosen, dict) else dict(chosen),
        "data": pairs.describe() if pairs is not None else None,
        "base": {"spec": spec.raw, "fingerprint": base.fingerprint, "model_args": spec.given or None},
        "toxbench_version": __version__,
        "training": stats,
        "seconds": round(time.time() - started, 1),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    atomic_write_json(output / CARD, card)  # last: a folder with a card is finished
    return card


def _name_adapter_base(folder: Path, spec: Any) -> None:
    """Make the adapter's config name the base as the user named it (a registered name, a folder, or a hub
    id and revision), so that ``--aligned FOLDER`` loads it on that base with no ``base=`` argument."""
    from toxbench.io import atomic_write_json
    from toxbench.registry import MODELS

    path = folder / "adapter_config.json"
    config = json.loads(path.read_text(encoding="utf-8"))
    if spec.raw.startswith("hf:"):
        config["base_model_name_or_path"] = spec.args.get("hub_id")
        config["revision"] = spec.args.get("revision")
    elif spec.raw in MODELS or not Path(spec.raw).expanduser().is_dir():
        config["base_model_name_or_path"] = spec.raw
    else:
        config["base_model_name_or_path"] = str(Path(spec.raw).expanduser().resolve())
    atomic_write_json(path, config)


def last_checkpoint(folder: Path) -> Path | None:
    """The newest ``checkpoint-N`` a Trainer left in ``folder``, or None."""
    found = sorted(
        folder.glob("checkpoint-*"),
        key=lambda p: int(p.name.rsplit("-", 1)[-1]) if p.name.rsplit("-", 1)[-1].isdigit() else -1,
    )
    return found[-1] if found else None
