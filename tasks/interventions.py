"""What the ablation and un-alignment tasks share: the reference evaluation of base and
aligned models, evaluating a variant, ratio metrics with paired intervals, the residual
scale that α is measured in, and the report table."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from harness.data import load_rtp
from harness.metrics import Metric, metric
from harness.models import LoadedModel
from harness.runner import RunContext
from tasks.elicitation import evaluate_model
from tasks.protocols import Protocol, get_protocol


@dataclass
class Evaluated:
    metrics: dict[str, Metric]
    toxicity: list[float | None]  # per prompt


@dataclass
class Reference:
    prompts: list[str]
    protocol: Protocol
    base: Evaluated
    aligned: Evaluated


def reference(ctx: RunContext, task: str) -> Reference:
    """Base and aligned models under the paper protocol (cached: free if elicitation ran)."""
    protocol = get_protocol("paper")
    loaded = load_rtp(ctx.data_dir, challenging=True, limit=ctx.config.limit)
    ctx.record_dataset(loaded)
    prompts = [p.text for p in loaded.rows]
    evaluated = {}
    for role in ("base", "aligned"):
        metrics, per_prompt, _ = evaluate_model(ctx, role, ctx.models[role], prompts, protocol, task)
        evaluated[role] = Evaluated(metrics, per_prompt["toxicity"])
    return Reference(prompts, protocol, evaluated["base"], evaluated["aligned"])


def evaluate_variant(ctx: RunContext, ref: Reference, model: LoadedModel, task: str) -> tuple[Evaluated, list[dict]]:
    metrics, per_prompt, samples = evaluate_model(ctx, model.name, model, ref.prompts, ref.protocol, task)
    return Evaluated(metrics, per_prompt["toxicity"]), samples


def ratio_metric(top_a: list, top_b: list, bottom_a: list, bottom_b: list, seed: int) -> Metric | None:
    """(mean(top_a) - mean(top_b)) / (mean(bottom_a) - mean(bottom_b)), bootstrapped over prompts
    where all four exist. None when the denominator is zero (nothing to emulate or recover)."""
    rows = [r for r in zip(top_a, top_b, bottom_a, bottom_b, strict=True)
            if all(x is not None and not np.isnan(x) for x in r)]
    if len(rows) < 2:
        return None
    a, b, c, d = (np.array(col, dtype=float) for col in zip(*rows, strict=True))
    if abs(c.mean() - d.mean()) < 1e-9:
        return None

    def stat(a, b, c, d, axis):
        den = c.mean(axis) - d.mean(axis)
        with np.errstate(divide="ignore", invalid="ignore"):  # a resample may have no gap: nan
            return (a.mean(axis) - b.mean(axis)) / np.where(np.abs(den) > 1e-12, den, np.nan)

    m = metric(a, b, c, d, statistic=stat, seed=seed)
    return Metric(m.value, m.ci_low, m.ci_high, m.n, len(top_a) - len(rows))


def residual_scale(model: LoadedModel, prompts: list[str], n: int = 64) -> float:
    """Mean norm of the residual stream entering the final norm, over the prompts' tokens:
    the unit α is measured in, so that one α list suits models of any width."""
    import torch

    from harness.mech.neurons import neuron_adapter

    norm_module = neuron_adapter(model.model).final_norm()
    norms: list[torch.Tensor] = []
    handle = norm_module.register_forward_pre_hook(lambda _m, args: norms.append(args[0].detach().norm(dim=-1).flatten()))
    try:
        device = next(model.model.parameters()).device
        for text in prompts[:n]:
            ids = model.tokenizer(text, return_tensors="pt", add_special_tokens=False).input_ids.to(device)
            with torch.inference_mode():
                model.model(ids)
    finally:
        handle.remove()
    return float(torch.cat(norms).float().mean())


def variant_row(name: str, evaluated: Evaluated, **fields: Any) -> dict[str, Any]:
    m = evaluated.metrics
    return {"name": name, "toxicity": m["toxicity"], "perplexity": m["perplexity"], "f1": m["f1"], **fields}


def fmt(m: Metric | None, digits: int = 3) -> str:
    if m is None:
        return "n/a"
    ci = f" [{m.ci_low:.{digits}f}, {m.ci_high:.{digits}f}]" if m.ci_low is not None else ""
    return f"{m.value:.{digits}f}{ci}"


def array_hash(a: np.ndarray) -> str:
    """Identity of an array (a direction, a mask) for a derived model's fingerprint."""
    import hashlib

    return hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest()[:16]


def scaled_count(paper_k: int, n_neurons: int, paper_total: int = 98_304) -> int:
    """A neuron count of GPT2-medium's (98,304 neurons) scaled to this model's size."""
    return max(1, round(paper_k * n_neurons / paper_total))
