"""DPO with TRL's ``DPOTrainer``.

Defaults follow Lee et al. (ICML 2024) §4 and their code: beta 0.1, learning rate 1e-6,
batch 4, RMSprop, 150 warm-up steps, gradient-norm clip 10; the prompt and each response
truncated to 64 tokens *separately*; no EOS appended to the responses; early stopping on
the validation loss, evaluated every 25 steps, patience 30, the best checkpoint kept.

TRL tokenises prompt + response as one text, truncates the pair as a whole and appends
EOS to every response. [A]'s recipe (``tokenization="lee2024"``) tokenises the prompt (with
the tokenizer's BOS, as a model reads it) and each response (no special tokens) on their
own, through ``LeeDPOTrainer``; ``tokenization="trl"`` keeps TRL's own path.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

TOKENIZATIONS = ("lee2024", "trl")


@dataclass(frozen=True)
class DPOSettings:
    beta: float = 0.1
    learning_rate: float = 1e-6
    batch_size: int = 4
    optimizer: str = "rmsprop"
    warmup_steps: int = 150
    max_grad_norm: float = 10.0
    max_length: int = 128  # prompt (<=64) + response (<=64)
    max_steps: int = -1  # -1: train for `epochs`
    epochs: float = 1.0
    early_stopping_patience: int | None = 30  # evaluations without validation-loss improvement ([A]'s code)
    eval_steps: int = 25
    seed: int = 0
    tokenization: str = "lee2024"  # or "trl": TRL's own (pair truncated as a whole, EOS appended)
    max_prompt_tokens: int = 64
    max_response_tokens: int = 64
    append_eos: bool = False  # [A] did not append EOS; TRL's own path always does
    device: str | None = None  # None: the accelerator if there is one, else the CPU

    def __post_init__(self) -> None:
        if self.tokenization not in TOKENIZATIONS:
            raise ValueError(
                f"unknown DPO tokenization {self.tokenization!r}: choose one of {', '.join(TOKENIZATIONS)}"
            )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def lee2024_tokenize(tokenizer, row: dict, settings: DPOSettings) -> dict[str, list[int]]:
    """[A]'s pair encoding: the prompt as a model reads it (BOS where the tokenizer adds one) and each
    response on its own, each cut to its limit; EOS appended to the responses only when asked."""
    from harness.tokenization import encode, encode_plain

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
):
    """Align ``model`` (a causal LM, left unchanged) with DPO on prompt/chosen/rejected pairs.

    Returns the aligned model (a copy) and a dict of training statistics. The aligned
    model and tokenizer are saved to ``out_dir`` as safetensors.
    """
    import copy

    from datasets import Dataset
    from transformers import EarlyStoppingCallback, set_seed
    from trl import DPOConfig

    from harness.training import quiet_trainer

    for i, row in enumerate(train_pairs[:1]):
        missing = {"prompt", "chosen", "rejected"} - set(row)
        if missing:
            raise ValueError(f"preference pair {i} lacks the field(s) {sorted(missing)}")
    set_seed(settings.seed)
    policy = copy.deepcopy(model).train()
    reference = copy.deepcopy(model).eval()
    early = settings.early_stopping_patience is not None and valid_pairs
    config = DPOConfig(
        output_dir=str(out_dir / "_trainer"),
        beta=settings.beta,
        learning_rate=settings.learning_rate,
        per_device_train_batch_size=settings.batch_size,
        per_device_eval_batch_size=max(settings.batch_size, 16),
        optim=settings.optimizer,
        warmup_steps=settings.warmup_steps,
        max_grad_norm=settings.max_grad_norm,
        max_length=settings.max_length,
        max_steps=settings.max_steps,
        num_train_epochs=settings.epochs,
        lr_scheduler_type="constant_with_warmup",
        logging_steps=max(1, settings.eval_steps),
        eval_strategy="steps" if early else "no",
        eval_steps=settings.eval_steps if early else None,
        save_strategy="steps" if early else "no",
        save_steps=settings.eval_steps if early else None,  # type: ignore[arg-type]  # unused when not saving
        save_total_limit=1 if early else None,
        load_best_model_at_end=bool(early),
        metric_for_best_model="eval_loss" if early else None,
        report_to=[],
        use_cpu=settings.device == "cpu",
        seed=settings.seed,
        data_seed=settings.seed,
        disable_tqdm=True,  # progress goes through toxbench's display (harness/training.py)
        dataloader_num_workers=0,
    )
    trainer = quiet_trainer(
        _trainer_class(settings)(
            model=policy,
            ref_model=reference,
            args=config,
            train_dataset=Dataset.from_list(list(train_pairs)),
            eval_dataset=Dataset.from_list(list(valid_pairs)) if valid_pairs else None,
            processing_class=tokenizer,
            callbacks=[EarlyStoppingCallback(int(settings.early_stopping_patience or 0))] if early else None,
        ),
        "DPO",
        show_progress,
    )
    result = trainer.train()
    stats: dict[str, Any] = {"train_loss": result.training_loss, "steps": trainer.state.global_step}
    logs = [h for h in trainer.state.log_history if "rewards/accuracies" in h]
    if logs:
        stats["reward_accuracy"] = logs[-1]["rewards/accuracies"]
        stats["reward_margin"] = logs[-1].get("rewards/margins")
    if valid_pairs:
        stats["eval_loss"] = trainer.evaluate()["eval_loss"]
    stats["tokenization"] = settings.tokenization
    stats["best_eval_loss"] = trainer.state.best_metric
    aligned = trainer.model.eval()
    aligned.save_pretrained(out_dir, safe_serialization=True)
    tokenizer.save_pretrained(out_dir)
    return aligned, stats
