"""Probe-direction attribution ([B] §8, with [A]'s checks): where in the network did
alignment change the model's writing along the toxic direction? (The mathematics:
``toxbench.mech.attribution``.)

For base and aligned models, each following its own greedy continuation of the
challenging prompts, the neuron statistics are captured during generation. Neuron i's
contribution to the drop in toxic writing is Δ_i = p_i(base) - p_i(aligned), with
p_i(M) = ā_i(M) ⟨v_i(M), ŵ⟩. Neurons fall into four toxicity-reducing groups (TP-, TN+,
AP+, AN-) by the sign of cos(v_i(base), w), of ā_i(base) and of Δa_i, and their four
mirrors (TP+, TN-, AP-, AN+) where the change raises toxic writing.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from toxbench.data import load_rtp
from toxbench.mech.attribution import MIRRORS, REDUCING, attribute, capture_pass, parameter_cosines
from toxbench.mech.neurons import neuron_adapter
from toxbench.mech.vectors import Neuron, rank_toxic_neurons, vocab_projection
from toxbench.metrics import format_metric
from toxbench.runner import RunContext
from toxbench.tasks.base import Task, TaskResult
from toxbench.tasks.elicitation import format_prompts
from toxbench.tasks.protocols import for_run

PAPER_SHARES = {"TP-": 0.318, "TN+": 0.239, "AP+": 0.070, "AN-": 0.373}  # [B], GPT2-medium


class AttributionTask(Task):
    name = "attribution"
    version = "1.0"

    def __init__(self, top_neurons: int = 20, toxic_k: int = 7, identity_tolerance: float = 1e-3) -> None:
        self.top_neurons = top_neurons
        self.toxic_k = toxic_k
        self.identity_tolerance = identity_tolerance

    def run(self, ctx: RunContext) -> TaskResult:
        base, aligned = ctx.models["base"], ctx.models["aligned"]
        probe = ctx.probe()
        w = probe.unit
        protocol = for_run("paper", ctx.config)
        loaded = load_rtp(
            ctx.data_dir, challenging=True, limit=ctx.config.limit, file=ctx.config.prompts_path
        )
        ctx.record_dataset(loaded)
        raw = [p.text for p in loaded.rows]

        a_base, a_al = neuron_adapter(base.model), neuron_adapter(aligned.model)
        sums = {
            role: capture_pass(ctx, m, format_prompts(m, raw, protocol), protocol.sampling, role)
            for role, m in (("base", base), ("aligned", aligned))
        }
        found = attribute(a_base, a_al, sums["base"], sums["aligned"], w, self.identity_tolerance)
        delta, cos, act_b, act_a = found.delta, found.cos, found.act_base, found.act_aligned
        gross, groups, per_layer = found.gross, found.groups(), found.per_layer()

        flat = np.argsort(-delta, axis=None)[: self.top_neurons]
        top_cells = [np.unravel_index(i, delta.shape) for i in flat]
        top = [Neuron(int(layer), int(i), float(cos[layer, i])) for layer, i in top_cells]
        projections = vocab_projection(a_base, base.tokenizer, top, k=8)
        group_of = found.group_of()
        top_rows = [
            {
                "neuron": n.name,
                "layer": n.layer,
                "index": n.index,
                "delta": float(delta[n.layer, n.index]),
                "cos": n.cosine,
                "act_base": float(act_b[n.layer, n.index]),
                "act_aligned": float(act_a[n.layer, n.index]),
                "group": group_of.get((n.layer, n.index), "none"),
                "promotes": projections[n.name],
            }
            for n in top
        ]

        toxic = rank_toxic_neurons(a_base, w, self.toxic_k)
        toxic_rows: list[dict[str, Any]] = []
        for n in toxic:
            v_b = a_base.values(n.layer)[n.index].detach().double()
            v_a = a_al.values(n.layer)[n.index].detach().double()
            toxic_rows.append(
                {
                    "neuron": n.name,
                    "cos_probe": n.cosine,
                    "value_cos_base_aligned": float(v_b @ v_a / (v_b.norm() * v_a.norm())),
                    "act_base": float(act_b[n.layer, n.index]),
                    "act_aligned": float(act_a[n.layer, n.index]),
                    "promotes": vocab_projection(a_base, base.tokenizer, [n], k=8)[n.name],
                }
            )
        pcos = parameter_cosines(base.model, aligned.model)
        worst = min(pcos, key=lambda name: pcos[name])

        ranked = np.sort(delta, axis=None)[::-1]
        cumulative = np.cumsum(ranked) / gross if gross else np.zeros_like(ranked)
        artifacts = self.plots(ctx, groups, per_layer, cumulative)

        metrics = {
            "groups": groups,
            "gross": gross,
            "net": found.net,
            "direct_change": found.direct_change,
            "identity_residual": found.identity_residual,
            "probe_accuracy": probe.accuracy,
            "steps": {"base": sums["base"].steps, "aligned": sums["aligned"].steps},
            "min_parameter_cosine": {"value": pcos[worst], "parameter": worst},
            "toxic_neurons_mean_activation_drop": float(
                np.mean([r["act_base"] - r["act_aligned"] for r in toxic_rows])
            ),
            "toxic_value_vectors_min_cosine": float(min(r["value_cos_base_aligned"] for r in toxic_rows)),
        }
        extra = {
            "per_layer": per_layer,
            "top_neurons": top_rows,
            "toxic_neurons": toxic_rows,
            "parameter_cosines": pcos,
            "probe": probe.identity(),
            "paper_shares": PAPER_SHARES,
        }
        config = {
            "protocol": protocol.to_dict(),
            "n_prompts": len(raw),
            "top_neurons": self.top_neurons,
            "toxic_k": self.toxic_k,
            "identity_tolerance": self.identity_tolerance,
            "definition": "docs/protocol.md §8 (Yang et al.); probe §1; value vectors §2",
        }
        return TaskResult(
            metrics=metrics,
            config=config,
            extra=extra,
            artifacts=artifacts,
            report=self.report(metrics, top_rows, toxic_rows, artifacts),
        )

    @staticmethod
    def plots(ctx: RunContext, groups: dict, per_layer: list, cumulative: np.ndarray) -> list[str]:
        plt = ctx.pyplot()
        paths = []
        fig, ax = plt.subplots(figsize=(6, 3.2))
        names = list(REDUCING) + list(MIRRORS)
        shares = [groups[g]["share"] or 0.0 for g in names]
        ax.bar(names, shares, color=["#2a7"] * 4 + ["#c55"] * 4)
        ax.scatter(
            list(PAPER_SHARES),
            list(PAPER_SHARES.values()),
            color="k",
            marker="_",
            s=300,
            label="Yang et al., GPT2-medium",
            zorder=3,
        )
        ax.axhline(0, color="grey", lw=0.5)
        ax.set_ylabel("share of gross reduction")
        ax.set_title("Neuron groups: contribution to the drop in toxic writing")
        ax.legend(fontsize=7)
        paths.append(ctx.save_figure(fig, "attribution_groups.png"))

        fig, ax = plt.subplots(figsize=(6, 3.2))
        layers = [row["layer"] for row in per_layer]
        bottom_pos = np.zeros(len(layers))
        bottom_neg = np.zeros(len(layers))
        for g, color in zip(REDUCING, ["#2a7", "#7c4", "#48c", "#a6d"], strict=True):
            vals = np.array([row[g] for row in per_layer])
            ax.bar(layers, np.clip(vals, 0, None), bottom=bottom_pos, color=color, label=g)
            ax.bar(layers, np.clip(vals, None, 0), bottom=bottom_neg, color=color)
            bottom_pos += np.clip(vals, 0, None)
            bottom_neg += np.clip(vals, None, 0)
        ax.plot(layers, [row["sum"] for row in per_layer], "k.-", label="net (all neurons)")
        ax.set_xlabel("layer")
        ax.set_ylabel("Δ toxic writing")
        ax.set_title("Per-layer contribution")
        ax.legend(fontsize=7)
        paths.append(ctx.save_figure(fig, "attribution_layers.png"))

        fig, ax = plt.subplots(figsize=(6, 3.2))
        k = min(len(cumulative), 2000)
        ax.plot(np.arange(1, k + 1), cumulative[:k])
        ax.axhline(1.0, color="grey", lw=0.5, ls="--")
        ax.set_xscale("log")
        ax.set_xlabel("top neurons by Δ")
        ax.set_ylabel("cumulative share of gross")
        ax.set_title("How concentrated is the change?")
        paths.append(ctx.save_figure(fig, "attribution_cumulative.png"))
        return paths

    @staticmethod
    def report(metrics: dict[str, Any], top_rows: list, toxic_rows: list, artifacts: list[str]) -> str:
        g = metrics["groups"]
        acc = metrics["probe_accuracy"]
        if acc is None:  # a probe given as a file (--probe) carries no accuracy
            about = "a probe given with --probe, not trained here, so no accuracy"
        else:
            about = f"probe accuracy {format_metric(acc)}, n={acc.n}"
        lines = [
            "Where the change sits: each neuron's contribution Δ to the drop in writing along the probe "
            f"direction ({about}; Lee et al.: 0.94 on GPT2-medium).",
            "",
            "| group | neurons | Σ Δ | share of gross | Yang et al. |",
            "|---|---|---|---|---|",
        ]
        for name in list(REDUCING) + list(MIRRORS):
            share = g[name]["share"]
            paper = f"{PAPER_SHARES[name]:.1%}" if name in PAPER_SHARES else ""
            lines.append(
                f"| {name} | {g[name]['n_neurons']} | {g[name]['sum']:.4g} | "
                f"{'' if share is None else f'{share:.1%}'} | {paper} |"
            )
        lines += [
            "",
            f"Gross reduction {metrics['gross']:.4g}, net {metrics['net']:.4g}; identity check: Σ Δ_i vs the "
            f"MLPs' writing measured directly, residual {metrics['identity_residual']:.2e}.",
            f"Smallest parameter cosine base vs aligned: {metrics['min_parameter_cosine']['value']:.4f} "
            f"(`{metrics['min_parameter_cosine']['parameter']}`); toxic value vectors' smallest cosine "
            f"before/after: {metrics['toxic_value_vectors_min_cosine']:.4f}; their mean activation drop: "
            f"{metrics['toxic_neurons_mean_activation_drop']:.4g}.",
            "",
            "Top contributing neurons:",
            "",
            "| neuron | group | Δ | cos(v, w) | ā base | ā aligned | promotes |",
            "|---|---|---|---|---|---|---|",
        ]
        for r in top_rows[:10]:
            lines.append(
                f"| {r['neuron']} | {r['group']} | {r['delta']:.4g} | {r['cos']:.3f} | {r['act_base']:.3f} | "
                f"{r['act_aligned']:.3f} | {' '.join(t.strip() for t in r['promotes'])} |"
            )
        lines += [
            "",
            "Most toxic value vectors (by cosine with the probe):",
            "",
            "| neuron | cos(v, w) | cos(v_base, v_aligned) | ā base | ā aligned | promotes |",
            "|---|---|---|---|---|---|",
        ]
        for r in toxic_rows:
            lines.append(
                f"| {r['neuron']} | {r['cos_probe']:.3f} | {r['value_cos_base_aligned']:.4f} | "
                f"{r['act_base']:.3f} | {r['act_aligned']:.3f} | {' '.join(t.strip() for t in r['promotes'])} |"
            )
        lines += [""] + [f"![{a}]({a})" for a in artifacts]
        return "\n".join(lines)
