"""Probe-direction attribution ([B] §8, with [A]'s checks): where in the network did
alignment change the model's writing along the toxic direction?

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

from harness.backends.base import SamplingConfig
from harness.cache import cache_key
from harness.data import load_rtp
from harness.errors import ToxbenchError
from harness.mech.capture import NeuronSums, capture_neuron_sums
from harness.mech.neurons import neuron_adapter
from harness.mech.vectors import Neuron, rank_toxic_neurons, value_cosines, vocab_projection
from harness.models import LoadedModel
from harness.progress import progress_bar
from harness.runner import RunContext
from tasks.base import Task, TaskResult
from tasks.elicitation import truncate_prompts
from tasks.protocols import get_protocol

# group: (sign of cos(v_i(base), w), base activation >= 0, sign of Δa_i)
REDUCING = {"TP-": (1, True, 1), "TN+": (1, False, 1), "AP+": (-1, True, -1), "AN-": (-1, False, -1)}
MIRRORS = {"TP+": (1, True, -1), "TN-": (1, False, -1), "AP-": (-1, True, 1), "AN+": (-1, False, 1)}
PAPER_SHARES = {"TP-": 0.318, "TN+": 0.239, "AP+": 0.070, "AN-": 0.373}  # [B], GPT2-medium


def capture_pass(ctx: RunContext, model: LoadedModel, prompts: list[str], sampling: SamplingConfig,
                 role: str) -> NeuronSums:
    """Generate greedily with capture hooks; cached per chunk of prompts, so a killed run resumes."""
    backend = ctx.hook_backend(model)  # capture needs hooks on the loaded model
    order = sorted(range(len(prompts)), key=lambda i: -len(prompts[i]))
    chunks = [order[s : s + backend.batch_size] for s in range(0, len(order), backend.batch_size)]
    keys = [cache_key("capture", model=model.fingerprint, sampling=sampling.key(),
                      prompts=[prompts[i] for i in chunk]) for chunk in chunks]
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


def _group_masks(cos: np.ndarray, act_base: np.ndarray, d_act: np.ndarray) -> dict[str, np.ndarray]:
    masks = {}
    for name, (c_sign, positive, d_sign) in {**REDUCING, **MIRRORS}.items():
        masks[name] = (np.sign(cos) == c_sign) & ((act_base >= 0) == positive) & (np.sign(d_act) == d_sign)
    return masks


def parameter_cosines(base, aligned) -> dict[str, float]:
    """cos(base, aligned) of every parameter tensor, flattened ([A]: all stay above 0.99)."""
    import torch

    out = {}
    aligned_params = dict(aligned.named_parameters())
    for name, p in base.named_parameters():
        q = aligned_params[name]
        a, b = p.detach().float().flatten(), q.detach().float().flatten()
        out[name] = float(torch.nn.functional.cosine_similarity(a, b, dim=0))
    return out


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
        protocol = get_protocol("paper")
        loaded = load_rtp(ctx.data_dir, challenging=True, limit=ctx.config.limit)
        ctx.record_dataset(loaded)
        raw = [p.text for p in loaded.rows]

        a_base, a_al = neuron_adapter(base.model), neuron_adapter(aligned.model)
        if (a_base.n_layers, a_base.d_mlp) != (a_al.n_layers, a_al.d_mlp):
            raise ToxbenchError("base and aligned models have different MLP shapes: attribution needs the same "
                                "architecture")
        sums = {role: capture_pass(ctx, m, truncate_prompts(m.tokenizer, raw, protocol.prompt_tokens),
                                   protocol.sampling, role)
                for role, m in (("base", base), ("aligned", aligned))}

        def writing(adapter) -> np.ndarray:  # ⟨v_i(M), ŵ⟩, [n_layers, d_mlp]
            return np.stack([adapter.values(layer).detach().double().cpu().numpy() @ w
                             for layer in range(adapter.n_layers)])

        def out_bias_proj(adapter) -> np.ndarray:
            return np.array([0.0 if adapter.out_bias(layer) is None else
                             float(adapter.out_bias(layer).detach().double().cpu().numpy() @ w)
                             for layer in range(adapter.n_layers)])

        act_b, act_a = sums["base"].mean_activation(), sums["aligned"].mean_activation()
        p_b, p_a = act_b * writing(a_base), act_a * writing(a_al)
        delta = p_b - p_a
        d_act = act_b - act_a
        cos = value_cosines(a_base, w).double().numpy()

        # Self-check: the neurons' Δ add up to the change of the MLPs' writing measured directly.
        direct = {role: (s.mean_mlp_out() @ w) - out_bias_proj(ad)
                  for (role, s), ad in zip(sums.items(), (a_base, a_al), strict=True)}
        direct_change = float(direct["base"].sum() - direct["aligned"].sum())
        net = float(delta.sum())
        residual = abs(net - direct_change)
        scale = max(abs(direct_change), float(np.abs(delta).sum()), 1e-12)
        if residual > self.identity_tolerance * scale:
            raise ToxbenchError(
                f"attribution identity failed: Σ Δ_i = {net:.6g} but the MLPs' writing changed by "
                f"{direct_change:.6g} (residual {residual:.3g}); the capture hooks do not see what the MLPs write")

        masks = _group_masks(cos, act_b, d_act)
        gross = float(sum(delta[masks[g]].sum() for g in REDUCING))
        groups = {g: {"sum": float(delta[m].sum()), "n_neurons": int(m.sum()),
                      "share": float(delta[m].sum() / gross) if gross else None}
                  for g, m in masks.items()}
        per_layer = [{"layer": layer, "sum": float(delta[layer].sum()),
                      **{g: float(delta[layer][masks[g][layer]].sum()) for g in REDUCING}}
                     for layer in range(a_base.n_layers)]

        flat = np.argsort(-delta, axis=None)[: self.top_neurons]
        top_cells = [np.unravel_index(i, delta.shape) for i in flat]
        top = [Neuron(int(layer), int(i), float(cos[layer, i])) for layer, i in top_cells]
        projections = vocab_projection(a_base, base.tokenizer, top, k=8)
        group_of = {(layer, i): g for g, m in masks.items() for layer, i in zip(*np.nonzero(m), strict=True)}
        top_rows = [{"neuron": n.name, "layer": n.layer, "index": n.index, "delta": float(delta[n.layer, n.index]),
                     "cos": n.cosine, "act_base": float(act_b[n.layer, n.index]),
                     "act_aligned": float(act_a[n.layer, n.index]),
                     "group": group_of.get((n.layer, n.index), "none"), "promotes": projections[n.name]}
                    for n in top]

        toxic = rank_toxic_neurons(a_base, w, self.toxic_k)
        toxic_rows = []
        for n in toxic:
            v_b = a_base.values(n.layer)[n.index].detach().double()
            v_a = a_al.values(n.layer)[n.index].detach().double()
            toxic_rows.append({
                "neuron": n.name, "cos_probe": n.cosine,
                "value_cos_base_aligned": float(v_b @ v_a / (v_b.norm() * v_a.norm())),
                "act_base": float(act_b[n.layer, n.index]), "act_aligned": float(act_a[n.layer, n.index]),
                "promotes": vocab_projection(a_base, base.tokenizer, [n], k=8)[n.name],
            })
        pcos = parameter_cosines(base.model, aligned.model)
        worst = min(pcos, key=pcos.get)

        ranked = np.sort(delta, axis=None)[::-1]
        cumulative = np.cumsum(ranked) / gross if gross else np.zeros_like(ranked)
        artifacts = self.plots(ctx, groups, per_layer, cumulative)

        metrics = {
            "groups": groups,
            "gross": gross,
            "net": net,
            "direct_change": direct_change,
            "identity_residual": residual,
            "probe_accuracy": probe.accuracy,
            "steps": {"base": sums["base"].steps, "aligned": sums["aligned"].steps},
            "min_parameter_cosine": {"value": pcos[worst], "parameter": worst},
            "toxic_neurons_mean_activation_drop": float(np.mean([r["act_base"] - r["act_aligned"] for r in toxic_rows])),
            "toxic_value_vectors_min_cosine": float(min(r["value_cos_base_aligned"] for r in toxic_rows)),
        }
        extra = {"per_layer": per_layer, "top_neurons": top_rows, "toxic_neurons": toxic_rows,
                 "parameter_cosines": pcos, "probe": probe.identity(), "paper_shares": PAPER_SHARES}
        config = {"protocol": protocol.to_dict(), "n_prompts": len(raw), "top_neurons": self.top_neurons,
                  "toxic_k": self.toxic_k, "identity_tolerance": self.identity_tolerance,
                  "definition": "docs/protocol.md §8 (Yang et al.); probe §1; value vectors §2"}
        return TaskResult(metrics=metrics, config=config, extra=extra, artifacts=artifacts,
                          report=self.report(metrics, top_rows, toxic_rows, artifacts))

    @staticmethod
    def plots(ctx: RunContext, groups: dict, per_layer: list, cumulative: np.ndarray) -> list[str]:
        plt = ctx.pyplot()
        paths = []
        fig, ax = plt.subplots(figsize=(6, 3.2))
        names = list(REDUCING) + list(MIRRORS)
        shares = [groups[g]["share"] or 0.0 for g in names]
        ax.bar(names, shares, color=["#2a7"] * 4 + ["#c55"] * 4)
        ax.scatter(list(PAPER_SHARES), list(PAPER_SHARES.values()), color="k", marker="_", s=300,
                   label="Yang et al., GPT2-medium", zorder=3)
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
        lines = [
            "Where the change sits: each neuron's contribution Δ to the drop in writing along the probe "
            f"direction (probe accuracy {acc.value:.3f} [{acc.ci_low:.3f}, {acc.ci_high:.3f}], n={acc.n}; "
            "Lee et al.: 0.94 on GPT2-medium).",
            "",
            "| group | neurons | Σ Δ | share of gross | Yang et al. |",
            "|---|---|---|---|---|",
        ]
        for name in list(REDUCING) + list(MIRRORS):
            share = g[name]["share"]
            paper = f"{PAPER_SHARES[name]:.1%}" if name in PAPER_SHARES else ""
            lines.append(f"| {name} | {g[name]['n_neurons']} | {g[name]['sum']:.4g} | "
                         f"{'' if share is None else f'{share:.1%}'} | {paper} |")
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
            lines.append(f"| {r['neuron']} | {r['group']} | {r['delta']:.4g} | {r['cos']:.3f} | {r['act_base']:.3f} | "
                         f"{r['act_aligned']:.3f} | {' '.join(t.strip() for t in r['promotes'])} |")
        lines += ["", "Most toxic value vectors (by cosine with the probe):", "",
                  "| neuron | cos(v, w) | cos(v_base, v_aligned) | ā base | ā aligned | promotes |",
                  "|---|---|---|---|---|---|"]
        for r in toxic_rows:
            lines.append(f"| {r['neuron']} | {r['cos_probe']:.3f} | {r['value_cos_base_aligned']:.4f} | "
                         f"{r['act_base']:.3f} | {r['act_aligned']:.3f} | {' '.join(t.strip() for t in r['promotes'])} |")
        lines += [""] + [f"![{a}]({a})" for a in artifacts]
        return "\n".join(lines)
