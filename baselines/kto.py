"""KTO (Ethayarajh et al., 2024) through TRL's ``KTOTrainer``: each pair becomes a desirable
(chosen) and an undesirable (rejected) example, TRL's own unpairing."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

from toxbench.baselines.base import AlignContext, Method
from toxbench.baselines.training import (
    TrainingSettings,
    early_stopping,
    for_align,
    peft_config,
    reference_model,
    run_trainer,
    trainer_arguments,
)


@dataclass(frozen=True)
class KTOSettings(TrainingSettings):
    beta: float = 0.1
    desirable_weight: float = 1.0
    undesirable_weight: float = 1.0


class KTOMethod(Method):
    """KTO on the pairs, unpaired into desirable and undesirable continuations."""

    name = "kto"
    description = "KTO (TRL KTOTrainer): chosen as desirable, rejected as undesirable"
    settings_class = KTOSettings

    def prepare(self, settings: Any, ctx: AlignContext) -> Any:
        return for_align(settings, ctx)

    def align(self, ctx: AlignContext, settings: KTOSettings) -> tuple[Any, dict[str, Any]]:
        from datasets import Dataset
        from transformers import set_seed
        from trl import KTOConfig, KTOTrainer

        assert ctx.data is not None
        settings = for_align(settings, ctx)  # as prepare() gives them; here for callers of align()
        set_seed(settings.seed)
        early = bool(settings.early_stopping_patience is not None and ctx.data.valid)
        config = KTOConfig(
            beta=settings.beta,
            desirable_weight=settings.desirable_weight,
            undesirable_weight=settings.undesirable_weight,
            **trainer_arguments(settings, ctx.checkpoints, early),
        )
        trainer = KTOTrainer(
            model=copy.deepcopy(ctx.base.model).train(),
            ref_model=reference_model(ctx.base.model, settings),
            args=config,
            # TRL's KTO reads its training data in order (the KL completions are precomputed per row),
            # so the seed would change nothing: the rows are shuffled with it here instead.
            train_dataset=Dataset.from_list(ctx.data.train).shuffle(seed=settings.seed),
            eval_dataset=Dataset.from_list(ctx.data.valid) if ctx.data.valid else None,
            processing_class=ctx.base.tokenizer,
            callbacks=early_stopping(settings, ctx.data.valid),
            peft_config=peft_config(settings),
        )
        return run_trainer(trainer, "KTO", ctx.show_progress, resume=True)
