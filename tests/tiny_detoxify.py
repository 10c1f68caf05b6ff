"""Tiny random Detoxify checkpoints in the released format, built offline (for tests).

Detoxify's ``load_checkpoint`` reads ``torch.load(checkpoint)`` as ``{"config": {"arch":
{"args": {model_type, model_name, tokenizer_name, num_classes}}, "dataset": {"args":
{"classes": [...]}}}, "state_dict": ...}`` and builds the transformers model and tokenizer
from ``huggingface_config_path`` (config.json and tokenizer files) instead of the hub. This
module writes both, for a randomly initialised model of about 120 kB with
the architecture, tokenizer class and label layout of the released ``model_type``.
"""

from __future__ import annotations

import string
from dataclasses import dataclass
from pathlib import Path

ORIGINAL_CLASSES = ("toxic", "severe_toxic", "obscene", "threat", "insult", "identity_hate")
UNBIASED_CLASSES = (
    "toxicity",
    "severe_toxicity",
    "obscene",
    "identity_attack",
    "insult",
    "threat",
    "sexual_explicit",
)
MAX_TOKENS = 64  # tokenizer model_max_length: longer texts are truncated, as with the real models
WORDS = (
    "the a an and or but not no yes you your i me my we our they them he she it is are was were "
    "be have has do does what why how this that there here of to in on for with at by from about "
    "good bad great terrible love hate like stupid idiot fool nice kind awful shut up please thanks "
    "people everyone nobody thing things time day world really very just so too"
).split()


@dataclass(frozen=True)
class _Arch:
    model_name: str
    tokenizer_name: str
    num_classes: int
    classes: tuple[str, ...]


ARCHS = {
    "original": _Arch("BertForSequenceClassification", "BertTokenizer", 6, ORIGINAL_CLASSES),
    # 16 outputs (7 toxicity labels, then 9 identity labels) as in Detoxify's unbiased training
    # config; Detoxify reports only the 7 named in "classes".
    "unbiased": _Arch("RobertaForSequenceClassification", "RobertaTokenizer", 16, UNBIASED_CLASSES),
    "multilingual": _Arch("XLMRobertaForSequenceClassification", "XLMRobertaTokenizer", 16, UNBIASED_CLASSES),
}


def _tokenizer(tokenizer_name: str):
    """A small tokenizer of the given transformers class, built from WORDS and characters."""
    import transformers

    cls = getattr(transformers, tokenizer_name)
    chars = string.ascii_lowercase + string.digits + string.punctuation
    if tokenizer_name == "BertTokenizer":  # WordPiece: whole words, else characters
        vocab = [
            "[PAD]",
            "[UNK]",
            "[CLS]",
            "[SEP]",
            "[MASK]",
            *WORDS,
            *chars,
            *(f"##{c}" for c in string.ascii_lowercase + string.digits),
        ]
        return cls(vocab={t: i for i, t in enumerate(vocab)}, model_max_length=MAX_TOKENS)
    if tokenizer_name == "RobertaTokenizer":  # byte-level BPE without merges: one token per byte
        from tokenizers.pre_tokenizers import ByteLevel

        vocab = ["<s>", "<pad>", "</s>", "<unk>", *sorted(ByteLevel.alphabet()), "<mask>"]
        return cls(vocab={t: i for i, t in enumerate(vocab)}, merges=[], model_max_length=MAX_TOKENS)
    if tokenizer_name == "XLMRobertaTokenizer":  # Unigram: "▁word" pieces, else characters
        pieces = [("<s>", 0.0), ("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), ("▁", -2.0)]
        pieces += [(f"▁{w}", -3.0) for w in WORDS] + [(c, -5.0) for c in chars + string.ascii_uppercase]
        return cls(vocab=[*pieces, ("<mask>", 0.0)], model_max_length=MAX_TOKENS)
    raise ValueError(f"no tiny tokenizer for {tokenizer_name!r}")


def make_tiny_checkpoint(out_dir: Path, model_type: str = "original", seed: int = 0) -> tuple[Path, Path]:
    """Write a tiny random Detoxify checkpoint and its config folder; return (checkpoint, folder).

    Load it with ``Detoxify(model_type, checkpoint=str(checkpoint),
    huggingface_config_path=str(folder))``: no network is used.
    """
    import torch
    import transformers

    if model_type not in ARCHS:
        raise ValueError(f"unknown Detoxify model_type {model_type!r}: choose one of {', '.join(ARCHS)}")
    arch = ARCHS[model_type]
    out_dir = Path(out_dir)
    config_dir = (out_dir / f"tiny-{model_type}-config").resolve()
    checkpoint = out_dir / f"tiny-{model_type}.ckpt"
    config_dir.mkdir(parents=True, exist_ok=True)

    tokenizer = _tokenizer(arch.tokenizer_name)
    model_class = getattr(transformers, arch.model_name)
    config = model_class.config_class(
        vocab_size=len(tokenizer),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=MAX_TOKENS + 2,
        num_labels=arch.num_classes,
        pad_token_id=tokenizer.pad_token_id,
        initializer_range=0.3,  # well above the default 0.02, so scores spread over (0, 1)
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = model_class(config)
    config.save_pretrained(config_dir)
    tokenizer.save_pretrained(config_dir)
    torch.save(
        {
            "config": {
                "arch": {
                    "args": {
                        # The released checkpoints name the hub model here ("bert-base-uncased", ...).
                        # Detoxify 0.5 calls ``from_pretrained`` on it even when huggingface_config_path
                        # is given, so a hub name would need the hub or its cache: name the folder.
                        "model_type": str(config_dir),
                        "model_name": arch.model_name,
                        "tokenizer_name": arch.tokenizer_name,
                        "num_classes": arch.num_classes,
                    }
                },
                "dataset": {"args": {"classes": list(arch.classes)}},
            },
            "state_dict": model.state_dict(),
        },
        checkpoint,
    )
    return checkpoint, config_dir
