"""What the trained methods (DPO, IPO, SFT, KTO) share: the optimiser settings, early stopping on
held-out pairs, checkpoints to resume from, and running a TRL trainer quietly."""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class TrainingSettings:
    """Optimiser and schedule, as [A]'s code set them (RMSprop, 1e-6, batch 4, 150 warm-up steps)."""

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
    checkpoint_steps: int | None = None  # save a checkpoint to resume from this often (align sets it)
    seed: int = 0
    device: str | None = None  # None: the accelerator if there is one, else the CPU
    # None: bfloat16 mixed precision on a GPU that has it, never on the CPU (TRL turns it on by
    # default, and CPUs without bfloat16 units then train some 20x slower).
    bf16: bool | None = None
    gradient_checkpointing: bool = False  # trade compute for memory (large models)
    # Parameter-efficient training: "lora" trains a LoRA adapter (TRL's peft_config) and `align` writes
    # the adapter folder, on the base model it names; None trains every weight.
    peft: str | None = None
    lora_r: int = 16
    lora_alpha: int = 32
    lora_dropout: float = 0.05
    lora_target_modules: str | list[str] = "all-linear"

    def __post_init__(self) -> None:
        if self.peft not in (None, "lora"):
            raise ValueError(f"peft must be lora or none, got {self.peft!r}")
        if self.peft and self.lora_r < 1:
            raise ValueError(f"lora_r must be at least 1, got {self.lora_r}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def peft_config(settings: TrainingSettings) -> Any:
    """The LoRA configuration TRL's trainers take (``peft_config=``), or None to train every weight."""
    if settings.peft is None:
        return None
    try:
        from peft import LoraConfig
    except ImportError as exc:
        from toxbench.errors import ToxbenchError

        raise ToxbenchError("peft=lora needs the peft package: pip install 'toxbench[peft]'") from exc
    return LoraConfig(
        r=settings.lora_r,
        lora_alpha=settings.lora_alpha,
        lora_dropout=settings.lora_dropout,
        target_modules=settings.lora_target_modules,
        task_type="CAUSAL_LM",
    )


def reference_model(model: Any, settings: TrainingSettings) -> Any:
    """The frozen reference of DPO and KTO: a copy of the base, or none with LoRA (TRL then computes
    the reference with the adapter switched off, which is the base itself)."""
    import copy

    return None if settings.peft else copy.deepcopy(model).eval()


def trainer_arguments(settings: TrainingSettings, out_dir: Path, early: bool) -> dict[str, Any]:
    """Keyword arguments every TRL config here takes (``DPOConfig``, ``SFTConfig``, ``KTOConfig``)."""
    checkpoints = early or settings.checkpoint_steps is not None
    save_steps = settings.eval_steps if early else settings.checkpoint_steps
    return dict(
        output_dir=str(out_dir),
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
        save_strategy="steps" if checkpoints else "no",
        save_steps=save_steps if checkpoints else None,
        save_total_limit=(1 if early else 2) if checkpoints else None,
        load_best_model_at_end=bool(early),
        metric_for_best_model="eval_loss" if early else None,
        report_to=[],
        use_cpu=_on_cpu(settings.device),
        bf16=_bf16(settings),
        gradient_checkpointing=settings.gradient_checkpointing,
        seed=settings.seed,
        data_seed=settings.seed,
        disable_tqdm=True,  # progress goes through toxbench's display (harness/training.py)
        dataloader_num_workers=0,
    )


def _bf16(settings: TrainingSettings) -> bool:
    """Whether to train in bfloat16 mixed precision: as asked, else on a GPU that supports it."""
    if settings.bf16 is not None:
        return settings.bf16
    import torch

    return not _on_cpu(settings.device) and torch.cuda.is_available() and torch.cuda.is_bf16_supported()


def _on_cpu(device: str | None) -> bool:
    """Train on the CPU when told to, or when there is no accelerator (the Trainer would refuse)."""
    import torch

    if device is None or device == "auto":
        return not torch.cuda.is_available()
    return device == "cpu"


def run_trainer(
    trainer: Any, description: str, show_progress: bool, resume: bool
) -> tuple[Any, dict[str, Any]]:
    """Train (from the last checkpoint in the trainer's output folder when ``resume``); the trained
    model and the statistics every method reports."""
    from toxbench.baselines.base import last_checkpoint
    from toxbench.training import quiet_trainer

    quiet_trainer(trainer, description, show_progress)
    start = last_checkpoint(Path(trainer.args.output_dir)) if resume else None
    result = trainer.train(resume_from_checkpoint=str(start) if start else None)
    stats: dict[str, Any] = {"train_loss": result.training_loss, "steps": trainer.state.global_step}
    if start is not None:
        stats["resumed_from"] = start.name
    if trainer.eval_dataset is not None:
        stats["eval_loss"] = trainer.evaluate()["eval_loss"]
    stats["best_eval_loss"] = trainer.state.best_metric
    return trainer.model.eval(), stats


def early_stopping(settings: TrainingSettings, valid: Any) -> list[Any] | None:
    from transformers import EarlyStoppingCallback

    if settings.early_stopping_patience is None or not valid:
        return None
    return [EarlyStoppingCallback(settings.early_stopping_patience)]


def for_align(settings: Any, ctx: Any) -> Any:
    """Settings as ``toxbench align`` trains with them: a checkpoint every evaluation (to resume
    from) unless set, and the device ``--device`` names."""
    if settings.checkpoint_steps is None:
        settings = replace(settings, checkpoint_steps=settings.eval_steps)
    if ctx.device is not None and settings.device is None:
        settings = replace(settings, device=ctx.device)
    return settings
