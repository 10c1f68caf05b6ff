"""Fine-tuning attacks on an aligned model: a few steps of supervised fine-tuning on a handful of
hostile texts, the attack a model's owner cannot prevent once its weights are out.

The un-alignment task runs a sweep of them beside [A]'s key scaling: for each number of hostile
texts N and learning rate, one training (TRL's ``SFTTrainer``, full or LoRA) is saved at every
step budget, and each saved model is evaluated as a variant of the aligned model. The texts are
the probe's toxic comments by default (``load_comments``, as the probe reads them) or a user's
file, shuffled with the run's seed, the smaller sets nested in the larger, and never a text that
holds a test prompt (or is held by one): an attack must not learn the test.

Trainings are kept by what determines them (the aligned model's fingerprint, the texts, the
settings, the seed), under the cache folder (``$TOXBENCH_HOME/cache/attacks/``; the run's own
``_attacks/`` with ``--no-cache``): a finished one is reused, an interrupted one resumes from its
last checkpoint, like ``toxbench align``. A finished training keeps only the weights of its
step budgets (a LoRA attack: only its adapters), not the optimiser state.
"""

from __future__ import annotations

import copy
import json
import logging
import random
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from toxbench.errors import ToxbenchError

log = logging.getLogger(__name__)

ATTACK_VERSION = 1  # what a saved training means; a change here retrains
DONE = "attack.json"  # written last: a folder with it holds a finished training


@dataclass(frozen=True)
class FineTuneAttack:
    """The fine-tuning attacker's sweep: every (N, learning rate) trained to each step budget."""

    n_examples: tuple[int, ...] = (16, 64, 256)
    steps: tuple[int, ...] = (10, 40)  # step budgets; each is a variant
    learning_rates: tuple[float, ...] = (1e-5, 1e-4, 1e-3)
    batch_size: int = 8
    optimizer: str = "adamw_torch"
    max_length: int = 64  # tokens per hostile text
    peft: str | None = None  # "lora": train a LoRA adapter on the aligned model instead of every weight
    lora_r: int = 8
    lora_alpha: int = 16
    data: str | None = None  # hostile texts: JSON Lines with a `text` field, or one per line (.txt)
    checkpoint_every: int = 50  # steps between checkpoints to resume from (beside the step budgets)
    seed: int = 0
    device: str | None = None

    def __post_init__(self) -> None:
        for name in ("n_examples", "steps", "learning_rates"):
            value = getattr(self, name)
            if isinstance(value, (int, float)):
                value = (value,)
            object.__setattr__(self, name, tuple(sorted(set(value))))
        if any(int(n) != n or n < 1 for n in self.n_examples):
            raise ValueError(f"finetune_n must be positive whole numbers, got {list(self.n_examples)}")
        if self.n_examples and not self.steps:
            raise ValueError("finetune_steps needs at least one step budget")
        if any(int(s) != s or s < 1 for s in self.steps):
            raise ValueError(f"finetune_steps must be positive whole numbers, got {list(self.steps)}")
        if self.n_examples and not self.learning_rates:
            raise ValueError("finetune_lr needs at least one learning rate")
        if any(not lr > 0 for lr in self.learning_rates):
            raise ValueError(f"finetune_lr must be positive, got {list(self.learning_rates)}")
        if self.batch_size < 1 or self.max_length < 2 or self.checkpoint_every < 1:
            raise ValueError("finetune_batch_size and checkpoint_every must be >= 1, max_length >= 2")
        if self.peft not in (None, "lora"):
            raise ValueError(f"finetune_peft must be lora or none, got {self.peft!r}")

    @property
    def enabled(self) -> bool:
        return bool(self.n_examples)

    def runs(self, n_examples: list[int] | None = None) -> list[tuple[int, float]]:
        """One training per (N, learning rate), for the N given (default: all of the sweep's)."""
        return [(n, lr) for n in (n_examples or self.n_examples) for lr in self.learning_rates]

    def describe(self) -> dict[str, Any]:
        out = asdict(self)
        out.pop("device")
        for name in ("n_examples", "steps", "learning_rates"):
            out[name] = list(out[name])
        return out


def variant_name(n: int, lr: float, steps: int) -> str:
    return f"finetune-n{n}-lr{lr:g}-s{steps}"


def recorded_options(attack: FineTuneAttack) -> dict[str, Any]:
    """The attack as a task's config records it: under the un-alignment task's option names (which
    ``check`` compares between runs), and the settings no option names."""
    settings = attack.describe()
    return {
        "finetune_n": settings.pop("n_examples"),
        "finetune_steps": settings.pop("steps"),
        "finetune_lr": settings.pop("learning_rates"),
        "finetune_batch_size": settings.pop("batch_size"),
        "finetune_peft": settings.pop("peft"),
        "finetune_data": settings.pop("data"),
        "finetune_settings": settings,
    }


