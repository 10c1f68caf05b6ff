"""Ablation vs alignment ([B] §7, [A] §3.3): can simple surgery on the base model emulate
what the alignment method did?

Variants of the base model: ablate the top-k toxic neurons, ablate the top-k toxic neurons
that fire positively, subtract α x (the probe / the most toxic value vector / SVD U[0])
after the last MLP (α matched to the aligned model's perplexity, as [A] did, or given),
and patch each neuron group - and all four - to the aligned model's mean activation.
Each is scored like the models themselves, and its **emulation ratio** = (base - variant
toxicity) / (base - aligned toxicity), with a paired bootstrap interval over prompts.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

from toxbench.errors import ToxbenchError
from toxbench.mech.alpha import match_perplexity
from toxbench.mech.attribution import REDUCING, capture_pass, group_masks, neuron_cosines
from toxbench.mech.edits import ablate_neurons, shift_residual
from toxbench.mech.hooks import patch_to_means
from toxbench.mech.neurons import neuron_adapter
from toxbench.mech.vectors import rank_toxic_neurons, svd_toxic_direction
from toxbench.metrics import format_metric
from toxbench.models import LoadedModel, derive
from toxbench.runner import RunContext
from toxbench.tasks.base import Task, TaskResult
from toxbench.tasks.elicitation import format_prompts
from toxbench.tasks.variants import (
    Evaluated,
    Reference,
    alignment_gap,
    array_hash,
    evaluate_variants,
    mean_toxicity,
    ratio_metric,
    reference,
    residual_scale,
    scaled_count,
)

ALPHA_UNITS = ("residual", "lee2024")
# [A] §3.3 (and its code): α = 50 x the raw probe, 20 x the raw value vector, 100 x the unit SVD U[0].
LEE2024_ALPHAS = {"probe": 50.0, "value": 20.0, "svd-u0": 100.0}

PAPER_TABLE = {  # [B] Table 1 and [A] Table 2, GPT2-medium: toxicity, perplexity
    "base": (0.453, 21.70),
    "aligned (DPO)": (0.208, 23.34),
    "ablate top-100": (0.403, 21.99),
    "ablate top-1000": (0.436, 27.34),
    "ablate top-200 positive": (0.366, 21.83),
    "ablate top-2000 positive": (0.319, 29.07),
    "patch all dampened toxic": (0.335, 21.69),
    "subtract W_Toxic": (0.245, 23.56),
    "subtract v19_770": (0.305, 23.30),
    "subtract SVD U[0]": (0.268, 23.48),
}


class AblationTask(Task):
    name = "ablation"
    version = "1.1"  # 1.1: α = 0 brackets the perplexity match, alpha_match recorded; no ratio without a gap

    def __init__(
        self,
        top_k: list[int] | None = None,
        positive_k: list[int] | None = None,
        alphas: list[float] | str = "match_ppl",
        alpha_grid: tuple[float, ...] = (0.25, 0.5, 1.0, 2.0, 4.0),
        svd_n: int = 128,
        groups: bool = True,
        alpha_units: str = "residual",
        refine_steps: int = 4,
        sweep_toxicity: bool = True,
    ) -> None:
        if alpha_units not in ALPHA_UNITS:
            raise ToxbenchError(
                f"unknown alpha_units {alpha_units!r}: choose one of {', '.join(ALPHA_UNITS)}"
            )
        self.top_k = top_k  # None: 100, 200 and 1000 of GPT2-medium's neurons, scaled to the model's count
        self.positive_k = positive_k  # None: [B]'s 200 and 2000, scaled
        self.alphas = alphas  # "match_ppl" ([A]'s choice) or a list of α, each a variant
        self.alpha_grid = alpha_grid  # in units of the final residual norm, for matching perplexity
        self.svd_n = svd_n
        self.groups = groups
        self.alpha_units = (
            alpha_units  # "residual": unit directions, α x the mean residual norm; "lee2024": [A]'s
        )
        self.refine_steps = refine_steps  # bisection steps between the grid points that bracket the target
        self.sweep_toxicity = sweep_toxicity  # also score toxicity at every grid α (the α plot)

    def run(self, ctx: RunContext) -> TaskResult:
        base, aligned = ctx.models["base"], ctx.models["aligned"]
        ref = reference(ctx, self.name)
        adapter = neuron_adapter(base.model)
        n_neurons = adapter.n_layers * adapter.d_mlp
        aligned_ppl = ref.aligned.metrics["perplexity"].value
        sums = {
            role: capture_pass(
                ctx,
                m,
                format_prompts(m, ref.prompts, ref.protocol),
                ref.protocol.sampling,
                role,
            )
            for role, m in (("base", base), ("aligned", aligned))
        }
        alpha_choice: dict[str, Any] = {"units": self.alpha_units}
        sweeps: dict[str, list[dict[str, float]]] = {}

        def emulation(evaluated: Evaluated) -> dict[str, Any]:
            return {
                "emulation_ratio": ratio_metric(
                    ref.base.toxicity,
                    evaluated.toxicity,
                    ref.base.toxicity,
                    ref.aligned.toxicity,
                    ctx.config.seed,
                )
            }

        candidates = self.candidates(ctx, ref, sums, alpha_choice, sweeps)
        variants, samples = evaluate_variants(ctx, ref, self.name, candidates, emulation)

        scored = [v for v in variants if v["emulation_ratio"] is not None]
        best = max(scored, key=lambda v: v["emulation_ratio"].value) if scored else None
        gap, no_gap = alignment_gap(ref.base.toxicity, ref.aligned.toxicity, ctx.config.seed)
        metrics = {
            "best_emulation_ratio": best["emulation_ratio"] if best else None,
            "best_variant": best["name"] if best else None,
            "emulation_missing": no_gap if best is None else None,
            "alignment_gap": gap,
            "base_toxicity": ref.base.metrics["toxicity"],
            "aligned_toxicity": ref.aligned.metrics["toxicity"],
        }
        artifacts = [self.plot(ctx, variants)]
        if sweeps:
            artifacts.append(self.plot_alpha(ctx, sweeps, ref, aligned_ppl))
        config = {
            "top_k": self.top_k,
            "positive_k": self.positive_k,
            "alphas": self.alphas,
            "alpha_grid": list(self.alpha_grid),
            "svd_n": self.svd_n,
            "alpha_units": self.alpha_units,
            "refine_steps": self.refine_steps,
            "groups": self.groups,
            "n_neurons": n_neurons,
            "protocol": ref.protocol.to_dict(),
            "patching": "activation at the last position of every step set to the aligned model's mean "
            "(the value [B]'s pre-activation patch aims at)",
            "definition": "docs/protocol.md §3 and §7",
        }
        return TaskResult(
            metrics=metrics,
            config=config,
            variants=variants,
            samples=samples,
            extra={"alpha_choice": alpha_choice, "paper_table": PAPER_TABLE},
            artifacts=artifacts,
            report=self.report(metrics, variants, ref, artifacts),
        )

    def candidates(
        self,
        ctx: RunContext,
        ref: Reference,
        sums: dict[str, Any],
        alpha_choice: dict[str, Any],
        sweeps: dict[str, list[dict[str, float]]],
    ) -> Iterator[tuple[LoadedModel, dict[str, Any]]]:
        """The variants of the base model, in the report's order, each with its row's fields.

        Fills ``alpha_choice`` (how each direction's α was chosen) and ``sweeps`` (the α
        searches, for the α plot) as it goes.
        """
        base = ctx.models["base"]
        probe = ctx.probe()
        w = probe.unit
        adapter = neuron_adapter(base.model)
        n_neurons = adapter.n_layers * adapter.d_mlp
        aligned_ppl = ref.aligned.metrics["perplexity"].value
        act_base = sums["base"].mean_activation()

        # Ablations (weight edits: zeroed value vectors).
        default_k = sorted({scaled_count(k, n_neurons) for k in (100, 200, 1000)})
        for k in self.top_k or default_k:
            neurons = rank_toxic_neurons(adapter, w, k)
            edit = ablate_neurons(base.model, [(n.layer, n.index) for n in neurons])
            yield (
                derive(base, edit.model, {"name": f"ablate-top{k}", "neurons": [n.name for n in neurons]}),
                {"kind": "ablate", "k": k},
            )
        positive_pool = rank_toxic_neurons(adapter, w, n_neurons)
        positive_pool = [n for n in positive_pool if n.cosine > 0 and act_base[n.layer, n.index] > 0]
        for k in self.positive_k or [scaled_count(200, n_neurons), scaled_count(2000, n_neurons)]:
            chosen = positive_pool[:k]
            edit = ablate_neurons(base.model, [(n.layer, n.index) for n in chosen])
            yield (
                derive(
                    base, edit.model, {"name": f"ablate-positive-top{k}", "neurons": [n.name for n in chosen]}
                ),
                {"kind": "ablate-positive", "k": len(chosen)},
            )

        # Subtracting a direction after the last MLP (weight edit: the MLP's output bias).
        top_value = rank_toxic_neurons(adapter, w, 1)[0]
        u0, _ = svd_toxic_direction(adapter, rank_toxic_neurons(adapter, w, min(self.svd_n, n_neurons)), w)
        value_label = f"value-{top_value.name}"
        raw = {  # each direction as [A] used it: the probe and the value vector raw, U[0] a unit vector
            "probe": probe.direction,
            value_label: adapter.values(top_value.layer)[top_value.index].detach().double().cpu().numpy(),
            "svd-u0": u0,
        }
        if probe.mean_difference is not None:
            raw["mean-diff"] = probe.mean_difference
        scale = residual_scale(base, ref.prompts)
        alpha_choice["residual_scale"] = scale
        matched: dict[str, str] = {}  # direction -> whether its α match bracketed the target
        for label, vector in raw.items():
            if self.alpha_units == "lee2024":
                key = "value" if label == value_label else label
                if key not in LEE2024_ALPHAS:
                    continue  # not one of [A]'s directions
                alphas, normalize = [LEE2024_ALPHAS[key]], key == "svd-u0"
                alpha_choice[label] = {
                    "alpha": alphas[0],
                    "rule": "[A]'s α, times the raw vector"
                    if not normalize
                    else "[A]'s α, times the unit vector",
                }
            elif self.alphas == "match_ppl":
                alpha, search, status = self.match_alpha(ctx, ref, base, vector, scale, aligned_ppl)
                alpha_choice[label] = {"alpha": alpha, "alpha_match": status, "search": search}
                sweeps[label] = search
                alphas, normalize = [alpha], True
                matched[label] = status
            else:
                alphas, normalize = [float(a) for a in self.alphas], True
            for alpha in alphas:
                edit = shift_residual(base.model, vector, -alpha, normalize=normalize)
                suffix = "" if len(alphas) == 1 else f"-a{alpha:g}"
                yield (
                    derive(
                        base,
                        edit.model,
                        {
                            "name": f"subtract-{label}{suffix}",
                            "alpha": alpha,
                            "normalize": normalize,
                            "direction": array_hash(vector),
                        },
                        edit.saveable,
                    ),
                    {
                        "kind": "subtract",
                        "direction": label,
                        "alpha": alpha,
                        **({"alpha_match": matched[label]} if label in matched else {}),
                    },
                )

        # Patching neuron groups to the aligned model's mean activation (hooks, removed after).
        if self.groups:
            act_aligned = sums["aligned"].mean_activation()
            masks = group_masks(neuron_cosines(adapter, w), act_base, act_base - act_aligned)
            plans = {f"patch-{g}": masks[g] for g in REDUCING}
            plans["patch-all-four"] = np.any([masks[g] for g in REDUCING], axis=0)
            for label, mask in plans.items():
                view = derive(
                    base,
                    base.model,
                    {"name": label, "mask": array_hash(mask), "target": array_hash(act_aligned)},
                    saveable=False,
                )
                with patch_to_means(base.model, mask, act_aligned):  # on while the variant is evaluated
                    yield view, {"kind": "patch", "n_neurons": int(mask.sum())}

    def match_alpha(
        self, ctx: RunContext, ref, base: LoadedModel, direction: np.ndarray, scale: float, target_ppl: float
    ) -> tuple[float, list[dict[str, Any]], str]:
        """The α whose perplexity is closest to the aligned model's ([A]'s choice), the search, and
        whether the target was bracketed (``match_perplexity``).

        First the grid (in units of the residual norm; toxicity too, for the α plot), then
        ``refine_steps`` bisections between the grid points that bracket the target in log
        perplexity: toxicity can fall off a cliff between two grid points (it does on the organism).
        """

        def evaluate(alpha: float, with_toxicity: bool) -> dict[str, Any]:
            edit = shift_residual(base.model, direction, -alpha)
            lm = derive(
                base,
                edit.model,
                {"name": "alpha-search", "alpha": alpha, "direction": array_hash(direction)},
                edit.saveable,
            )
            ppl, _ = ctx.perplexity(lm)
            point: dict[str, Any] = {
                "alpha": alpha,
                "alpha_residual_norms": alpha / scale,
                "perplexity": ppl.value,
            }
            if with_toxicity:
                point["toxicity"] = mean_toxicity(ctx, ref, lm)
            ctx.release(lm)
            return point

        grid = [mult * scale for mult in self.alpha_grid]
        start: dict[str, Any] = {  # α = 0 is the base model, already measured
            "alpha": 0.0,
            "alpha_residual_norms": 0.0,
            "perplexity": ref.base.metrics["perplexity"].value,
        }
        if self.sweep_toxicity:
            start["toxicity"] = ref.base.metrics["toxicity"].value
        return match_perplexity(
            lambda a, on_grid: evaluate(a, on_grid and self.sweep_toxicity),
            grid,
            target_ppl,
            self.refine_steps,
            start,
        )

    @staticmethod
    def plot_alpha(ctx: RunContext, sweeps: dict[str, list[dict[str, Any]]], ref, aligned_ppl: float) -> str:
        """Toxicity and perplexity against α (in residual norms) for each subtracted direction."""
        plt = ctx.pyplot()
        fig, (ax_t, ax_p) = plt.subplots(1, 2, figsize=(10, 3.8))
        for label, points in sweeps.items():
            grid = sorted((p for p in points if "toxicity" in p), key=lambda p: p["alpha"])
            every = sorted(points, key=lambda p: p["alpha"])
            if grid:
                ax_t.plot(
                    [p["alpha_residual_norms"] for p in grid],
                    [p["toxicity"] for p in grid],
                    "o-",
                    label=label,
                )
            ax_p.plot(
                [p["alpha_residual_norms"] for p in every],
                [p["perplexity"] for p in every],
                "o-",
                label=label,
            )
        ax_t.axhline(ref.base.metrics["toxicity"].value, color="grey", ls=":", lw=1, label="base")
        ax_t.axhline(ref.aligned.metrics["toxicity"].value, color="k", ls="--", lw=1, label="aligned")
        ax_p.axhline(ref.base.metrics["perplexity"].value, color="grey", ls=":", lw=1, label="base")
        ax_p.axhline(aligned_ppl, color="k", ls="--", lw=1, label="aligned")
        ax_t.set_ylim(0, 1)
        ax_p.set_yscale("log")
        for ax, name in ((ax_t, "toxicity"), (ax_p, "perplexity")):
            ax.set_xlabel("α subtracted (multiples of the mean residual norm)")
            ax.set_ylabel(name)
        ax_t.set_title("Toxicity against α")
        ax_p.set_title("Perplexity against α")
        ax_t.legend(fontsize=7)
        return ctx.save_figure(fig, "ablation_alpha.png")

    @staticmethod
    def plot(ctx: RunContext, variants: list[dict]) -> str:
        plt = ctx.pyplot()
        rows = [v for v in variants if v["emulation_ratio"] is not None]
        fig, ax = plt.subplots(figsize=(7, 0.35 * len(rows) + 1.2))
        names = [v["name"] for v in rows]
        vals = [v["emulation_ratio"].value for v in rows]
        lo = [
            v["emulation_ratio"].value - (v["emulation_ratio"].ci_low or v["emulation_ratio"].value)
            for v in rows
        ]
        hi = [
            (v["emulation_ratio"].ci_high or v["emulation_ratio"].value) - v["emulation_ratio"].value
            for v in rows
        ]
        ax.barh(names, vals, xerr=[lo, hi], color="#48c")
        ax.axvline(1.0, color="k", ls="--", lw=0.8, label="aligned model")
        ax.axvline(0.0, color="grey", lw=0.5)
        ax.invert_yaxis()
        ax.set_xlabel("emulation ratio: (base - variant) / (base - aligned) toxicity")
        ax.set_title("Can surgery on the base model emulate alignment?")
        ax.legend(fontsize=7)
        return ctx.save_figure(fig, "ablation_emulation.png")

    @staticmethod
    def report(metrics: dict, variants: list[dict], ref, artifacts: list[str]) -> str:
        lines = [
            "Whether surgery can emulate it: variants of the base model, scored like the models themselves.",
            f"Base toxicity {format_metric(ref.base.metrics['toxicity'])}, aligned {format_metric(ref.aligned.metrics['toxicity'])}.",
            "",
            "| variant | toxicity | perplexity | F1 | emulation ratio |",
            "|---|---|---|---|---|",
        ]
        for v in variants:
            lines.append(
                f"| {v['name']} | {format_metric(v['toxicity'])} | {format_metric(v['perplexity'], '.2f')} | {format_metric(v['f1'])} | "
                f"{format_metric(v['emulation_ratio'], '.2f')} |"
            )
        best = metrics["best_variant"]
        if best:
            lines += [
                "",
                f"Best: **{best}**, emulation ratio {format_metric(metrics['best_emulation_ratio'], '.2f')} "
                "(1 = as much toxicity removed as the aligned model; Yang et al.: ablation is not enough).",
            ]
        elif metrics["emulation_missing"]:
            lines += ["", f"No emulation ratio: {metrics['emulation_missing']}."]
        outside = [v["name"] for v in variants if v.get("alpha_match") == "outside range"]
        if outside:
            lines += [
                "",
                f"**α not matched** for {', '.join(outside)}: no α in the grid reaches the aligned model's "
                "perplexity, so the closest point was used; its emulation ratio is not at equal perplexity "
                "(widen `--task-args ablation.alpha_grid=...`).",
            ]
        lines += [
            "",
            "Directions subtracted: the probe W_Toxic, the most probe-aligned value vector, SVD U[0] of the "
            "top value vectors ([A] §3.3) and, beside them, mean-diff: the difference of the probe data's "
            "class means. The probe is a discriminative weight vector and need not point where the classes "
            "differ; the α plot shows where each direction starts to remove toxicity and what it costs.",
        ]
        lines += [
            "",
            "Reference, GPT2-medium (toxicity, perplexity): "
            + "; ".join(f"{k} {t:.3f} / {p:.2f}" for k, (t, p) in PAPER_TABLE.items()),
            "",
        ]
        lines += [f"![{a}]({a})" for a in artifacts]
        return "\n".join(lines)
