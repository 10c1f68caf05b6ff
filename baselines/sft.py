"""Supervised fine-tuning on the chosen continuations (TRL's ``SFTTrainer``): the simplest
baseline a preference method must beat. The loss is on the continuation only."""

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
    run_trainer,
    trainer_arguments,
)


@dataclass(frozen=True)
class SFTSettings(TrainingSettings):
    learning_rate: float = 1e-5


class SFTMethod(Method):
    """Fine-tune on prompt + chosen continuation (loss on the continuation), TRL's SFTTrainer."""

    name = "sft"
    description = "supervised fine-tuning on the chosen continuations (TRL SFTTrainer, completion-only loss)"
    settings_class = SFTSettings

    def prepare(self, settings: Any, ctx: AlignContext) -> Any:
        return for_align(settings, ctx)

    def align(self, ctx: AlignContext, settings: SFTSettings) -> tuple[Any, dict[str, Any]]:
        from datasets import Dataset
        from transformers import set_seed
        from trl import SFTConfig, SFTTrainer

        assert ctx.data is not None
        settings = for_align(settings, ctx)  # as prepare() gives them; here for callers of align()
        set_seed(settings.seed)

        def rows(pairs):
            return Dataset.from_list([{"prompt": p["prompt"], "completion": p["chosen"]} for p in pairs])

        early = bool(settings.early_stopping_patience is not None and ctx.data.valid)
        config = SFTConfig(completion_only_loss=True, **trainer_arguments(settings, ctx.checkpoints, early))
        trainer = SFTTrainer(
            model=copy.deepcopy(ctx.base.model).train(),
            args=config,
            train_dataset=rows(ctx.data.train),
            eval_dataset=rows(ctx.data.valid) if ctx.data.valid else None,
            processing_class=ctx.base.tokenizer,
            callbacks=early_stopping(settings, ctx.data.valid),
            peft_config=peft_config(settings),
        )
        return run_trainer(trainer, "SFT", ctx.show_progress, resume=True)
