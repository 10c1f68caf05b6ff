"""The linear toxicity probe ([A] §3.1) and its direction W_Toxic.

Features: the last layer's residual stream after the final norm (the model's last hidden
state), averaged over each text's tokens with padding masked out; texts are read with the
tokenizer's defaults, so the mean includes BOS where the tokenizer adds it. A logistic
regression (scikit-learn) on a 90:10 split; W_Toxic is its weight vector (toxic minus
non-toxic). The difference of the two classes' mean features is kept beside it: a
discriminative weight vector and the direction the classes actually differ along need not
agree (on the organism their cosine is 0.19), and the ablation task subtracts both.

A probe made elsewhere (Lee et al.'s ``probe.pt``) loads with ``load_probe_file``: a
tensor of shape [d_model] or [1, d_model], or a dict holding one, read with
``torch.load(..., weights_only=True)``; a file that needs pickle is refused.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from toxbench.errors import ToxbenchError
from toxbench.io import atomic_write_bytes, atomic_write_json
from toxbench.metrics import Metric, metric
from toxbench.numerics import widened

log = logging.getLogger("toxbench")


@dataclass
class Probe:
    direction: np.ndarray  # W_Toxic, d_model
    bias: float
    accuracy: Metric | None  # held-out accuracy, with a bootstrap interval (None: imported, unknown)
    n_train: int
    n_valid: int
    model_fingerprint: str
    data_sha256: str
    mean_difference: np.ndarray | None = None  # mean feature of toxic minus non-toxic texts
    source: str = "trained"

    @property
    def unit(self) -> np.ndarray:
        return self.direction / np.linalg.norm(self.direction)

    def save(self, path: Path) -> None:
        """``path``.npy holds the direction; ``path``.json everything else."""
        import io

        buf = io.BytesIO()
        np.save(buf, self.direction.astype(np.float64))  # float64: a reloaded probe gives the same numbers
        atomic_write_bytes(path.with_suffix(".npy"), buf.getvalue())
        meta = {k: v for k, v in asdict(self).items() if k not in ("direction", "mean_difference")}
        if self.mean_difference is not None:
            meta["mean_difference"] = [float(x).hex() for x in self.mean_difference]  # exact round trip
        atomic_write_json(path.with_suffix(".json"), meta)

    @classmethod
    def load(cls, path: Path) -> Probe:
        """A probe saved by ``save`` (``path``.npy + ``path``.json), or a ``.pt`` file (``load_probe_file``)."""
        if path.suffix in TORCH_SUFFIXES:
            return load_probe_file(path)
        npy, meta_path = path.with_suffix(".npy"), path.with_suffix(".json")
        if not npy.is_file() or not meta_path.is_file():
            raise ToxbenchError(
                f"probe {str(path)!r} not found: expected {npy.name} and {meta_path.name} beside each other "
                "(written by `toxbench probe train --output-path STEM`), or a .pt file holding the probe vector"
            )
        try:
            meta = json.loads(meta_path.read_text())
            direction = np.load(npy, allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise ToxbenchError(f"probe {str(path)!r} cannot be read ({exc}): train it again") from exc
        meta["accuracy"] = Metric(**meta["accuracy"]) if meta.get("accuracy") else None
        if meta.get("mean_difference") is not None:
            meta["mean_difference"] = np.array([float.fromhex(x) for x in meta["mean_difference"]])
        return cls(direction=direction, **meta)

    def check_width(self, d_model: int, where: str = "the model") -> None:
        if self.direction.shape != (d_model,):
            raise ToxbenchError(
                f"probe from {self.source} has width {self.direction.shape[-1] if self.direction.ndim else 0} but "
                f"the residual stream of {where} has width {d_model}: the probe belongs to another model; "
                "train one for this model (`toxbench probe train`) or pass the probe made for it"
            )

    def identity(self) -> dict[str, Any]:
        return {
            "accuracy": None if self.accuracy is None else self.accuracy.to_dict(),
            "n_train": self.n_train,
            "n_valid": self.n_valid,
            "model_fingerprint": self.model_fingerprint,
            "data_sha256": self.data_sha256,
            "norm": float(np.linalg.norm(self.direction)),
            "source": self.source,
        }


TORCH_SUFFIXES = (".pt", ".pth", ".bin")


def torch_load_safe(path: Path, what: str) -> Any:
    """``torch.load(path, weights_only=True)``; a file that needs pickle is refused, naming it."""
    import pickle

    import torch

    if not path.is_file():
        raise ToxbenchError(f"{what} {str(path)!r} is not a file")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise ToxbenchError(
            f"{what} {str(path)!r} holds Python objects that only pickle can load, which can run code: refused. "
            "Save it again as plain tensors (torch.save of a tensor or a dict of tensors) or as safetensors"
        ) from exc
    except (RuntimeError, EOFError, ValueError) as exc:
        raise ToxbenchError(f"{what} {str(path)!r} is not a readable torch file ({exc})") from exc


def load_probe_file(path: Path) -> Probe:
    """A probe vector from a ``.pt`` file: a tensor [d] or [1, d], or a dict holding exactly one such tensor."""
    import hashlib

    import torch

    obj = torch_load_safe(path, "probe")
    if isinstance(obj, dict):
        tensors = {k: v for k, v in obj.items() if isinstance(v, torch.Tensor) and v.dim() in (1, 2)}
        if len(tensors) != 1:
            raise ToxbenchError(
                f"probe {str(path)!r} is a dict with {len(tensors)} vector-shaped tensors "
                f"({', '.join(map(str, obj)) or 'no keys'}): it must hold exactly one"
            )
        obj = next(iter(tensors.values()))
    if not isinstance(obj, torch.Tensor) or not (obj.dim() == 1 or (obj.dim() == 2 and obj.shape[0] == 1)):
        shape = tuple(obj.shape) if isinstance(obj, torch.Tensor) else type(obj).__name__
        raise ToxbenchError(
            f"probe {str(path)!r} holds {shape}: expected a tensor of shape [d_model] or [1, d_model]"
        )
    direction = obj.detach().double().reshape(-1).numpy()
    if not np.all(np.isfinite(direction)) or not np.any(direction):
        raise ToxbenchError(f"probe {str(path)!r} is zero or not finite")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    return Probe(
        direction=direction,
        bias=0.0,
        accuracy=None,
        n_train=0,
        n_valid=0,
        model_fingerprint="unknown",
        data_sha256="unknown",
        source=f"{path} (sha256 {digest[:16]})",
    )


def mean_final_residual(
    model, tokenizer, texts: list[str], batch_size: int = 32, max_tokens: int | None = None, advance=None
) -> np.ndarray:
    """Per text: the final-norm residual stream averaged over its tokens (padding masked, BOS included
    where the tokenizer adds it). The base model's last hidden state: no logits are computed."""
    import torch

    from toxbench.models import context_length
    from toxbench.passes import teacher_forced
    from toxbench.tokenization import encode

    limit = min(max_tokens or 10**9, context_length(model))
    device = next(model.parameters()).device
    out = []
    for start in range(0, len(texts), batch_size):
        batch = texts[start : start + batch_size]
        enc = [e[:limit] for e in encode(tokenizer, batch)]
        width = max(max(len(e) for e in enc), 1)
        ids = torch.full((len(enc), width), tokenizer.pad_token_id, dtype=torch.long)
        mask = torch.zeros((len(enc), width), dtype=torch.long)
        for row, e in enumerate(enc):  # right padding keeps positions 0..n-1
            ids[row, : len(e)] = torch.tensor(e, dtype=torch.long)
            mask[row, : len(e)] = 1
        ids, mask = ids.to(device), mask.to(device)
        with torch.inference_mode(), teacher_forced():
            hidden = model.base_model(input_ids=ids, attention_mask=mask).last_hidden_state
        m = mask.unsqueeze(-1).to(hidden.dtype)
        mean = (hidden * m).sum(1) / m.sum(1).clamp(min=1)
        out.append(widened(mean).cpu().numpy())
        if advance:
            advance(len(batch))
    return np.concatenate(out)


