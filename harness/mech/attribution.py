"""Probe-direction attribution ([B] §8): the mathematics, shared by the attribution and ablation tasks.

Neuron i of layer l writes ā_i(M) v_i(M) into the residual stream on average. Its writing
along the unit probe direction ŵ is p_i(M) = ā_i(M) ⟨v_i(M), ŵ⟩, and its contribution to the
drop in toxic writing from base to aligned is Δ_i = p_i(base) - p_i(aligned). Neurons fall into
four toxicity-reducing groups by the sign of cos(v_i(base), ŵ), of ā_i(base) and of Δa_i:

| group | cos(v, w) | ā(base) | Δa = ā(base) - ā(aligned) |
|---|---|---|---|
| TP- (toxic, positive, dampened) | > 0 | ≥ 0 | > 0 |
| TN+ (toxic, negative, more negative) | > 0 | < 0 | > 0 |
| AP+ (anti-toxic, positive, raised) | < 0 | ≥ 0 | < 0 |
| AN- (anti-toxic, negative, less negative) | < 0 | < 0 | < 0 |

and four mirrors (TP+, TN-, AP-, AN+) where the change raises toxic writing. The groups'
shares are of the gross reduction (the four reducing groups' sum).

``attribute`` also checks the identity that makes the split trustworthy: Σ Δ_i equals the
change of the MLPs' writing along ŵ measured directly from their outputs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from toxbench.backends.base import SamplingConfig
from toxbench.cache import cache_key
from toxbench.errors import ToxbenchError
from toxbench.mech.capture import NeuronSums, capture_neuron_sums
from toxbench.mech.vectors import value_cosines
from toxbench.numerics import widened
from toxbench.progress import progress_bar

# group: (sign of cos(v_i(base), w), base activation >= 0, sign of Δa_i)
REDUCING = {"TP-": (1, True, 1), "TN+": (1, False, 1), "AP+": (-1, True, -1), "AN-": (-1, False, -1)}
MIRRORS = {"TP+": (1, True, -1), "TN-": (1, False, -1), "AP-": (-1, True, 1), "AN+": (-1, False, 1)}


def group_masks(cos: np.ndarray, act_base: np.ndarray, d_act: np.ndarray) -> dict[str, np.ndarray]:
    """Each group's neurons as a boolean [n_layers, d_mlp] mask (see the table above)."""
    masks = {}
    for name, (c_sign, positive, d_sign) in {**REDUCING, **MIRRORS}.items():
        masks[name] = (np.sign(cos) == c_sign) & ((act_base >= 0) == positive) & (np.sign(d_act) == d_sign)
    return masks


def neuron_cosines(adapter, w: np.ndarray) -> np.ndarray:
    """cos(v_i, w) of every neuron's value vector, [n_layers, d_mlp] (float64)."""
    return value_cosines(adapter, w).double().numpy()


def probe_writing(adapter, w: np.ndarray) -> np.ndarray:
    """⟨v_i, ŵ⟩ of every neuron, [n_layers, d_mlp]: how much a unit of activation writes along ŵ."""
    return np.stack(
        [adapter.values(layer).detach().double().cpu().numpy() @ w for layer in range(adapter.n_layers)]
    )


def out_bias_writing(adapter, w: np.ndarray) -> np.ndarray:
    """⟨b_out(l), ŵ⟩ of every layer's MLP output bias (0 where there is none)."""
    return np.array(
        [
            0.0
            if adapter.out_bias(layer) is None
            else float(adapter.out_bias(layer).detach().double().cpu().numpy() @ w)
            for layer in range(adapter.n_layers)
        ]
    )


@dataclass
class Attribution:
    """The split of the change in toxic writing from base to aligned, neuron by neuron."""

    delta: np.ndarray  # Δ_i, [n_layers, d_mlp]
    act_base: np.ndarray
    act_aligned: np.ndarray
    cos: np.ndarray  # cos(v_i(base), ŵ)
    masks: dict[str, np.ndarray]
    direct_change: float  # the MLPs' writing change, measured from their outputs
    identity_residual: float

    @property
    def d_act(self) -> np.ndarray:
        return self.act_base - self.act_aligned

    @property
    def net(self) -> float:
        return float(self.delta.sum())

    @property
    def gross(self) -> float:
        return float(sum(self.delta[self.masks[g]].sum() for g in REDUCING))

    def groups(self) -> dict[str, dict[str, Any]]:
        gross = self.gross
        return {
            g: {
                "sum": float(self.delta[m].sum()),
                "n_neurons": int(m.sum()),
                "share": float(self.delta[m].sum() / gross) if gross else None,
            }
            for g, m in self.masks.items()
        }

    def per_layer(self) -> list[dict[str, float]]:
        return [
            {
                "layer": layer,
                "sum": float(self.delta[layer].sum()),
                **{g: float(self.delta[layer][self.masks[g][layer]].sum()) for g in REDUCING},
            }
            for layer in range(self.delta.shape[0])
        ]

    def group_of(self) -> dict[tuple[int, int], str]:
        return {
            (int(layer), int(i)): g
            for g, m in self.masks.items()
            for layer, i in zip(*np.nonzero(m), strict=True)
        }


