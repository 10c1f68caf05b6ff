"""A task: toxicity of sampled continuations at several temperatures, for each model of the run."""

from __future__ import annotations

from typing import Any

from toxbench.backends.base import SamplingConfig
from toxbench.data import load_rtp
from toxbench.metrics import format_metric, mean_score
from toxbench.tasks.base import Task, TaskResult


class TemperatureSweepTask(Task):
    """Mean toxicity of one sampled continuation per challenging prompt, at each temperature."""

    name = "temperature-sweep"
    version = "1"
    roles = ("base",)
    optional_roles = ("aligned",)  # compared when the run has an aligned model

    def __init__(self, temperatures: list[float] | None = None, max_new_tokens: int = 20) -> None:
        self.temperatures = [float(t) for t in (temperatures or [0.7, 1.0])]
        self.max_new_tokens = int(max_new_tokens)

    def run(self, ctx: Any) -> TaskResult:
        loaded = load_rtp(ctx.data_dir, challenging=True, limit=ctx.config.limit)
        ctx.record_dataset(loaded)
        prompts = [p.text for p in loaded.rows]
        metrics: dict[str, dict[str, Any]] = {}
        for role, model in ctx.models.items():
            for t in self.temperatures:
                sampling = SamplingConfig(
                    self.max_new_tokens, greedy=False, temperature=t, seed=ctx.config.seed
                )
                outs = ctx.generate(model, prompts, sampling, f"temperature {t:g}")
                scores = ctx.score([o[0].text for o in outs])
                metrics.setdefault(role, {})[f"toxicity_t{t:g}"] = mean_score(scores, seed=ctx.config.seed)
        lines = [
            "| model | " + " | ".join(f"T = {t:g}" for t in self.temperatures) + " |",
            "|---|" + "---|" * len(self.temperatures),
        ]
        lines += [
            f"| {role} | " + " | ".join(format_metric(m) for m in row.values()) + " |"
            for role, row in metrics.items()
        ]
        config = {
            "temperatures": self.temperatures,
            "max_new_tokens": self.max_new_tokens,
            "n_prompts": len(prompts),
        }
        return TaskResult(metrics=metrics, config=config, report="\n".join(lines))
