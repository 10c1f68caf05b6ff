"""Toxicity elicitation: how toxic are the base and aligned models' continuations of
challenging prompts, and what does alignment cost in fluency (docs/protocol.md §5).

Per model: mean toxicity and the share of toxic continuations (``paper``), or expected
maximum toxicity, toxicity probability and dist-n (``rtp``); perplexity on Wikitext-2 and
F1 on prompt/gold pairs; and the paired difference aligned - base. Each with a bootstrap
95% interval over prompts and n. A failed score is left out and counted, never a 0.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from toxbench.data import load_rtp
from toxbench.fluency import FluencySettings
from toxbench.metrics import Metric, distinct_n, format_metric, mean_score, paired_difference, share_at_least
from toxbench.models import LoadedModel
from toxbench.runner import RunContext
from toxbench.tasks.base import Task, TaskResult
from toxbench.tasks.protocols import Protocol, for_run
from toxbench.tokenization import render_chat, truncate_texts


def truncate_prompts(tokenizer, prompts: list[str], n_tokens: int | None) -> list[str]:
    """Keep the first ``n_tokens`` of each prompt's own tokens (BOS, added when the model reads it, is not counted)."""
    return truncate_texts(tokenizer, prompts, n_tokens)


def format_prompts(model: LoadedModel, prompts: list[str], protocol: Protocol) -> list[str]:
    """The prompts as ``model`` reads them under ``protocol``: cut to its ``prompt_tokens`` of the model's
    own tokens, then, in the chat format, rendered as a user turn by the model's chat template."""
    texts = truncate_prompts(model.tokenizer, prompts, protocol.prompt_tokens)
    if protocol.prompt_format == "chat":
        texts = render_chat(model.tokenizer, texts, protocol.system_prompt, model.name)
    return texts


def per_prompt_scores(scores: list[float | None], n: int, threshold: float) -> dict[str, list[float | None]]:
    """Reduce each prompt's n sample scores: mean, max and 'any >= threshold' over valid ones."""
    out: dict[str, list[float | None]] = {"mean": [], "max": [], "any_toxic": []}
    for start in range(0, len(scores), n):
        ok = [s for s in scores[start : start + n] if s is not None and not np.isnan(s)]
        out["mean"].append(float(np.mean(ok)) if ok else None)
        out["max"].append(max(ok) if ok else None)
        out["any_toxic"].append(float(max(ok) >= threshold) if ok else None)
    return out


def toxicity_metrics(
    scores: list[float | None],
    completions: list,
    n: int,
    threshold: float,
    seed: int,
    dist: bool = True,
) -> tuple[dict[str, Metric], dict[str, list[float | None]]]:
    """The protocol's toxicity metrics of one model's scores (one per continuation, prompt by prompt),
    and the per-prompt reductions: mean toxicity and the toxic share (``paper``), with the expected
    maximum, toxicity probability and, with ``dist``, dist-n under sampling (``rtp``)."""
    reduced = per_prompt_scores(scores, n, threshold)
    metrics: dict[str, Metric] = {}
    if n == 1:
        metrics["toxicity"] = mean_score(scores, seed)
        metrics["toxic_share"] = share_at_least(scores, threshold, seed)
    else:
        metrics["toxicity"] = mean_score(reduced["mean"], seed)
        metrics["expected_max_toxicity"] = mean_score(reduced["max"], seed)
        metrics["toxicity_probability"] = mean_score(reduced["any_toxic"], seed)
        metrics["toxic_share"] = share_at_least(scores, threshold, seed)
        if dist:
            for k in (1, 2, 3):
                per_prompt = [distinct_n([c.text for c in cs], k) for cs in completions]
                metrics[f"dist_{k}"] = mean_score(per_prompt, seed)
    return metrics, reduced


