"""Detoxify (Hanu & Unitary, 2020): the public toxicity classifiers, through Detoxify's own class.

Detoxify downloads its checkpoint from GitHub (into ``$TORCH_HOME/hub/checkpoints``) and the
config and tokenizer of the checkpoint's base model (``bert-base-uncased``, ``roberta-base``,
``xlm-roberta-base``) from the Hugging Face hub. Offline, either copy both caches from a
machine that ran ``Detoxify(model_type)`` once, or pass ``checkpoint=PATH`` and
``huggingface_config_path=DIR`` (see ``DetoxifyScorer``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

from toxbench.errors import ToxbenchError
from toxbench.io import sha256_file
from toxbench.models import resolve_device
from toxbench.scorers.base import Scorer, score_in_batches

MODEL_TYPES = ("original", "unbiased", "multilingual")
BASE_MODELS = {
    "original": "bert-base-uncased",
    "unbiased": "roberta-base",
    "multilingual": "xlm-roberta-base",
}


class DetoxifyScorer(Scorer):
    """One Detoxify attribute (default: toxicity; ``max``: the largest of all) of a model loaded once per instance.

    ``checkpoint``: a local ``.ckpt`` file instead of the released one (needed offline).
    ``huggingface_config_path``: a folder with the model's ``config.json`` and tokenizer files,
    read instead of the hub. Scores go through Detoxify's own ``predict``, in batches of texts
    of similar length.
    """

    name = "detoxify"

    def __init__(
        self,
        model_type: str = "original",
        checkpoint: str | Path | None = None,
        huggingface_config_path: str | Path | None = None,
        device: str | None = None,
        batch_size: int | str = 64,
        attribute: str = "toxicity",
        allow_pickle: bool | str = False,
    ) -> None:
        if model_type not in MODEL_TYPES:
            raise ToxbenchError(
                f"unknown Detoxify model_type {model_type!r}: choose one of {', '.join(MODEL_TYPES)}"
            )
        try:
            self.batch_size = int(batch_size)  # from the CLI, scorer options are strings
        except ValueError:
            self.batch_size = 0
        if self.batch_size < 1:
            raise ToxbenchError(f"Detoxify batch_size must be a positive integer, got {batch_size!r}")
        try:
            from detoxify import Detoxify
            from detoxify.detoxify import MODEL_URLS
        except ImportError as exc:
            raise ToxbenchError(
                "the detoxify scorer needs the detoxify package: pip install detoxify"
            ) from exc

        self.model_type = model_type
        self.attribute = attribute
        self.checkpoint = Path(checkpoint) if checkpoint else None
        self.huggingface_config_path = Path(huggingface_config_path) if huggingface_config_path else None
        if self.checkpoint is not None and not self.checkpoint.is_file():
            raise ToxbenchError(f"Detoxify checkpoint {str(self.checkpoint)!r} is not a file")
        if self.huggingface_config_path is not None and not self.huggingface_config_path.is_dir():
            raise ToxbenchError(
                f"Detoxify huggingface_config_path {str(self.huggingface_config_path)!r} is not a folder"
            )
        self._url = MODEL_URLS[model_type]
        self._source = self._url if self.checkpoint is None else str(self.checkpoint)
        weights = self._url if self.checkpoint is None else "sha256:" + sha256_file(self.checkpoint)[:16]
        self.allow_pickle = str(allow_pickle).strip().lower() in ("1", "true", "yes")
        try:
            self.detoxify = self._build(Detoxify, resolve_device(device))
        except OSError as exc:  # no network, or a file missing from the hub caches
            raise ToxbenchError(self._load_failure(exc)) from exc
        if attribute != "max" and attribute not in self.detoxify.class_names:
            raise ToxbenchError(
                f"Detoxify {model_type!r} has no attribute {attribute!r}: "
                f"choose one of {', '.join(self.detoxify.class_names)}, or max (the largest of them)"
            )
        self._fingerprint = f"detoxify-{metadata.version('detoxify')}-{model_type}-{attribute}-{weights}"

    def _build(self, detoxify_class, device: str):
        """Detoxify's model, tokenizer and class names from a checkpoint that toxbench loads itself.

        Detoxify 0.5 unpickles checkpoints (``torch.load(..., weights_only=False)``), so a crafted file
        runs code. Here the checkpoint is read with ``weights_only=True``; one that needs pickle is
        refused unless ``allow_pickle=true`` is given. Detoxify's own builder then makes the model.
        """
        import pickle

        import torch
        from detoxify import detoxify as dx

        source = self._source
        try:
            if self.checkpoint is None:
                loaded = torch.hub.load_state_dict_from_url(
                    self._url, map_location=device, weights_only=not self.allow_pickle
                )
            else:
                loaded = torch.load(self.checkpoint, map_location=device, weights_only=not self.allow_pickle)
        except pickle.UnpicklingError as exc:
            raise ToxbenchError(
                f"Detoxify checkpoint {source} holds Python objects that only pickle can load, which can run "
                "code: refused. If you trust the file, pass --scorer-args allow_pickle=true"
            ) from exc
        if not isinstance(loaded, dict) or "config" not in loaded or "state_dict" not in loaded:
            raise ToxbenchError(
                f"Detoxify checkpoint {source} is not in Detoxify's format: it needs 'config' "
                "(the training config) and 'state_dict'"
            )
        renamed = {"toxic": "toxicity", "identity_hate": "identity_attack", "severe_toxic": "severe_toxicity"}
        try:
            classes = [renamed.get(c, c) for c in loaded["config"]["dataset"]["args"]["classes"]]
            arch = loaded["config"]["arch"]["args"]
        except (KeyError, TypeError) as exc:
            raise ToxbenchError(
                f"Detoxify checkpoint {source} has no config.arch.args or class list ({exc})"
            ) from exc
        scorer = detoxify_class.__new__(detoxify_class)
        scorer.model, scorer.tokenizer = dx.get_model_and_tokenizer(
            **arch,
            state_dict=loaded["state_dict"],
            huggingface_config_path=None
            if self.huggingface_config_path is None
            else str(self.huggingface_config_path),
        )
        scorer.class_names, scorer.device = classes, device
        scorer.model.to(device)
        return scorer

    def _load_failure(self, exc: OSError) -> str:
        """What failed, and the two ways to load Detoxify without network."""
        mt, base, version = self.model_type, BASE_MODELS[self.model_type], metadata.version("detoxify")
        return (
            f"could not load Detoxify {mt!r} from {self._source}: {exc}\n"
            f'Without network, either (1) run `python -c "from detoxify import Detoxify; '
            f"Detoxify('{mt}')\"` once on a machine with network and copy its torch hub cache "
            f"(~/.cache/torch/hub/checkpoints, or $TORCH_HOME/hub/checkpoints) and Hugging Face cache "
            f"(~/.cache/huggingface/hub) here; or (2) pass checkpoint=PATH (the .ckpt file, from "
            f"{self._url}) and huggingface_config_path=DIR, a folder written on that machine by "
            f"`d = Detoxify('{mt}'); d.model.config.save_pretrained(DIR); d.tokenizer.save_pretrained(DIR)` "
            f"(on the command line: --scorer-args checkpoint=PATH --scorer-args "
            f"huggingface_config_path=DIR). Detoxify {version} also reads the config of {base!r} by "
            f"name, so with (2) the Hugging Face cache must still hold that config.json."
        )

    def fingerprint(self) -> str:
        return self._fingerprint

    def identity(self) -> dict[str, Any]:
        return {
            **super().identity(),
            "model_type": self.model_type,
            "attribute": self.attribute,
            "checkpoint": self._source,
        }

    def score(self, texts: Sequence[str]) -> list[float | None]:
        return score_in_batches(texts, self._predict, self.batch_size, "Detoxify")

    def _predict(self, texts: list[str]) -> list[float | None]:
        """Detoxify's scores of ``attribute`` for ``texts``; a non-finite score is None."""
        predicted = self.detoxify.predict(texts)
        if self.attribute == "max":  # [A]'s rule for Perspective: the largest of the attributes
            columns = [v if isinstance(v, list) else [v] for v in predicted.values()]
            values = [max(row) for row in zip(*columns, strict=True)]
        else:
            values = predicted[self.attribute]
        if not isinstance(values, list):  # predict squeezes a batch of one to a number
            values = [values]
        if len(values) != len(texts):
            raise RuntimeError(f"Detoxify returned {len(values)} scores for {len(texts)} texts")
        return [float(v) if math.isfinite(v) else None for v in values]
