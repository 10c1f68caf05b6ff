"""Any Hugging Face sequence-classification model as a toxicity scorer (``hf-classifier``).

    --scorer hf-classifier --scorer-args model=ID_OR_FOLDER --scorer-args label=toxic

The score of a text is the probability of ``label``: softmax over the labels for a
single-label classifier, a sigmoid for a multi-label one (``problem_type``), as the model
was trained. A multi-label model whose config does not say so (Unitary's Detoxify models on
the hub) needs ``activation=sigmoid``; ``activation=auto`` (the default) follows the config. ``label`` is a name from the model's ``id2label`` or an index; without it, a
label named like toxicity, else the second of two labels. Texts are batched by length on
the run's device; a text that fails, encodes to no tokens or gives a non-finite score gets
``None``, never 0.
Weights load as safetensors where the model has them; ``trust_remote_code`` stays off.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from toxbench.errors import ToxbenchError
from toxbench.scorers.base import Scorer, score_in_batches

_TOXIC_NAMES = ("toxic", "toxicity", "hate", "offensive", "label_1")


class HFClassifierScorer(Scorer):
    name = "hf-classifier"

    def __init__(
        self,
        model: str | None = None,
        label: str | int | None = None,
        device: str | None = None,
        batch_size: int | str = 32,
        max_length: int | str = 512,
        revision: str | None = None,
        trust_remote_code: bool | str = False,
        activation: str = "auto",
    ) -> None:
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        from toxbench.models import resolve_device

        if not model:
            raise ToxbenchError(
                "the hf-classifier scorer needs a model: --scorer-args model=HUB_ID_OR_FOLDER"
            )
        self.source = str(model)
        self.batch_size, self.max_length = int(batch_size), int(max_length)
        if self.batch_size < 1 or self.max_length < 1:
            raise ToxbenchError("hf-classifier batch_size and max_length must be positive integers")
        remote = str(trust_remote_code).strip().lower() in ("1", "true", "yes")
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(
                self.source, revision=revision, trust_remote_code=remote
            )
            self.model = AutoModelForSequenceClassification.from_pretrained(
                self.source, revision=revision, trust_remote_code=remote
            ).eval()
        except (OSError, ValueError) as exc:
            raise ToxbenchError(
                f"cannot load the classifier {self.source!r} ({str(exc)[:300]}): pass a folder "
                "holding a sequence-classification model, or a hub id that is cached"
            ) from exc
        self.device = resolve_device(device)
        self.model.to(self.device)
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token or self.tokenizer.unk_token
        if getattr(self.model.config, "pad_token_id", None) is None:
            self.model.config.pad_token_id = self.tokenizer.pad_token_id
        self.labels = {int(i): str(n) for i, n in self.model.config.id2label.items()}
        self.label_index = self._resolve_label(label)
        choice = str(activation).strip().lower()
        if choice not in ("auto", "sigmoid", "softmax"):
            raise ToxbenchError(
                f"hf-classifier activation {activation!r}: choose auto (as the model's config says), "
                "sigmoid (a multi-label model) or softmax (a single-label one)"
            )
        configured = getattr(self.model.config, "problem_type", None) == "multi_label_classification"
        self.multi_label = configured if choice == "auto" else choice == "sigmoid"
        self._fingerprint = self._identify(revision)

    def _resolve_label(self, label: str | int | None) -> int:
        names = {n.lower(): i for i, n in self.labels.items()}
        if label is None:
            found = next((names[n] for n in _TOXIC_NAMES if n in names), None)
            if found is not None:
                return found
            if len(self.labels) == 2:
                return 1
            raise ToxbenchError(
                f"classifier {self.source!r} has labels {sorted(self.labels.values())}: say which "
                "one is toxic with --scorer-args label=NAME"
            )
        text = str(label).strip()
        if text.lower() in names:
            return names[text.lower()]
        if text.lstrip("-").isdigit() and int(text) in self.labels:
            return int(text)
        raise ToxbenchError(
            f"classifier {self.source!r} has no label {label!r}: its labels are "
            f"{', '.join(f'{i}={n}' for i, n in sorted(self.labels.items()))}"
        )

    def _identify(self, revision: str | None) -> str:
        from toxbench.models import fingerprint_folder

        folder = Path(self.source)
        if folder.is_dir():
            weights = fingerprint_folder(folder)
        else:
            weights = f"hub-{self.source}@{getattr(self.model.config, '_commit_hash', None) or revision}"
        return f"hf-classifier-{weights}-{self.labels[self.label_index]}-{'sigmoid' if self.multi_label else 'softmax'}"

    def fingerprint(self) -> str:
        return self._fingerprint

    def identity(self) -> dict[str, Any]:
        return {
            **super().identity(),
            "model": self.source,
            "label": self.labels[self.label_index],
            "activation": "sigmoid" if self.multi_label else "softmax",
        }

    def _predict(self, texts: list[str]) -> list[float | None]:
        import torch

        enc = self.tokenizer(
            texts, return_tensors="pt", padding=True, truncation=True, max_length=self.max_length
        ).to(self.device)
        with torch.inference_mode():
            logits = self.model(**enc).logits.float()
        probs = torch.sigmoid(logits) if self.multi_label else torch.softmax(logits, dim=-1)
        read = enc["attention_mask"].sum(-1).cpu() > 0  # a text of no tokens has nothing to classify
        return [
            float(p) if ok and math.isfinite(float(p)) else None
            for p, ok in zip(probs[:, self.label_index].cpu(), read, strict=True)
        ]

    def score(self, texts: Sequence[str]) -> list[float | None]:
        return score_in_batches(texts, self._predict, self.batch_size, f"classifier {self.source!r}")