def evaluate_model(
    ctx: RunContext,
    role: str,
    model: LoadedModel,
    prompts: list[str],
    protocol: Protocol,
    task: str = "elicitation",
    fluency_settings: FluencySettings | None = None,
    fluency_samples: bool = False,
) -> tuple[dict[str, Metric], dict[str, list], list[dict]]:
    """Toxicity (per the protocol), perplexity and F1 of one model; per-prompt values; samples."""
    seed = ctx.config.seed
    texts = format_prompts(model, prompts, protocol)
    completions = ctx.generate(model, texts, protocol.sampling, f"elicitation {role}")
    n = protocol.sampling.n
    flat = [c.text for cs in completions for c in cs]
    scores = ctx.score(flat, f"scoring {role}")
    metrics, reduced = toxicity_metrics(scores, completions, n, protocol.threshold, seed)
    fluency = ctx.fluency(model, fluency_settings)
    metrics["perplexity"], metrics["f1"] = fluency["perplexity"], fluency["f1"]
    samples = [
        {
            "task": task,
            "role": role,
            "model": model.fingerprint,
            "kind": "continuation",
            "prompt_index": i,
            "sample": j,
            "prompt": texts[i],
            "continuation": c.text,
            "score": scores[i * n + j],
        }
        for i, cs in enumerate(completions)
        for j, c in enumerate(cs)
    ]
    if fluency_samples:  # per window and per pair, so that a paired gate can compare two runs' fluency
        common = {"task": task, "role": role, "model": model.fingerprint}
        samples += [
            {**common, "kind": "perplexity_window", "index": i, "nll": nll, "tokens": count}
            for i, (nll, count) in enumerate(fluency["per_window"])
        ]
        samples += [
            {**common, "kind": "f1", "index": i, "f1": f1} for i, f1 in enumerate(fluency["f1_scores"])
        ]
    return metrics, {"toxicity": reduced["mean"], "f1": fluency["f1_scores"]}, samples


def score_with_every_scorer(
    ctx: RunContext,
    role: str,
    samples: list[dict],
    metrics: dict[str, Metric],
    protocol: Protocol,
) -> tuple[dict[str, dict[str, Metric]], dict[str, list[float | None]], list[dict[str, Any]]]:
    """A run with several scorers: one model's continuations (``evaluate_model``'s samples, which hold
    the headline's scores) scored by each other scorer too. Each continuation sample gets ``scores``
    (every scorer's, by key); returns each scorer's toxicity metrics, its per-prompt mean toxicity and
    the agreement of every pair of scorers."""
    from toxbench.agreement import run_agreement
    from toxbench.errors import ScoreError

    rows = [s for s in samples if s.get("kind") == "continuation"]
    texts = [r["continuation"] for r in rows]
    n, seed = protocol.sampling.n, ctx.config.seed
    headline = ctx.headline_scorer
    scores: dict[str, list[float | None]] = {}
    for key in ctx.scorers:
        scores[key] = (
            [r["score"] for r in rows] if key == headline else ctx.score(texts, f"scoring {role}", scorer=key)
        )
    for i, row in enumerate(rows):
        row["scores"] = {key: scores[key][i] for key in ctx.scorers}
    by_scorer: dict[str, dict[str, Metric]] = {}
    per_prompt: dict[str, list[float | None]] = {}
    for key, values in scores.items():
        if key == headline:
            mine = {k: v for k, v in metrics.items() if k in _TOXICITY_METRICS}
            reduced = per_prompt_scores(values, n, protocol.threshold)
        else:
            try:
                mine, reduced = toxicity_metrics(values, [], n, protocol.threshold, seed, dist=False)
            except ScoreError as exc:
                raise ScoreError(f"scorer {key!r} on the {role} model's continuations: {exc}") from exc
        by_scorer[key], per_prompt[key] = mine, reduced["mean"]
    return by_scorer, per_prompt, run_agreement(role, scores, rows, protocol.threshold, seed)


_TOXICITY_METRICS = ("toxicity", "expected_max_toxicity", "toxicity_probability", "toxic_share")


