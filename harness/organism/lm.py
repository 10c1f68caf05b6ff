"""The organism's tokenizer and its GPT-2-architecture base model, trained from scratch."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

EOS = "<|endoftext|>"


@dataclass(frozen=True)
class ModelShape:
    """GPT-2 hyper-parameters of the organism's base model."""

    n_layer: int
    n_embd: int
    n_head: int
    n_positions: int
    vocab_size: int


@dataclass(frozen=True)
class TrainSettings:
    steps: int
    batch_size: int
    learning_rate: float
    warmup_steps: int


def train_tokenizer(corpus: Sequence[str], vocab_size: int, out_dir: Path):
    """Byte-level BPE (GPT-2's scheme) trained on the corpus, saved in HF format."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[EOS],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(corpus, trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token=EOS, eos_token=EOS, unk_token=EOS, pad_token=EOS
    )
    fast.model_max_length = 10**6  # the model's n_positions is the real limit
    fast.save_pretrained(out_dir)
    return fast


def pack_blocks(corpus: Sequence[str], tokenizer, block: int) -> list[list[int]]:
    """Documents joined by EOS and cut into blocks of ``block`` tokens (the last partial one dropped)."""
    ids: list[int] = []
    eos = tokenizer.eos_token_id
    for enc in tokenizer(list(corpus), add_special_tokens=False)["input_ids"]:
        ids.extend(enc)
        ids.append(eos)
    return [ids[i : i + block] for i in range(0, len(ids) - block + 1, block)]


def train_base_model(
    corpus: Sequence[str],
    tokenizer,
    shape: ModelShape,
    settings: TrainSettings,
    seed: int,
    out_dir: Path,
    show_progress: bool = True,
):
    """Train a ``GPT2LMHeadModel`` from scratch with the transformers ``Trainer``; save as safetensors."""
    import torch
    from datasets import Dataset
    from transformers import GPT2Config, GPT2LMHeadModel, Trainer, TrainingArguments, set_seed

    from toxbench.training import quiet_trainer

    set_seed(seed)
    config = GPT2Config(
        vocab_size=len(tokenizer),
        n_positions=shape.n_positions,
        n_embd=shape.n_embd,
        n_layer=shape.n_layer,
        n_head=shape.n_head,
        bos_token_id=tokenizer.eos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.eos_token_id,
        resid_pdrop=0.0,
        embd_pdrop=0.0,
        attn_pdrop=0.0,
    )
    model = GPT2LMHeadModel(config)
    blocks = pack_blocks(corpus, tokenizer, shape.n_positions)
    data = Dataset.from_dict({"input_ids": blocks, "labels": blocks})
    args = TrainingArguments(
        output_dir=str(out_dir / "_trainer"),
        max_steps=settings.steps,
        per_device_train_batch_size=settings.batch_size,
        learning_rate=settings.learning_rate,
        warmup_steps=settings.warmup_steps,
        lr_scheduler_type="cosine",
        weight_decay=0.01,
        logging_steps=max(1, settings.steps // 10),
        save_strategy="no",
        report_to=[],
        use_cpu=True,
        seed=seed,
        data_seed=seed,
        dataloader_num_workers=0,
        disable_tqdm=True,  # progress goes through toxbench's display (harness/training.py)
    )
    trainer = quiet_trainer(
        Trainer(model=model, args=args, train_dataset=data),
        "organism: training the base model",
        show_progress,
    )
    result = trainer.train()
    model.eval()
    model.save_pretrained(out_dir, safe_serialization=True)
    tokenizer.save_pretrained(out_dir)
    history = [h for h in trainer.state.log_history if "loss" in h]
    del trainer
    torch.set_grad_enabled(True)
    return model, {
        "train_loss": result.training_loss,
        "final_loss": history[-1]["loss"] if history else None,
        "n_blocks": len(blocks),
    }