def train_probe(
    features: np.ndarray,
    labels: np.ndarray,
    model_fingerprint: str,
    data_sha256: str,
    seed: int = 0,
    valid_fraction: float = 0.1,
) -> Probe:
    """Logistic regression on a stratified split; W_Toxic = the toxic class's weight vector."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import train_test_split

    x_train, x_valid, y_train, y_valid = train_test_split(
        features, labels, test_size=valid_fraction, random_state=seed, stratify=labels
    )
    clf = LogisticRegression(max_iter=2000, random_state=seed)
    clf.fit(x_train, y_train)
    correct = (clf.predict(x_valid) == y_valid).astype(float)
    toxic = np.asarray(y_train) == 1
    return Probe(
        direction=clf.coef_[0].astype(np.float64),  # binary: positive = toxic (label 1)
        bias=float(clf.intercept_[0]),
        accuracy=metric(correct, seed=seed),
        n_train=len(y_train),
        n_valid=len(y_valid),
        model_fingerprint=model_fingerprint,
        data_sha256=data_sha256,
        mean_difference=(x_train[toxic].mean(0) - x_train[~toxic].mean(0)).astype(np.float64),
    )


def fit_probe(
    model, tokenizer, comments, model_fingerprint: str, seed: int = 0, batch_size: int = 32
) -> Probe:
    """Features of labelled comments (a ``Loaded`` of ``Comment``) and the probe trained on them."""
    from toxbench.progress import progress_bar

    texts = [c.text for c in comments.rows]
    with progress_bar("probe features", len(texts)) as advance:
        feats = mean_final_residual(model, tokenizer, texts, batch_size, advance=advance)
    labels = np.array([c.toxic for c in comments.rows])
    return train_probe(feats, labels, model_fingerprint, comments.sha256, seed)


def load_or_train_probe(ctx, model) -> Probe:
    """``ctx.config.probe_path`` if given; else the cached probe for (model, data, seed); else train it."""
    from toxbench.cache import cache_key
    from toxbench.data import PROBE_DATA_LIMIT, load_comments
    from toxbench.mech.neurons import neuron_adapter

    if ctx.config.probe_path:
        probe = Probe.load(Path(ctx.config.probe_path))
        probe.check_width(neuron_adapter(model.model).d_model, f"model {model.name!r}")
        return probe
    limit = ctx.config.probe_data_limit or PROBE_DATA_LIMIT
    comments = load_comments(ctx.data_dir, "train", limit, ctx.config.seed)
    ctx.record_dataset(comments)
    log.info("probe data: %s", comments.describe())
    key = cache_key("probe", version=2, model=model.fingerprint, data=comments.sha256, seed=ctx.config.seed)
    path = ctx.cache.root / "probes" / key[:32] if ctx.cache.enabled else None
    if path is not None and path.with_suffix(".json").is_file() and path.with_suffix(".npy").is_file():
        return Probe.load(path)
    probe = fit_probe(model.model, model.tokenizer, comments, model.fingerprint, ctx.config.seed)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        probe.save(path)
    return probe
