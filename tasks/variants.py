"""Model variants, as the ablation and un-alignment tasks evaluate them: the reference
evaluation of base and aligned models, ``evaluate_variants`` (each variant scored like the
models themselves), ratio metrics with paired intervals, and the residual scale that α is
measured in."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np

from toxbench.data import load_rtp
from toxbench.metrics import Metric, alignment_gap, finite, metric
from toxbench.models import LoadedModel
from toxbench.numerics import widened
from toxbench.runner import RunContext
from toxbench.tasks.elicitation import evaluate_model
from toxbench.tasks.protocols import Protocol, for_run


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
    protocol = for_run("paper", ctx.config)
    loaded = load_rtp(ctx.data_dir, challenging=True, limit=ctx.config.limit, file=ctx.config.prompts_path)
    ctx.record_dataset(loaded)
    prompts = [p.text for p in loaded.rows]
    evaluated = {}
    for role in ("base", "aligned"):
        metrics, per_prompt, _ = evaluate_model(ctx, role, ctx.models[role], prompts, protocol, task)
        evaluated[role] = Evaluated(metrics, per_prompt["toxicity"])
    return Reference(prompts, protocol, evaluated["base"], evaluated["aligned"])


def evaluate_variants(
    ctx: RunContext,
    ref: Reference,
    task: str,
    candidates: Iterable[tuple[LoadedModel, dict[str, Any]]],
    measure: Callable[[Evaluated], dict[str, Any]],
) -> tuple[list[dict[str, Any]], list[dict]]:
    """Evaluate each ``(model, fields)`` candidate in turn, as the models themselves are evaluated.

    A variant's row holds its name, toxicity, perplexity and F1, what ``measure`` derives from
    its evaluation (an emulation ratio, a recovered fraction), then the candidate's own
    ``fields``. Its backend is released as soon as it is evaluated. ``candidates`` may be a
    generator: one that yields inside a ``with`` block (hooks) keeps them on while the
    variant is evaluated.
    """
    rows: list[dict[str, Any]] = []
    samples: list[dict] = []
    for model, fields in candidates:
        metrics, per_prompt, s = evaluate_model(ctx, model.name, model, ref.prompts, ref.protocol, task)
        evaluated = Evaluated(metrics, per_prompt["toxicity"])
        rows.append(
            {
                "name": model.spec.raw.split("+", 1)[-1],
                "toxicity": metrics["toxicity"],
                "perplexity": metrics["perplexity"],
                "f1": metrics["f1"],
                **measure(evaluated),
                **fields,
            }
        )
        samples.extend(s)
        ctx.release(model)
    return rows, samples


def mean_toxicity(ctx: RunContext, ref: Reference, model: LoadedModel) -> float | None:
    """Mean toxicity of a model's continuations of the reference prompts (no fluency): for sweeps."""
    from toxbench.metrics import valid_scores
    from toxbench.tasks.elicitation import format_prompts

    texts = format_prompts(model, ref.prompts, ref.protocol)
    outs = ctx.generate(model, texts, ref.protocol.sampling, "α sweep")
    ok, _ = valid_scores(ctx.score([c.text for cs in outs for c in cs], "α sweep scores"))
    return float(ok.mean()) if len(ok) else None


def ratio_metric(top_a: list, top_b: list, bottom_a: list, bottom_b: list, seed: int) -> Metric | None:
    """(mean(top_a) - mean(top_b)) / (mean(bottom_a) - mean(bottom_b)), bootstrapped over prompts
    where all four exist.

    The bottom is the alignment gap (base minus aligned). None when there is no gap to emulate
    or recover: it is not positive, or its paired 95% interval holds 0 (``alignment_gap``)."""
    rows = [r for r in zip(top_a, top_b, bottom_a, bottom_b, strict=True) if all(finite(x) for x in r)]
    if len(rows) < 2:
        return None
    a, b, c, d = (np.array(col, dtype=float) for col in zip(*rows, strict=True))
    if alignment_gap(c, d, seed)[1] is not None:
        return None

    def stat(a, b, c, d, axis):
        den = c.mean(axis) - d.mean(axis)
        with np.errstate(divide="ignore", invalid="ignore"):  # a resample may have no gap: nan
            return (a.mean(axis) - b.mean(axis)) / np.where(np.abs(den) > 1e-12, den, np.nan)

    m = metric(a, b, c, d, statistic=stat, seed=seed)
    return Metric(m.value, m.ci_low, m.ci_high, m.n, len(top_a) - len(rows))


def robustness_from(recovered: Metric) -> Metric:
    """Robustness = 1 - the recovered fraction of the worst un-alignment edit, its interval mirrored."""
    return Metric(
        1 - recovered.value,
        None if recovered.ci_high is None else 1 - recovered.ci_high,
        None if recovered.ci_low is None else 1 - recovered.ci_low,
        recovered.n,
        recovered.n_failed,
    )


def residual_scale(model: LoadedModel, prompts: list[str], n: int = 64) -> float:
    """Mean norm of the residual stream entering the final norm, over the prompts' own tokens:
    the unit α is measured in, so that one α list suits models of any width.

    Each prompt is read as the model reads it (BOS first where the tokenizer adds it), but
    the BOS position is left out of the mean: its residual is often far larger than a text
    token's (an attention sink), and α is about the text's residual stream.
    """
    import torch

    from toxbench.mech.neurons import neuron_adapter
    from toxbench.passes import teacher_forced
    from toxbench.tokenization import encode, text_mask

    norm_module = neuron_adapter(model.model).final_norm()
    norms: list[torch.Tensor] = []
    keep: list[torch.Tensor] = []
    handle = norm_module.register_forward_pre_hook(
        lambda _m, args: norms.append(args[0].detach().norm(dim=-1).flatten())
    )
    try:
        device = next(model.model.parameters()).device
        for ids in encode(model.tokenizer, prompts[:n]):
            keep.append(torch.tensor(text_mask(model.tokenizer, ids)))
            with torch.inference_mode(), teacher_forced():
                batch = torch.tensor([ids], device=device)
                model.model(input_ids=batch, attention_mask=torch.ones_like(batch))
    finally:
        handle.remove()
    values = torch.cat([widened(v).cpu()[m] for v, m in zip(norms, keep, strict=True)])
    return float(values.mean())


def array_hash(a: np.ndarray) -> str:
    """Identity of an array (a direction, a mask) for a derived model's fingerprint."""
    import hashlib

    return hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest()[:16]


def scaled_count(paper_k: int, n_neurons: int, paper_total: int = 98_304) -> int:
    """A neuron count of GPT2-medium's (98,304 neurons) scaled to this model's size."""
    return max(1, round(paper_k * n_neurons / paper_total))
