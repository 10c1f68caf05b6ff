"""Tiny random models of every supported MLP family, built from configs (no hub), for the mechanistic unit tests."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from typing import Any

import pytest
import torch
from transformers import (
    Gemma2Config,
    Gemma2ForCausalLM,
    Gemma3ForCausalLM,
    Gemma3TextConfig,
    GemmaConfig,
    GemmaForCausalLM,
    GPT2Config,
    GPT2LMHeadModel,
    GPTJConfig,
    GPTJForCausalLM,
    GPTNeoXConfig,
    GPTNeoXForCausalLM,
    LlamaConfig,
    LlamaForCausalLM,
    MistralConfig,
    MistralForCausalLM,
    Olmo2Config,
    Olmo2ForCausalLM,
    Phi3Config,
    Phi3ForCausalLM,
    Qwen2Config,
    Qwen2ForCausalLM,
    Qwen3Config,
    Qwen3ForCausalLM,
)

from toxbench.mech.neurons import neuron_adapter

TinyModel = Callable[..., torch.nn.Module]
PreActivationScaled = Callable[
    [torch.nn.Module, Mapping[int, torch.Tensor], float], AbstractContextManager[None]
]

_GATED: dict[str, Any] = dict(
    hidden_size=32,
    intermediate_size=64,
    num_hidden_layers=2,
    num_attention_heads=2,
    num_key_value_heads=2,
    max_position_embeddings=64,
)
_BUILDERS: dict[str, Callable[[int], torch.nn.Module]] = {
    "gpt2": lambda vocab: GPT2LMHeadModel(
        GPT2Config(n_layer=2, n_embd=32, n_head=2, n_positions=64, vocab_size=vocab)
    ),
    "gpt_neox": lambda vocab: GPTNeoXForCausalLM(
        GPTNeoXConfig(
            hidden_size=32,
            num_hidden_layers=2,
            num_attention_heads=2,
            intermediate_size=64,
            vocab_size=vocab,
            max_position_embeddings=64,
        )
    ),
    "llama": lambda vocab: LlamaForCausalLM(LlamaConfig(vocab_size=vocab, **_GATED)),
    "llama-mlp_bias": lambda vocab: LlamaForCausalLM(LlamaConfig(mlp_bias=True, vocab_size=vocab, **_GATED)),
    "mistral": lambda vocab: MistralForCausalLM(MistralConfig(vocab_size=vocab, **_GATED)),
    "gemma": lambda vocab: GemmaForCausalLM(GemmaConfig(head_dim=16, vocab_size=vocab, **_GATED)),
    "gemma2": lambda vocab: Gemma2ForCausalLM(Gemma2Config(head_dim=16, vocab_size=vocab, **_GATED)),
    # Found by structure (no table row): gated, fused gated, and dense with nn.Linear.
    "qwen2": lambda vocab: Qwen2ForCausalLM(Qwen2Config(vocab_size=vocab, **_GATED)),
    "qwen3": lambda vocab: Qwen3ForCausalLM(Qwen3Config(head_dim=16, vocab_size=vocab, **_GATED)),
    "gemma3_text": lambda vocab: Gemma3ForCausalLM(Gemma3TextConfig(head_dim=16, vocab_size=vocab, **_GATED)),
    "phi3": lambda vocab: Phi3ForCausalLM(Phi3Config(vocab_size=vocab, pad_token_id=0, **_GATED)),
    "olmo2": lambda vocab: Olmo2ForCausalLM(Olmo2Config(vocab_size=vocab, pad_token_id=0, **_GATED)),
    "gptj": lambda vocab: GPTJForCausalLM(
        GPTJConfig(n_layer=2, n_embd=32, n_head=2, n_positions=64, rotary_dim=8, n_inner=64, vocab_size=vocab)
    ),
}
IDS = torch.randint(0, 100, (2, 7), generator=torch.Generator().manual_seed(1))


def _tiny_model(family: str, vocab_size: int = 100) -> torch.nn.Module:
    """A seeded random model; every parameter is perturbed so that biases are not zero."""
    torch.manual_seed(0)
    model = _BUILDERS[family](vocab_size).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    return model


def _logits(model: torch.nn.Module) -> torch.Tensor:
    """The model's logits on the fixed batch ``IDS``."""
    with torch.no_grad():
        return model(IDS).logits


@contextmanager
def _pre_activation_scaled(
    model: torch.nn.Module, chosen: Mapping[int, torch.Tensor], factor: float
) -> Iterator[None]:
    """While active, the chosen neurons' pre-activation x·k_i + b_i becomes s·(x·k_i) + b_i (gated: the gate's).

    What scaling their keys by s with the biases kept does, written as hooks on the nonlinearity's input.
    """
    adapter = neuron_adapter(model)
    handles = []
    for layer, idx in chosen.items():
        bias = adapter.key_bias(layer)
        b = torch.zeros(adapter.d_mlp) if bias is None else bias.detach()

        def scale(_m: torch.nn.Module, args: tuple, idx: torch.Tensor = idx, b: torch.Tensor = b) -> tuple:
            pre = args[0].clone()
            pre[..., idx] = factor * (pre[..., idx] - b[idx]) + b[idx]
            return (pre,)

        handles.append(adapter.activation_fn(layer).register_forward_pre_hook(scale))
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


@pytest.fixture(params=tuple(_BUILDERS))
def family(request: pytest.FixtureRequest) -> str:
    """Each supported family in turn; a test's own ``parametrize("family", ...)`` narrows it."""
    return request.param


@pytest.fixture
def tiny_model() -> TinyModel:
    """``tiny_model(family, vocab_size=100)``: a fresh seeded random model of that family."""
    return _tiny_model


@pytest.fixture
def ids() -> torch.Tensor:
    """A fixed [2, 7] batch of token ids (vocabulary 100)."""
    return IDS


@pytest.fixture
def logits() -> Callable[[torch.nn.Module], torch.Tensor]:
    """``logits(model)``: the model's logits on the ``ids`` batch."""
    return _logits


@pytest.fixture
def pre_activation_scaled() -> PreActivationScaled:
    """``pre_activation_scaled(model, {layer: idx}, s)``: the hook equivalent of scaling those neurons' keys."""
    return _pre_activation_scaled