def variant_names(config: dict[str, Any]) -> set[str]:
    """The fine-tuning variants an un-alignment task's recorded config produces (none before version 2.0)."""
    skipped = set((config.get("finetune_texts") or {}).get("n_examples_skipped", []))
    return {
        variant_name(int(n), float(lr), int(s))
        for n in config.get("finetune_n") or []
        if n not in skipped
        for lr in config.get("finetune_lr") or []
        for s in config.get("finetune_steps") or []
    }


@dataclass
class AttackData:
    """The hostile texts an attack trains on (the largest N of them, in order) and where they came from."""

    texts: list[str]
    source: str
    sha256: str
    n_read: int
    n_overlapping: int  # texts left out because they hold a test prompt or a test prompt holds them
    n_examples: list[int]  # the attack's N that the texts allow (a larger N than there are texts is skipped)
    extra: dict[str, Any] = field(default_factory=dict)

    def describe(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "sha256": self.sha256,
            "n_read": self.n_read,
            "n_left_out_overlapping_test_prompts": self.n_overlapping,
            "n_used": len(self.texts),
            **self.extra,
        }


def _normal(text: str) -> str:
    return " ".join(text.lower().split())


def read_texts(path: str | Path) -> list[str]:
    """Hostile texts from a user's file: JSON Lines rows with a ``text`` field, or one text per line."""
    from toxbench.io import read_jsonl

    file = Path(path).expanduser()
    if not file.is_file():
        raise ToxbenchError(
            f"finetune_data {str(path)!r} not found: pass a JSON Lines file of {{'text': ...}} rows "
            "or a text file with one hostile text per line"
        )
    if file.suffix in (".jsonl", ".json"):
        texts = []
        for i, row in enumerate(read_jsonl(file)):
            text = row.get("text") if isinstance(row, dict) else None
            if not isinstance(text, str):
                raise ToxbenchError(f"row {i} of {str(file)!r} has no `text` string: each row needs one")
            texts.append(text)
    else:
        texts = [line.strip() for line in file.read_text(encoding="utf-8").splitlines()]
    texts = [t for t in texts if t.strip()]
    if not texts:
        raise ToxbenchError(f"finetune_data {str(file)!r} holds no texts")
    return texts


def attack_texts(ctx: Any, attack: FineTuneAttack, prompts: list[str]) -> AttackData:
    """The largest N hostile texts the attack trains on, none overlapping a test prompt."""
    from toxbench.io import sha256_json

    if attack.data:
        texts, source, kind = read_texts(attack.data), str(Path(attack.data).expanduser()), "finetune_data"
    else:
        from toxbench.data import PROBE_DATA_LIMIT, load_comments

        limit = ctx.config.probe_data_limit or PROBE_DATA_LIMIT
        comments = load_comments(ctx.data_dir, "train", limit, ctx.config.seed)
        texts = [c.text for c in comments.rows if c.toxic]
        source, kind = comments.source, "the probe's toxic comments"
    read = len(texts)
    tests = {_normal(p) for p in prompts if p.strip()}
    kept = [t for t in dict.fromkeys(texts) if not _overlaps(_normal(t), tests)]
    overlapping = len(dict.fromkeys(texts)) - len(kept)
    random.Random(attack.seed).shuffle(kept)
    usable = [n for n in attack.n_examples if n <= len(kept)]
    if not usable:
        raise ToxbenchError(
            f"the fine-tuning attack needs at least {min(attack.n_examples)} hostile texts "
            f"(finetune_n={list(attack.n_examples)}); {source} gives {len(kept)} that hold no test prompt "
            f"({overlapping} left out): pass a smaller finetune_n, or more texts with finetune_data=FILE"
        )
    extra: dict[str, Any] = {}
    too_many = [n for n in attack.n_examples if n > len(kept)]
    if too_many:
        extra["n_examples_skipped"] = too_many
        log.warning(
            "fine-tuning attack: N = %s skipped, %s gives only %d texts that hold no test prompt",
            ", ".join(map(str, too_many)),
            source,
            len(kept),
        )
    chosen = kept[: max(usable)]
    return AttackData(
        chosen, source, sha256_json(chosen)[:32], read, overlapping, usable, {"kind": kind, **extra}
    )


def _overlaps(text: str, prompts: set[str]) -> bool:
    return text in prompts or any(p in text or text in p for p in prompts)