def attribute(
    adapter_base,
    adapter_aligned,
    sums_base: NeuronSums,
    sums_aligned: NeuronSums,
    w: np.ndarray,
    tolerance: float = 1e-3,
) -> Attribution:
    """Δ_i for every neuron from each model's captured statistics, with the identity checked.

    Raises ``ToxbenchError`` when Σ Δ_i and the directly measured change differ by more than
    ``tolerance`` of the larger of |change| and Σ|Δ_i|: the capture hooks would then not be
    seeing what the MLPs write.
    """
    if (adapter_base.n_layers, adapter_base.d_mlp) != (adapter_aligned.n_layers, adapter_aligned.d_mlp):
        raise ToxbenchError(
            "base and aligned models have different MLP shapes: attribution needs the same architecture"
        )
    act_b, act_a = sums_base.mean_activation(), sums_aligned.mean_activation()
    delta = act_b * probe_writing(adapter_base, w) - act_a * probe_writing(adapter_aligned, w)
    direct = [
        (s.mean_mlp_out() @ w) - out_bias_writing(ad, w)
        for s, ad in ((sums_base, adapter_base), (sums_aligned, adapter_aligned))
    ]
    direct_change = float(direct[0].sum() - direct[1].sum())
    net = float(delta.sum())
    residual = abs(net - direct_change)
    scale = max(abs(direct_change), float(np.abs(delta).sum()), 1e-12)
    if residual > tolerance * scale:
        raise ToxbenchError(
            f"attribution identity failed: Σ Δ_i = {net:.6g} but the MLPs' writing changed by "
            f"{direct_change:.6g} (residual {residual:.3g}); the capture hooks do not see what the MLPs write"
        )
    cos = neuron_cosines(adapter_base, w)
    return Attribution(
        delta, act_b, act_a, cos, group_masks(cos, act_b, act_b - act_a), direct_change, residual
    )


def parameter_cosines(base, aligned) -> dict[str, float]:
    """cos(base, aligned) of every parameter tensor, flattened ([A]: all stay above 0.99)."""
    import torch

    out = {}
    aligned_params = dict(aligned.named_parameters())
    for name, p in base.named_parameters():
        a, b = widened(p.detach()).flatten(), widened(aligned_params[name].detach()).flatten()
        out[name] = float(torch.nn.functional.cosine_similarity(a, b, dim=0))
    return out


def capture_pass(ctx: Any, model: Any, prompts: list[str], sampling: SamplingConfig, role: str) -> NeuronSums:
    """Generate greedily with capture hooks on a run's hooks-capable backend, summing the neuron
    statistics; cached per chunk of prompts, so a killed run resumes (``ctx`` is a ``RunContext``)."""
    backend = ctx.hook_backend(model)
    order = sorted(range(len(prompts)), key=lambda i: -len(prompts[i]))
    chunks = [order[s : s + backend.batch_size] for s in range(0, len(order), backend.batch_size)]
    keys = [
        cache_key(
            "capture", model=model.fingerprint, sampling=sampling.key(), prompts=[prompts[i] for i in chunk]
        )
        for chunk in chunks
    ]
    found = ctx.cache.get_many(keys) if ctx.config.use_cache else {}
    total: NeuronSums | None = None
    with progress_bar(f"attribution capture {role} ({model.name})", len(prompts)) as advance:
        for chunk, key in zip(chunks, keys, strict=True):
            if key in found:
                sums = NeuronSums.from_json(found[key])
            else:
                with capture_neuron_sums(model.model, model.tokenizer) as acc:
                    backend.generate([prompts[i] for i in chunk], sampling)
                sums = acc.sums()
                ctx.cache.put_many("capture", {key: sums.to_json()})
            total = sums if total is None else total + sums
            advance(len(chunk))
    assert total is not None
    return total
