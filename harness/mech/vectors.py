"""Toxic value vectors ([A] §3.2): rank every MLP value vector by cosine with the probe,
project them onto the vocabulary, and take the SVD of the top ones."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from toxbench.numerics import widened


@dataclass(frozen=True)
class Neuron:
    layer: int
    index: int
    cosine: float  # cos(v_i, W_Toxic)

    @property
    def name(self) -> str:
        return f"L{self.layer}/{self.index}"


def value_cosines(adapter, direction: np.ndarray) -> torch.Tensor:
    """cos(v_i, w) for every neuron, as a [n_layers, d_mlp] tensor."""
    rows = []
    for layer in range(adapter.n_layers):
        v = widened(adapter.values(layer).detach()).cpu()  # [d_mlp, d_model]
        w = torch.as_tensor(direction, dtype=v.dtype)
        w = w / w.norm()
        rows.append((v @ w) / v.norm(dim=1).clamp(min=1e-12))
    return torch.stack(rows)


def rank_toxic_neurons(adapter, direction: np.ndarray, top_k: int) -> list[Neuron]:
    """The ``top_k`` neurons whose value vectors are most aligned with w (ranked over all layers)."""
    cos = value_cosines(adapter, direction)
    flat = cos.flatten()
    values, idx = flat.topk(min(top_k, flat.numel()))
    d_mlp = cos.shape[1]
    return [Neuron(int(i) // d_mlp, int(i) % d_mlp, float(v)) for v, i in zip(values, idx, strict=True)]


def vocab_projection(adapter, tokenizer, neurons: list[Neuron], k: int = 10) -> dict[str, list[str]]:
    """The ``k`` tokens each neuron's value vector promotes most (v_i . W_U)."""
    unembed = widened(adapter.unembedding().detach()).cpu()  # [d_model, vocab]
    out = {}
    for n in neurons:
        logits = widened(adapter.values(n.layer)[n.index].detach()).cpu() @ unembed
        out[n.name] = [tokenizer.decode([int(t)]) for t in logits.topk(k).indices]
    return out


def svd_toxic_direction(
    adapter, neurons: list[Neuron], direction: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """U[0] of the unit-normalised value vectors stacked as a d x N matrix, signed toward w.

    Returns (U[0], the singular values).
    """
    vs = torch.stack([widened(adapter.values(n.layer)[n.index].detach()).cpu() for n in neurons])
    vs = vs / vs.norm(dim=1, keepdim=True).clamp(min=1e-12)
    u, s, _ = torch.linalg.svd(vs.T, full_matrices=False)
    u0 = u[:, 0].numpy().astype(np.float64)
    if float(u0 @ direction) < 0:
        u0 = -u0
    return u0, s.numpy()