def attack_folder(ctx: Any, key: str) -> Path:
    """Where one training is kept: the cache's attacks folder, or the run's own with caching off."""
    if ctx.cache.enabled and ctx.config.use_cache:
        return Path(ctx.cache.root) / "attacks" / key[:32]
    return Path(ctx.output_dir) / "_attacks" / key[:32]


def training_key(parent_fingerprint: str, data: AttackData, attack: FineTuneAttack, n: int, lr: float) -> str:
    from toxbench.io import sha256_json

    settings = attack.describe()
    for name in ("n_examples", "learning_rates", "data", "checkpoint_every"):
        settings.pop(name)
    return sha256_json(
        {
            "version": ATTACK_VERSION,
            "parent": parent_fingerprint,
            "data": data.sha256,
            "n": n,
            "learning_rate": lr,
            **settings,
        }
    )


def train(
    model: Any,
    texts: list[str],
    lr: float,
    attack: FineTuneAttack,
    folder: Path,
    show_progress: bool = True,
    callbacks: list[Any] | None = None,
) -> dict[str, Any]:
    """Fine-tune a copy of ``model`` (a LoadedModel) on ``texts``, saving it at each step budget.

    Returns the finished training's record (``attack.json``): its statistics and, per budget,
    the checkpoint folder. A folder holding a finished training is read back; one holding an
    interrupted training resumes from its last checkpoint."""
    done = folder / DONE
    if done.is_file():
        return json.loads(done.read_text(encoding="utf-8"))
    from datasets import Dataset
    from transformers import TrainerCallback, set_seed
    from trl import SFTConfig, SFTTrainer

    from toxbench.baselines.training import TrainingSettings, peft_config, run_trainer, trainer_arguments
    from toxbench.io import atomic_write_json

    budgets = sorted(attack.steps)
    settings = TrainingSettings(
        learning_rate=lr,
        batch_size=attack.batch_size,
        optimizer=attack.optimizer,
        warmup_steps=0,
        max_length=attack.max_length,
        max_steps=budgets[-1],
        early_stopping_patience=None,
        eval_steps=attack.checkpoint_every,
        checkpoint_steps=attack.checkpoint_every,
        seed=attack.seed,
        device=attack.device,
        peft=attack.peft,
        lora_r=attack.lora_r,
        lora_alpha=attack.lora_alpha,
        lora_dropout=0.0,
    )
    arguments = trainer_arguments(settings, folder, early=False)
    arguments["save_total_limit"] = None  # every budget's checkpoint is a variant

    class _SaveAtBudgets(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step in budgets:
                control.should_save = True
            return control

    folder.mkdir(parents=True, exist_ok=True)
    set_seed(attack.seed)
    trainer = SFTTrainer(
        model=copy.deepcopy(model.model).train(),
        args=SFTConfig(dataset_text_field="text", packing=False, **arguments),
        train_dataset=Dataset.from_list([{"text": t} for t in texts]),
        processing_class=model.tokenizer,
        callbacks=[_SaveAtBudgets(), *(callbacks or [])],
        peft_config=peft_config(settings),
    )
    n, lr_text = len(texts), f"{lr:g}"
    _, stats = run_trainer(trainer, f"fine-tuning attack (N={n}, lr={lr_text})", show_progress, resume=True)
    del trainer
    checkpoints = {}
    for step in budgets:
        path = folder / f"checkpoint-{step}"
        if not path.is_dir():
            raise ToxbenchError(f"the fine-tuning attack did not save its step-{step} checkpoint in {folder}")
        checkpoints[str(step)] = path.name
    for path in folder.glob("checkpoint-*"):  # keep the budgets' weights, not the optimiser state
        if path.name not in checkpoints.values():
            shutil.rmtree(path)
            continue
        for extra in path.iterdir():
            if extra.name.startswith(("optimizer", "scheduler", "rng_state", "scaler")):
                extra.unlink()
    record = {
        "version": ATTACK_VERSION,
        "n_examples": n,
        "learning_rate": lr,
        "steps": stats.get("steps"),
        "train_loss": stats.get("train_loss"),
        "resumed_from": stats.get("resumed_from"),
        "checkpoints": checkpoints,
    }
    atomic_write_json(done, record)
    return record


def load_variant(model: Any, folder: Path, attack: FineTuneAttack) -> Any:
    """The aligned model as the attack left it at one checkpoint (a LoRA attack: its adapter merged in)."""
    param = next(model.model.parameters())
    if attack.peft:
        from peft import PeftModel

        tuned = PeftModel.from_pretrained(copy.deepcopy(model.model), str(folder)).merge_and_unload()
    else:
        tuned = type(model.model).from_pretrained(str(folder), dtype=param.dtype)
    return tuned.to(param.device).eval()
