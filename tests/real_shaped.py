"""Tiny random models shaped like the real families users bring, with their real tokenizers' behaviour.

No hub is reachable, so each family is rebuilt small from a config that keeps its quirks,
and its tokenizer is a BPE trained here, wrapped in the family's own tokenizer class with
its real special-token settings:

| family | tokenizer (class, BOS) | config quirks kept |
|---|---|---|
| gpt2 | GPT2TokenizerFast, no BOS | 1,024 positions, tied embeddings |
| llama2 | LlamaTokenizer (SentencePiece-style BPE, byte fallback), BOS ``<s>`` | 4,096 positions |
| llama3 | PreTrainedTokenizerFast, BOS ``<|begin_of_text|>`` by its post-processor | 131,072 positions, llama3 RoPE scaling, GQA |
| mistral | LlamaTokenizer, BOS ``<s>`` | GQA, sliding window, 32,768 positions |
| gemma | GemmaTokenizer, BOS ``<bos>``, its own ``<pad>`` | tied embeddings, head_dim ≠ hidden/heads |
| gemma2 | GemmaTokenizer, BOS ``<bos>`` | post-norms, attention and final logit soft-capping, sliding window |
| llama3-instruct | llama3's, with the header and turn tokens and Llama-3-Instruct's chat template (which writes BOS itself); EOS ``<|eot_id|>`` | llama3's |
| qwen2-instruct | qwen2's, EOS ``<|im_end|>``, a ChatML chat template that writes a default system turn when none is given | qwen2's |
| qwen2 | Qwen2Tokenizer (byte-level BPE), no BOS token at all, EOS = pad = ``<|endoftext|>`` | q/k/v biases, GQA, rope θ 1e6, tied embeddings (the small sizes), 32,768 positions |
| qwen3 | qwen2's | q/k RMSNorm per head, head_dim ≠ hidden/heads, no q/k/v biases, GQA, 40,960 positions |
| gemma3 | GemmaTokenizer, BOS ``<bos>``, turn tokens | text-only Gemma3ForCausalLM: sliding and full attention layers mixed, q/k norms, post-norms, local and global rope bases, tied embeddings, 131,072 positions |
| phi3 | LlamaTokenizer with ``<s>`` defined but not added (``add_bos_token`` false), EOS ``<|endoftext|>`` | fused ``qkv_proj`` and ``gate_up_proj`` |
| olmo2 | GPT2TokenizerFast (byte-level BPE), no BOS added, its own ``<|pad|>`` | norms after attention and MLP (no pre-norms), q/k norms over the whole projection, rope θ 5e5 |
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

FAMILIES = (
    "gpt2",
    "llama2",
    "llama3",
    "mistral",
    "gemma",
    "gemma2",
    "qwen2",
    "qwen3",
    "gemma3",
    "phi3",
    "olmo2",
)
BOS_FAMILIES = ("llama2", "llama3", "mistral", "gemma", "gemma2", "gemma3")
MODEL_TYPE = {
    "gpt2": "gpt2",
    "llama2": "llama",
    "llama3": "llama",
    "mistral": "mistral",
    "gemma": "gemma",
    "gemma2": "gemma2",
    "qwen2": "qwen2",
    "qwen3": "qwen3",
    "gemma3": "gemma3_text",
    "phi3": "phi3",
    "olmo2": "olmo2",
}


# Llama-3-Instruct's chat template, as its tokenizer_config.json carries it.
LLAMA3_CHAT_TEMPLATE = (
    "{% set loop_messages = messages %}{% for message in loop_messages %}"
    "{% set content = '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'"
    "+ message['content'] | trim + '<|eot_id|>' %}{% if loop.index0 == 0 %}"
    "{% set content = bos_token + content %}{% endif %}{{ content }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}"
)


# A ChatML template as Qwen2.5-Instruct's works: a default system turn when the messages bring none.
QWEN2_CHAT_TEMPLATE = (
    "{% for message in messages %}{% if loop.first and message['role'] != 'system' %}"
    "{{ '<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n' }}{% endif %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


def _metaspace_bpe(corpus: Sequence[str], specials: list[str], vocab_size: int):
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE(unk_token="<unk>", byte_fallback=True))
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="first", split=False)
    byte_tokens = [f"<0x{i:02X}>" for i in range(256)]
    tok.train_from_iterator(
        corpus,
        trainers.BpeTrainer(
            vocab_size=vocab_size, special_tokens=specials + byte_tokens, show_progress=False
        ),
    )
    model = json.loads(tok.to_str())["model"]
    merges = [tuple(m) if isinstance(m, list) else tuple(m.split(" ")) for m in model["merges"]]
    return tok.get_vocab(), merges


def _byte_level_bpe(corpus: Sequence[str], specials: list[str], vocab_size: int):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(
        corpus,
        trainers.BpeTrainer(
            vocab_size=vocab_size,
            special_tokens=specials,
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
            show_progress=False,
        ),
    )
    return tok


def build_tokenizer(family: str, corpus: Sequence[str], vocab_size: int = 600):
    """The family's tokenizer class around a BPE trained on ``corpus``, with the family's special tokens."""
    from tokenizers import processors
    from transformers import (
        GemmaTokenizer,
        GPT2TokenizerFast,
        LlamaTokenizer,
        PreTrainedTokenizerFast,
        Qwen2Tokenizer,
    )

    if family == "gpt2":
        tok = _byte_level_bpe(corpus, ["<|endoftext|>"], vocab_size)
        return GPT2TokenizerFast(
            tokenizer_object=tok,
            bos_token="<|endoftext|>",
            eos_token="<|endoftext|>",
            unk_token="<|endoftext|>",
        )
    if family in ("llama2", "mistral"):
        vocab, merges = _metaspace_bpe(corpus, ["<unk>", "<s>", "</s>"], vocab_size)
        return LlamaTokenizer(vocab=vocab, merges=merges, add_bos_token=True, add_eos_token=False)
    if family == "llama3-instruct":
        specials = [
            "<|begin_of_text|>",
            "<|end_of_text|>",
            "<|start_header_id|>",
            "<|end_header_id|>",
            "<|eot_id|>",
        ]
        tok = _byte_level_bpe(corpus, specials, vocab_size)
        bos = tok.token_to_id("<|begin_of_text|>")
        tok.post_processor = processors.TemplateProcessing(
            single="<|begin_of_text|> $A",
            pair="<|begin_of_text|> $A <|begin_of_text|> $B",
            special_tokens=[("<|begin_of_text|>", bos)],
        )
        instruct = PreTrainedTokenizerFast(
            tokenizer_object=tok, bos_token="<|begin_of_text|>", eos_token="<|eot_id|>"
        )
        instruct.chat_template = LLAMA3_CHAT_TEMPLATE
        return instruct
    if family == "llama3":
        tok = _byte_level_bpe(corpus, ["<|begin_of_text|>", "<|end_of_text|>"], vocab_size)
        bos = tok.token_to_id("<|begin_of_text|>")
        tok.post_processor = processors.TemplateProcessing(
            single="<|begin_of_text|> $A",
            pair="<|begin_of_text|> $A <|begin_of_text|> $B",
            special_tokens=[("<|begin_of_text|>", bos)],
        )
        return PreTrainedTokenizerFast(
            tokenizer_object=tok, bos_token="<|begin_of_text|>", eos_token="<|end_of_text|>"
        )
    if family in ("gemma", "gemma2"):
        vocab, merges = _metaspace_bpe(corpus, ["<pad>", "<eos>", "<bos>", "<unk>", "<mask>"], vocab_size)
        return GemmaTokenizer(vocab=vocab, merges=merges, add_bos_token=True, add_eos_token=False)
    if family == "gemma3":
        specials = ["<pad>", "<eos>", "<bos>", "<unk>", "<mask>", "<start_of_turn>", "<end_of_turn>"]
        vocab, merges = _metaspace_bpe(corpus, specials, vocab_size)
        return GemmaTokenizer(
            vocab=vocab,
            merges=merges,
            add_bos_token=True,
            add_eos_token=False,
            additional_special_tokens=["<start_of_turn>", "<end_of_turn>"],
        )
    if family == "qwen2-instruct":
        instruct = build_tokenizer("qwen2", corpus, vocab_size)
        instruct.eos_token = "<|im_end|>"
        instruct.chat_template = QWEN2_CHAT_TEMPLATE
        return instruct
    if family in ("qwen2", "qwen3"):
        specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
        tok = _byte_level_bpe(corpus, specials, vocab_size)
        model = json.loads(tok.to_str())["model"]
        merges = [tuple(m) if isinstance(m, list) else tuple(m.split(" ")) for m in model["merges"]]
        qwen = Qwen2Tokenizer(vocab=tok.get_vocab(), merges=merges)
        qwen.add_special_tokens({"additional_special_tokens": ["<|im_start|>", "<|im_end|>"]})
        return qwen
    if family == "phi3":
        vocab, merges = _metaspace_bpe(corpus, ["<unk>", "<s>", "</s>", "<|endoftext|>"], vocab_size)
        return LlamaTokenizer(
            vocab=vocab,
            merges=merges,
            add_bos_token=False,
            add_eos_token=False,
            eos_token="<|endoftext|>",
            pad_token="<|endoftext|>",
        )
    if family == "olmo2":
        tok = _byte_level_bpe(corpus, ["<|endoftext|>", "<|pad|>"], vocab_size)
        return GPT2TokenizerFast(
            tokenizer_object=tok,
            bos_token="<|endoftext|>",
            eos_token="<|endoftext|>",
            unk_token="<|endoftext|>",
            pad_token="<|pad|>",
        )
    raise KeyError(family)


def build_config(family: str, tokenizer, **overrides: Any):
    """A tiny config of the family with its real quirks; token ids from ``tokenizer``."""
    from transformers import (
        Gemma2Config,
        Gemma3TextConfig,
        GemmaConfig,
        GPT2Config,
        LlamaConfig,
        MistralConfig,
        Olmo2Config,
        Phi3Config,
        Qwen2Config,
        Qwen3Config,
    )

    ids = {
        "vocab_size": len(tokenizer),
        "bos_token_id": tokenizer.bos_token_id,
        "eos_token_id": tokenizer.eos_token_id,
        "pad_token_id": tokenizer.pad_token_id
        if tokenizer.pad_token_id is not None
        else tokenizer.eos_token_id,
    }
    gated = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4)
    if family == "gpt2":
        cfg = GPT2Config(n_layer=2, n_embd=32, n_head=2, n_positions=1024, **ids)
    elif family == "llama2":
        cfg = LlamaConfig(
            num_key_value_heads=4, max_position_embeddings=4096, tie_word_embeddings=False, **gated, **ids
        )
    elif family in ("llama3", "llama3-instruct"):
        cfg = LlamaConfig(
            num_key_value_heads=2,
            max_position_embeddings=131072,
            rope_theta=500000.0,
            rope_scaling={
                "rope_type": "llama3",
                "factor": 8.0,
                "low_freq_factor": 1.0,
                "high_freq_factor": 4.0,
                "original_max_position_embeddings": 8192,
            },
            tie_word_embeddings=False,
            **gated,
            **ids,
        )
    elif family == "mistral":
        cfg = MistralConfig(
            num_key_value_heads=2,
            max_position_embeddings=32768,
            sliding_window=4096,
            tie_word_embeddings=False,
            **gated,
            **ids,
        )
    elif family == "gemma":
        cfg = GemmaConfig(
            num_key_value_heads=1,
            head_dim=16,
            max_position_embeddings=8192,
            tie_word_embeddings=True,
            **gated,
            **ids,
        )
    elif family == "gemma2":
        cfg = Gemma2Config(
            num_key_value_heads=2,
            head_dim=16,
            max_position_embeddings=8192,
            sliding_window=4096,
            final_logit_softcapping=30.0,
            attn_logit_softcapping=50.0,
            query_pre_attn_scalar=16,
            tie_word_embeddings=True,
            **gated,
            **ids,
        )
    elif family in ("qwen2", "qwen2-instruct"):
        cfg = Qwen2Config(
            num_key_value_heads=2,
            max_position_embeddings=32768,
            rope_theta=1000000.0,
            use_sliding_window=False,
            tie_word_embeddings=True,
            **gated,
            **ids,
        )
    elif family == "qwen3":
        cfg = Qwen3Config(
            num_key_value_heads=2,
            head_dim=16,
            max_position_embeddings=40960,
            rope_theta=1000000.0,
            tie_word_embeddings=True,
            **gated,
            **ids,
        )
    elif family == "gemma3":
        cfg = Gemma3TextConfig(
            num_key_value_heads=2,
            head_dim=16,
            max_position_embeddings=131072,
            sliding_window=512,
            layer_types=["sliding_attention", "full_attention"],
            query_pre_attn_scalar=16,
            tie_word_embeddings=True,
            **gated,
            **ids,
        )
    elif family == "phi3":
        cfg = Phi3Config(
            num_key_value_heads=4,
            max_position_embeddings=4096,
            original_max_position_embeddings=4096,
            tie_word_embeddings=False,
            **gated,
            **ids,
        )
    elif family == "olmo2":
        cfg = Olmo2Config(
            num_key_value_heads=4,
            max_position_embeddings=4096,
            rope_theta=500000.0,
            tie_word_embeddings=False,
            **gated,
            **ids,
        )
    else:
        raise KeyError(family)
    for key, value in overrides.items():
        setattr(cfg, key, value)
    return cfg


def build_model(family: str, tokenizer, seed: int = 0, **overrides: Any) -> torch.nn.Module:
    """A seeded random model of the family, every parameter perturbed (non-zero norms' gains and biases)."""
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(build_config(family, tokenizer, **overrides)).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    return model


def save_pair(family: str, corpus: Sequence[str], root: Path) -> tuple[Path, Path]:
    """A base model and an 'aligned' one (its MLP keys perturbed), saved with their tokenizer."""
    from toxbench.mech.neurons import neuron_adapter

    tokenizer = build_tokenizer(family, corpus)
    base = build_model(family, tokenizer)
    aligned = build_model(family, tokenizer)
    adapter = neuron_adapter(aligned)
    torch.manual_seed(1)
    with torch.no_grad():
        for layer in range(adapter.n_layers):
            key = adapter.key_param(layer).param
            key.add_(0.05 * torch.randn_like(key))
    dirs = root / f"{family}-base", root / f"{family}-aligned"
    for model, folder in zip((base, aligned), dirs, strict=True):
        model.save_pretrained(folder, safe_serialization=True)
        tokenizer.save_pretrained(folder)
    return dirs


def elicitation_run(base_dir: Path, aligned_dir: Path, data_dir: Path, **overrides: Any) -> dict[str, Any]:
    """``RunConfig`` arguments of a short elicitation run of a saved pair, scored by the lexicon on
    ``data_dir`` (the organism's data)."""
    return dict(
        model=str(base_dir),
        aligned=str(aligned_dir),
        tasks=["elicitation"],
        scorer="lexicon",
        data_dir=data_dir,
        limit=4,
        **overrides,
    )
