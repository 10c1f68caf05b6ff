"""DPO with TRL's ``DPOTrainer``.

Defaults follow Lee et al. (ICML 2024) §4 and their code: beta 0.1, learning rate 1e-6,
batch 4, RMSprop, 150 warm-up steps, gradient-norm clip 10; the prompt and each response
truncated to 64 tokens *separately*; no EOS appended to the responses; early stopping on
the validation loss, evaluated every 25 steps, patience 30, the best checkpoint kept.

TRL tokenises prompt + response as one text, truncates the pair as a whole and appends
EOS to every response. [A]'s recipe (``tokenization="lee2024"``) tokenises the prompt (with
the tokenizer's BOS, as a model reads it) and each response (no special tokens) on their
own, through ``LeeDPOTrainer``; ``tokenization="trl"`` keeps TRL's own path.

IPO is the same trainer with TRL's ``loss_type="ipo"`` (``beta`` is then IPO's τ).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
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

TOKENIZATIONS = ("lee2024", "trl")


LOSS_TYPES = ("sigmoid", "ipo", "hinge", "robust")


@dataclass(frozen=True)
class DPOSettings(TrainingSettings):
    beta: float = 0.1
    loss_type: str = "sigmoid"  # DPO's; "ipo" for IPO (TRL's names)
    tokenization: str = "lee2024"  # or "trl": TRL's own (pair truncated as a whole, EOS appended)
    max_prompt_tokens: int = 64
    max_response_tokens: int = 64
    append_eos: bool = False  # [A] did not append EOS; TRL's own path always does

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.tokenization not in TOKENIZATIONS:
            raise ValueError(
                f"unknown DPO tokenization {self.tokenization!r}: choose one of {', '.join(TOKENIZATIONS)}"
            )
        if self.loss_type not in LOSS_TYPES:
            raise ValueError(f"unknown loss_type {self.loss_type!r}: choose one of {', '.join(LOSS_TYPES)}")


def lee2024_tokenize(tokenizer, row: dict, settings: DPOSettings) -> dict[str, list[int]]:
    """[A]'s pair encoding: the prompt as a model reads it (BOS where the tokenizer adds one) and each
    response on its own, each cut to its limit; EOS appended to the responses only when asked."""
    from toxbench.tokenization import encode, encode_plain

    prompt = encode(tokenizer, [row["prompt"]])[0][: settings.max_prompt_tokens]
    chosen, rejected = encode_plain(tokenizer, [row["chosen"], row["rejected"]])
    eos = [tokenizer.eos_token_id] if settings.append_eos and tokenizer.eos_token_id is not None else []
    return {
        "prompt_ids": prompt,
        "chosen_ids": chosen[: settings.max_response_tokens - len(eos)] + eos,
        "rejected_ids": rejected[: settings.max_response_tokens - len(eos)] + eos,
    }


def _trainer_class(settings: DPOSettings):
    from trl import DPOTrainer

    if settings.tokenization == "trl":
        return DPOTrainer

    class LeeDPOTrainer(DPOTrainer):
        """TRL's DPO trainer with [A]'s tokenisation of the pairs (``lee2024_tokenize``)."""

        def _prepare_dataset(self, dataset, processing_class, args, dataset_name):
            tokenizer = getattr(processing_class, "tokenizer", processing_class)
            return dataset.map(
                lambda row: lee2024_tokenize(tokenizer, row, settings),
                remove_columns=list(dataset.column_names),
            )

    return LeeDPOTrainer


def train_dpo(
    model,
    tokenizer,
    train_pairs: Sequence[dict],
    settings: DPOSettings,
    out_dir: Path,
    valid_pairs: Sequence[dict] | None = None,
    show_progress: bool = True,
    resume: bool = False,
    checkpoint_dir: Path | None = None,
    save: bool = True,
):
    """Align ``model`` (a causal LM, left unchanged) with DPO on prompt/chosen/rejected pairs.

    Returns the aligned model (a copy) and a dict of training statistics; the model and
    tokenizer are saved to ``out_dir`` as safetensors. Checkpoints go to ``checkpoint_dir``
    (default ``out_dir/_trainer``), and ``resume`` continues from the last one there.
    """
    import copy

    from datasets import Dataset
    from transformers import set_seed
    from trl import DPOConfig

    for i, row in enumerate(train_pairs[:1]):
        missing = {"prompt", "chosen", "rejected"} - set(row)
        if missing:
            raise ValueError(f"preference pair {i} lacks the field(s) {sorted(missing)}")
    set_seed(settings.seed)
    policy = copy.deepcopy(model).train()
    reference = reference_model(model, settings)
    early = bool(settings.early_stopping_patience is not None and valid_pairs)
    config = DPOConfig(
        beta=settings.beta,
        loss_type=[settings.loss_type],
        **trainer_arguments(settings, checkpoint_dir or out_dir / "_trainer", early),
    )
    trainer = _trainer_class(settings)(
        model=policy,
        ref_model=reference,
        args=config,
        train_dataset=Dataset.from_list(list(train_pairs)),
        eval_dataset=Dataset.from_list(list(valid_pairs)) if valid_pairs else None,
        processing_class=tokenizer,
        callbacks=early_stopping(settings, valid_pairs),
        peft_config=peft_config(settings),
    )
    aligned, stats = run_trainer(
        trainer,
        settings.loss_type.upper() if settings.loss_type != "sigmoid" else "DPO",
        show_progress,
        resume,
    )
    logs = [h for h in trainer.state.log_history if "rewards/accuracies" in h]
    if logs:
        stats["reward_accuracy"] = logs[-1]["rewards/accuracies"]
        stats["reward_margin"] = logs[-1].get("rewards/margins")
    stats["tokenization"] = settings.tokenization
    if save:
        aligned.save_pretrained(out_dir, safe_serialization=True)
        tokenizer.save_pretrained(out_dir)
    return aligned, stats


class DPOMethod(Method):
    """DPO through TRL, with [A]'s settings as defaults (docs/protocol.md §4)."""

    name = "dpo"
    description = "DPO (TRL), [A]'s settings: beta 0.1, lr 1e-6, RMSprop, early stopping on held-out pairs"
    settings_class = DPOSettings

    def prepare(self, settings: Any, ctx: AlignContext) -> Any:
        return for_align(settings, ctx)

    def align(self, ctx: AlignContext, settings: DPOSettings) -> tuple[Any, dict[str, Any]]:
        assert ctx.data is not None
        settings = for_align(settings, ctx)  # as prepare() gives them; here for callers of align()
        base = ctx.base
        return train_dpo(
            base.model,
            base.tokenizer,
            ctx.data.train,
            settings,
            ctx.output,
            ctx.data.valid,
            ctx.show_progress,
            resume=True,
            checkpoint_dir=ctx.checkpoints,
            save=False,  # align saves the model and its card
        )


@dataclass(frozen=True)
class IPOSettings(DPOSettings):
    loss_type: str = "ipo"


class IPOMethod(DPOMethod):
    """IPO: DPO's trainer with the IPO loss (``beta`` is IPO's τ)."""

    name = "ipo"
    description = "IPO (TRL's DPO trainer, loss_type=ipo), otherwise [A]'s DPO settings"
    settings_class = IPOSettings
