"""The linear toxicity probe ([A] §3.1) and its direction W_Toxic.

Features: the last layer's residual stream after the final norm (the model's last hidden
state), averaged over each text's tokens with padding masked out. A logistic regression
(scikit-learn) on a 90:10 split; W_Toxic is its weight vector (toxic minus non-toxic).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from harness.io import atomic_write_bytes, atomic_write_json
from harness.metrics import Metric, metric


@dataclass
class Probe:
    direction: np.ndarray  # W_Toxic, d_model
    bias: float
    accuracy: Metric  # held-out accuracy, with a bootstrap interval
    n_train: int
    n_valid: int
    model_fingerprint: str
    data_sha256: str

    @property
    def unit(self) -> np.ndarray:
        return self.direction / np.linalg.norm(self.direction)

    def save(self, path: Path) -> None:
        """``path``.npy holds the direction; ``path``.json everything else."""
        import io

        buf = io.BytesIO()
        np.save(buf, self.direction.astype(np.float64))  # float64: a reloaded probe gives the same numbers
        atomic_write_bytes(path.with_suffix(".npy"), buf.getvalue())
        meta = {k: v for k, v in asdict(self).items() if k != "direction"}
        atomic_write_json(path.with_suffix(".json"), meta)

    @classmethod
    def load(cls, path: Path) -> Probe:
        meta = json.loads(path.with_suffix(".json").read_text())
        meta["accuracy"] = Metric(**meta["accuracy"])
        return cls(direction=np.load(path.with_suffix(".npy")), **meta)

    def identity(self) -> dict[str, Any]:
        return {"accuracy": self.accuracy.to_dict(), "n_train": self.n_train, "n_valid": self.n_valid,
                "model_fingerprint": self.model_fingerprint, "data_sha256": self.data_sha256,
                "norm": float(np.linalg.norm(self.direction))}


def mean_final_residual(model, tokenizer, texts: list[str], batch_size: int = 32, max_tokens: int | None = None,
                        advance=None) -> np.ndarray:
    """Per text: the final-norm residual stream averaged over its tokens (padding masked)."""
    import torch

    from harness.fluency import context_length

    limit = min(max_tokens or 10**9, context_length(model))
    device = next(model.parameters()).device
    out = []
    for start in range(0, len(texts), batch_size):
        batch = texts[start : start + batch_size]
        enc = tokenizer(batch, add_special_tokens=False, truncation=True, max_length=limit)["input_ids"]
        width = max(max(len(e) for e in enc), 1)
        ids = torch.full((len(enc), width), tokenizer.pad_token_id, dtype=torch.long)
        mask = torch.zeros((len(enc), width), dtype=torch.long)
        for row, e in enumerate(enc):  # right padding keeps positions 0..n-1
            ids[row, : len(e)] = torch.tensor(e, dtype=torch.long)
            mask[row, : len(e)] = 1
        ids, mask = ids.to(device), mask.to(device)
        with torch.inference_mode():
            hidden = model(input_ids=ids, attention_mask=mask, output_hidden_states=True).hidden_states[-1]
        m = mask.unsqueeze(-1).to(hidden.dtype)
        mean = (hidden * m).sum(1) / m.sum(1).clamp(min=1)
        out.append(mean.float().cpu().numpy())
        if advance:
            advance(len(batch))
    return np.concatenate(out)


def train_probe(features: np.ndarray, labels: np.ndarray, model_fingerprint: str, data_sha256: str,
                seed: int = 0, valid_fraction: float = 0.1) -> Probe:
    """Logistic regression on a stratified split; W_Toxic = the toxic class's weight vector."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import train_test_split

    x_train, x_valid, y_train, y_valid = train_test_split(
        features, labels, test_size=valid_fraction, random_state=seed, stratify=labels)
    clf = LogisticRegression(max_iter=2000, random_state=seed)
    clf.fit(x_train, y_train)
    correct = (clf.predict(x_valid) == y_valid).astype(float)
    return Probe(
        direction=clf.coef_[0].astype(np.float64),  # binary: positive = toxic (label 1)
        bias=float(clf.intercept_[0]),
        accuracy=metric(correct, seed=seed),
        n_train=len(y_train),
        n_valid=len(y_valid),
        model_fingerprint=model_fingerprint,
        data_sha256=data_sha256,
    )


def fit_probe(model, tokenizer, comments, model_fingerprint: str, seed: int = 0,
              batch_size: int = 32) -> Probe:
    """Features of labelled comments (a ``Loaded`` of ``Comment``) and the probe trained on them."""
    from harness.progress import progress_bar

    texts = [c.text for c in comments.rows]
    with progress_bar("probe features", len(texts)) as advance:
        feats = mean_final_residual(model, tokenizer, texts, batch_size, advance=advance)
    labels = np.array([c.toxic for c in comments.rows])
    return train_probe(feats, labels, model_fingerprint, comments.sha256, seed)


def load_or_train_probe(ctx, model) -> Probe:
    """``ctx.config.probe_path`` if given; else the cached probe for (model, data, seed); else train it."""
    from harness.cache import cache_key
    from harness.data import load_comments

    if ctx.config.probe_path:
        return Probe.load(Path(ctx.config.probe_path))
    comments = load_comments(ctx.data_dir, "train")
    ctx.record_dataset(comments)
    key = cache_key("probe", model=model.fingerprint, data=comments.sha256, seed=ctx.config.seed)
    path = ctx.cache.root / "probes" / key[:32] if ctx.cache.enabled else None
    if path is not None and path.with_suffix(".json").is_file() and path.with_suffix(".npy").is_file():
        return Probe.load(path)
    probe = fit_probe(model.model, model.tokenizer, comments, model.fingerprint, ctx.config.seed)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        probe.save(path)
    return probe