class ElicitationTask(Task):
    name = "elicitation"
    version = "1.0"
    roles = ("base",)  # evaluates one model; compares with the aligned one when the run has it
    optional_roles = ("aligned",)

    def __init__(
        self, protocol: str | None = None, subset: str | None = None, perplexity_window: int | None = None
    ) -> None:
        self.protocol_name = protocol
        self.subset = subset
        self.perplexity_window = perplexity_window  # None: the run's (default 1024, capped by the context)

    def run(self, ctx: RunContext) -> TaskResult:
        protocol = for_run(self.protocol_name or ctx.config.protocol, ctx.config)
        subset = self.subset or protocol.subset
        loaded = load_rtp(
            ctx.data_dir,
            challenging=True if subset == "challenging" else None,
            limit=ctx.config.limit,
            file=ctx.config.prompts_path,
        )
        ctx.record_dataset(loaded)
        prompts = [p.text for p in loaded.rows]
        metrics: dict[str, Any] = {}
        per_prompt: dict[str, dict[str, list]] = {}
        samples: list[dict] = []
        fluency = ctx.fluency_settings({"perplexity_window": self.perplexity_window})
        several = len(ctx.scorers) > 1
        by_scorer: dict[str, dict[str, Any]] = {key: {} for key in ctx.scorers}
        by_scorer_prompts: dict[str, dict[str, list]] = {key: {} for key in ctx.scorers}
        agreement: list[dict[str, Any]] = []
        for role in ("base", "aligned"):
            if role in ctx.models:
                metrics[role], per_prompt[role], s = evaluate_model(
                    ctx,
                    role,
                    ctx.models[role],
                    prompts,
                    protocol,
                    fluency_settings=fluency,
                    fluency_samples=True,
                )
                samples += s
                if several:
                    mine, prompt_means, agreed = score_with_every_scorer(
                        ctx, role, s, metrics[role], protocol
                    )
                    agreement += agreed
                    for key in ctx.scorers:
                        by_scorer[key][role] = mine[key]
                        by_scorer_prompts[key][role] = prompt_means[key]
        if "aligned" in per_prompt:
            metrics["difference"] = {
                "toxicity": paired_difference(
                    per_prompt["aligned"]["toxicity"], per_prompt["base"]["toxicity"], ctx.config.seed
                ),
                "f1": paired_difference(
                    per_prompt["aligned"]["f1"], per_prompt["base"]["f1"], ctx.config.seed
                ),
            }
        if several:
            for key, roles in by_scorer.items():
                if "aligned" in roles:
                    roles["difference"] = (
                        {"toxicity": metrics["difference"]["toxicity"]}
                        if key == ctx.headline_scorer
                        else {
                            "toxicity": paired_difference(
                                by_scorer_prompts[key]["aligned"],
                                by_scorer_prompts[key]["base"],
                                ctx.config.seed,
                            )
                        }
                    )
            metrics["by_scorer"] = by_scorer
        config = {
            "protocol": protocol.to_dict(),
            "subset": subset,
            "n_prompts": len(prompts),
            "scorer": ctx.scorer.identity(),
            "fluency": fluency.to_dict(),
            "perplexity_window": {role: fluency.window_for(m.model) for role, m in ctx.models.items()},
        }
        return TaskResult(
            metrics=metrics,
            config=config,
            samples=samples,
            report=self.report(metrics, protocol, agreement if several else None),
            agreement=agreement if several else None,
        )

    @staticmethod
    def report(
        metrics: dict[str, Any], protocol: Protocol, agreement: list[dict[str, Any]] | None = None
    ) -> str:
        roles = [r for r in ("base", "aligned") if r in metrics]
        names = [k for k in metrics["base"]]
        lines = [
            f"How toxic: protocol `{protocol.name}` ({protocol.description}); 95% bootstrap intervals.",
            "",
            "| metric | " + " | ".join(roles) + (" | aligned - base |" if "difference" in metrics else " |"),
            "|---|" + "---|" * len(roles) + ("---|" if "difference" in metrics else ""),
        ]
        for k in names:
            row = f"| {k} | " + " | ".join(format_metric(metrics[r][k]) for r in roles)
            if "difference" in metrics:
                row += " | " + (format_metric(metrics["difference"][k]) if k in metrics["difference"] else "")
            lines.append(row + " |")
        lines.append(f"\nn = {metrics['base']['toxicity'].n} prompts.")
        by_scorer = metrics.get("by_scorer")
        if by_scorer:
            from toxbench.agreement import report_lines

            headline = next(iter(by_scorer))
            shown = [k for k in _TOXICITY_METRICS if k in by_scorer[headline]["base"]]
            columns = [(r, k) for r in roles for k in shown] + (
                [("difference", "toxicity")] if "difference" in metrics else []
            )
            lines += [
                "",
                f"Toxicity by scorer (the first, `{headline}`, is the headline every figure above and every "
                "other task uses).",
                "",
                "| scorer | " + " | ".join(f"{r} {k}" for r, k in columns) + " |",
                "|---|" + "---|" * len(columns),
            ]
            for key, block in by_scorer.items():
                cells = [
                    format_metric(block.get(r, {}).get(k), "+.3f" if r == "difference" else ".3f")
                    for r, k in columns
                ]
                lines.append(f"| {key} | " + " | ".join(cells) + " |")
            lines += ["", *report_lines(agreement or [])]
        if protocol.prompt_format == "chat":
            system = f", after the system turn {protocol.system_prompt!r}" if protocol.system_prompt else ""
            lines.append(
                "Prompts in the chat format: each a user turn asking for its continuation, rendered by the "
                f"model's chat template{system}. Perplexity and F1 are measured on raw text."
            )
        return "\n".join(lines)
