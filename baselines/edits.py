"""Training-free baselines, saved as weight edits of the base model: ``subtract`` (a direction
taken out of the residual stream after the last MLP, [A] §3.3) and ``ablate`` (the top-k
toxic value vectors zeroed, [B] §7). Both find the toxic direction with the probe: one
given (``probe=PATH``), or one trained on the base model's comments data."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from toxbench.baselines.base import AlignContext, Method, base_probe
from toxbench.errors import ToxbenchError

DIRECTIONS = ("probe", "mean-diff")


@dataclass(frozen=True)
class SubtractSettings:
    alpha: float | None = None  # in residual-stream units (the unit direction scaled by α); or `match`
    match: str | None = None  # a model spec (e.g. the DPO model): α is chosen to match its perplexity
    direction: str = "probe"  # the probe vector W_Toxic, or "mean-diff" (mean toxic - non-toxic residual)
    probe: str | None = None  # an existing probe (`toxbench probe train`); default: trained now
    alpha_grid: tuple[float, ...] = (0.25, 0.5, 1.0, 2.0, 4.0)  # x the mean residual norm, for `match`
    refine_steps: int = 4
    perplexity_window: int = 1024
    seed: int = 0

    def __post_init__(self) -> None:
        if (self.alpha is None) == (self.match is None):
            raise ValueError(
                "give alpha=A (residual-stream units) or match=MODEL (α matching its perplexity)"
            )
        if self.direction not in DIRECTIONS:
            raise ValueError(f"unknown direction {self.direction!r}: choose one of {', '.join(DIRECTIONS)}")


class SubtractMethod(Method):
    """α x the unit toxic direction subtracted after the last MLP (saved in the MLP's output bias)."""

    name = "subtract"
    kind = "edit"
    needs_data = False
    description = "subtract α x the probe direction after the last MLP ([A]; α given or matched to a model's perplexity)"
    settings_class = SubtractSettings

    def align(self, ctx: AlignContext, settings: SubtractSettings) -> tuple[Any, dict[str, Any]]:
        from toxbench.mech.edits import shift_residual

        probe = base_probe(ctx.base, settings.probe, settings.seed)
        vector = probe.direction if settings.direction == "probe" else probe.mean_difference
        if vector is None:
            raise ToxbenchError(
                "this probe has no mean difference: use direction=probe, or retrain the probe"
            )
        stats: dict[str, Any] = {"probe": probe.identity()}
        alpha = settings.alpha
        if alpha is None:
            alpha, search, target, status = _match_alpha(ctx, vector, settings)
            stats.update(
                alpha_search=search, target_perplexity=target, matched=settings.match, alpha_match=status
            )
        edit = shift_residual(ctx.base.model, vector, -float(alpha))
        if not edit.saveable:
            raise ToxbenchError(
                f"model {ctx.base.name!r} ({ctx.base.model.config.model_type}) has no MLP output bias to carry the "
                "shift, so subtract cannot be saved as weights: evaluate it as the ablation task's subtract variant"
            )
        stats["alpha"] = float(alpha)
        return edit.model, stats


def _match_alpha(ctx: AlignContext, vector, settings: SubtractSettings) -> tuple[float, list, float, str]:
    from toxbench.backends.hf import HFBackend
    from toxbench.data import load_wikitext
    from toxbench.fluency import FluencySettings, perplexity, perplexity_windows
    from toxbench.mech.alpha import match_perplexity
    from toxbench.mech.edits import shift_residual
    from toxbench.models import load_model
    from toxbench.progress import progress_bar
    from toxbench.tasks.variants import residual_scale

    base = ctx.base
    wiki = load_wikitext(base.data_dir)
    window = FluencySettings(perplexity_window=settings.perplexity_window).window_for(base.model)
    windows = perplexity_windows(base.tokenizer, wiki.rows, window)
    target_model = load_model(str(settings.match), ctx.device or "cpu", show_progress=False)
    target, _ = perplexity(HFBackend(target_model.model, target_model.tokenizer), windows)
    del target_model
    from toxbench.tokenization import truncate_texts

    prompts = truncate_texts(base.tokenizer, [line for line in wiki.rows if line.strip()][:64], 32)
    scale = residual_scale(base, prompts)  # α's grid in units of the residual norm, as the ablation task
    with progress_bar(
        "subtract: matching perplexity", 1 + len(settings.alpha_grid) + settings.refine_steps
    ) as advance:

        def evaluate(alpha: float, _on_grid: bool) -> dict[str, Any]:
            edited = shift_residual(base.model, vector, -alpha).model
            ppl, _ = perplexity(HFBackend(edited, base.tokenizer), windows)
            advance(1)
            return {"alpha": alpha, "alpha_residual_norms": alpha / scale, "perplexity": ppl.value}

        alpha, search, status = match_perplexity(
            evaluate, [m * scale for m in settings.alpha_grid], target.value, settings.refine_steps
        )
    if status != "bracketed":
        import warnings

        warnings.warn(
            f"subtract: no α in the grid reaches the perplexity of {settings.match!r} ({target.value:.3f}); "
            f"the closest point, α = {alpha:.3g}, is used: widen alpha_grid to bracket it",
            stacklevel=2,
        )
    return alpha, search, target.value, status


@dataclass(frozen=True)
class AblateSettings:
    k: int | None = None  # None: [B]'s 100 of GPT2-medium's 98,304 neurons, scaled to this model
    probe: str | None = None
    seed: int = 0


class AblateMethod(Method):
    """The k value vectors most aligned with the probe, zeroed (the neurons still fire, writing nothing)."""

    name = "ablate"
    kind = "edit"
    needs_data = False
    description = (
        "zero the top-k toxic value vectors ([B]'s ablation; k defaults to 100 of GPT2-medium's, scaled)"
    )
    settings_class = AblateSettings

    def align(self, ctx: AlignContext, settings: AblateSettings) -> tuple[Any, dict[str, Any]]:
        from toxbench.mech.edits import ablate_neurons
        from toxbench.mech.neurons import neuron_adapter
        from toxbench.mech.vectors import rank_toxic_neurons
        from toxbench.tasks.variants import scaled_count

        probe = base_probe(ctx.base, settings.probe, settings.seed)
        adapter = neuron_adapter(ctx.base.model)
        n_neurons = adapter.n_layers * adapter.d_mlp
        k = settings.k or scaled_count(100, n_neurons)
        ranked = rank_toxic_neurons(adapter, probe.unit, k)
        edit = ablate_neurons(ctx.base.model, [(n.layer, n.index) for n in ranked])
        return edit.model, {"probe": probe.identity(), "k": len(ranked), "neurons": [n.name for n in ranked]}
