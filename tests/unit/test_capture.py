"""Neuron capture and patching: running sums equal a brute force, hooks always go away, patches set what they say."""

from __future__ import annotations

import copy
from collections.abc import Callable

import numpy as np
import pytest
import torch
from transformers import PreTrainedTokenizerFast

from toxbench.backends.base import SamplingConfig
from toxbench.backends.hf import HFBackend
from toxbench.mech.capture import capture_neuron_sums
from toxbench.mech.hooks import active_hook_count, mlp_activation_hooks, patch_mlp_activations, patch_to_means
from toxbench.mech.neurons import neuron_adapter
from toxbench.organism.lm import train_tokenizer

# The fixtures of tests/unit/conftest.py.
TinyModel = Callable[..., torch.nn.Module]

WORDS = "the cat dog sat on a mat and ran far away from big red house while small birds sang songs".split()
PROMPTS = [
    "the cat",
    "a dog ran far away from the big red house",
    "birds",
    "small birds sang songs on a mat",
    "the mat and",
    "red",
]
MAX_NEW_TOKENS = 8


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory: pytest.TempPathFactory) -> PreTrainedTokenizerFast:
    """A byte-level BPE trained, as the organism's is, on a few hundred random sentences."""
    rng = np.random.default_rng(0)
    corpus = [" ".join(rng.choice(WORDS, size=rng.integers(4, 12))) + "." for _ in range(300)]
    return train_tokenizer(corpus, 300, tmp_path_factory.mktemp("tokenizer"))


def eos_prone(tiny_model: TinyModel, family: str, tokenizer: PreTrainedTokenizerFast) -> torch.nn.Module:
    """A tiny model sized to the tokenizer whose EOS unembedding is pushed along a fixed random direction.

    Its logit then wins in some contexts only, so some greedy continuations stop early and others do not.
    """
    model = tiny_model(family, vocab_size=len(tokenizer))
    unembed = model.get_output_embeddings().weight
    u = torch.randn(unembed.shape[1], generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        unembed[tokenizer.eos_token_id] = 4.0 * unembed.norm(dim=1).mean() * u / u.norm()
    return model


def record(model: torch.nn.Module, ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """One forward of ``ids``: every layer's activations [L, B, T, d_mlp] and MLP outputs [L, B, T, d_model]."""
    adapter = neuron_adapter(model)
    acts: dict[int, torch.Tensor] = {}
    outs: dict[int, torch.Tensor] = {}
    handles = [
        adapter.mlp(layer).register_forward_hook(lambda _m, _i, out, layer=layer: outs.setdefault(layer, out))
        for layer in range(adapter.n_layers)
    ]
    try:
        with (
            mlp_activation_hooks(model, range(adapter.n_layers), lambda layer, a: acts.setdefault(layer, a)),
            torch.no_grad(),
        ):
            model(ids)
    finally:
        for handle in handles:
            handle.remove()
    layers = range(adapter.n_layers)
    return torch.stack([acts[layer] for layer in layers]), torch.stack([outs[layer] for layer in layers])


@pytest.mark.parametrize("family", ["gpt2", "gpt_neox", "llama", "gemma2"])
def test_running_sums_equal_a_brute_force(
    family: str, tiny_model: TinyModel, tokenizer: PreTrainedTokenizerFast
) -> None:
    """Batched, cached greedy generation under capture sums the same positions as full per-prompt forwards.

    Those positions are the ones whose output was a generated token: the prompt's last, then every fed
    generated token up to the EOS, which (and the padding after it) no longer counts.
    """
    model = eos_prone(tiny_model, family, tokenizer)
    eos = tokenizer.eos_token_id
    with capture_neuron_sums(model, tokenizer) as acc:
        completions = HFBackend(model, tokenizer, batch_size=3).generate(
            PROMPTS, SamplingConfig(max_new_tokens=MAX_NEW_TOKENS)
        )
    sums = acc.sums()
    assert active_hook_count(model) == 0

    adapter = neuron_adapter(model)
    act = np.zeros((adapter.n_layers, adapter.d_mlp))
    mlp_out = np.zeros((adapter.n_layers, adapter.d_model))
    steps = 0
    stopped = 0
    for prompt, [completion] in zip(PROMPTS, completions, strict=True):
        prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
        generated = completion.token_ids + ([eos] if len(completion.token_ids) < MAX_NEW_TOKENS else [])
        stopped += generated[-1] == eos
        seq = prompt_ids + generated
        acts, outs = record(model, torch.tensor([seq]))
        counted = slice(len(prompt_ids) - 1, len(seq) - 1)
        act += acts[:, 0, counted].double().sum(1).numpy()
        mlp_out += outs[:, 0, counted].double().sum(1).numpy()
        steps += len(generated)

    assert 0 < stopped < len(PROMPTS)  # the EOS masking is exercised, and so is a full-length continuation
    assert sums.steps == steps < len(PROMPTS) * MAX_NEW_TOKENS
    np.testing.assert_allclose(sums.act, act, atol=1e-4, rtol=0)
    np.testing.assert_allclose(sums.mlp_out, mlp_out, atol=1e-4, rtol=0)


def test_hooks_are_removed_when_a_capture_raises(
    tiny_model: TinyModel, ids: torch.Tensor, tokenizer: PreTrainedTokenizerFast
) -> None:
    """An error in the middle of a capture leaves no hook behind."""
    model = tiny_model("llama")
    n_layers = neuron_adapter(model).n_layers
    with pytest.raises(RuntimeError, match="inside"), capture_neuron_sums(model, tokenizer) as acc:
        with torch.no_grad():
            model(ids)
        assert acc.steps == len(ids)
        assert active_hook_count(model) == 1 + 2 * n_layers  # the model's pre-hook, each MLP and activation
        raise RuntimeError("inside")
    assert active_hook_count(model) == 0


def test_hooks_are_removed_when_a_patched_run_raises(
    tiny_model: TinyModel, ids: torch.Tensor, logits: Callable[[torch.nn.Module], torch.Tensor]
) -> None:
    """``patch_to_means`` hooks only layers with a masked neuron, and removes them on error."""
    model = tiny_model("gpt2")
    adapter = neuron_adapter(model)
    before = logits(model)
    masks = np.zeros((adapter.n_layers, adapter.d_mlp), dtype=bool)
    masks[1, [3, 9]] = True
    target = np.full(masks.shape, 2.0)
    with pytest.raises(RuntimeError, match="inside"), patch_to_means(model, masks, target):
        assert active_hook_count(model) == 1
        assert not torch.equal(logits(model), before)
        raise RuntimeError("inside")
    assert active_hook_count(model) == 0
    torch.testing.assert_close(logits(model), before, atol=0, rtol=0)


def test_patching_every_neuron_reproduces_another_models_mlp_writing(
    family: str, tiny_model: TinyModel, ids: torch.Tensor
) -> None:
    """B is A with other keys (same attention, values, norms): A with all of B's activations patched in is B."""
    model_a = tiny_model(family)
    model_b = copy.deepcopy(model_a)
    adapter_b = neuron_adapter(model_b)
    torch.manual_seed(1)
    with torch.no_grad():
        for layer in range(adapter_b.n_layers):
            key = adapter_b.key_param(layer).param
            key.add_(torch.randn_like(key) * key.std())
    acts_b, outs_b = record(model_b, ids)
    _, outs_a = record(model_a, ids)
    assert not torch.allclose(outs_a, outs_b, atol=1e-3)

    patches = dict.fromkeys(range(adapter_b.n_layers), lambda layer, _a: acts_b[layer])
    with patch_mlp_activations(model_a, patches):
        acts_patched, outs_patched = record(model_a, ids)
    torch.testing.assert_close(acts_patched, acts_b, atol=0, rtol=0)
    for layer in range(adapter_b.n_layers):
        torch.testing.assert_close(outs_patched[layer], outs_b[layer], atol=1e-5, rtol=1e-5)


def test_patched_to_aligned_sets_exactly_the_masked_neurons_at_the_last_position(
    family: str, tiny_model: TinyModel, ids: torch.Tensor
) -> None:
    """Seen after the patch, a masked neuron's last-position activation is the target; all else is as it came in."""
    model = tiny_model(family)
    adapter = neuron_adapter(model)
    rng = np.random.default_rng(0)
    masks = rng.random((adapter.n_layers, adapter.d_mlp)) < 0.3
    target = rng.normal(size=masks.shape)
    layers = range(adapter.n_layers)
    incoming: dict[int, torch.Tensor] = {}
    patched: dict[int, torch.Tensor] = {}
    with (
        mlp_activation_hooks(model, layers, lambda layer, a: incoming.setdefault(layer, a.clone())),
        patch_to_means(model, masks, target),
        mlp_activation_hooks(model, layers, lambda layer, a: patched.setdefault(layer, a)),
        torch.no_grad(),
    ):
        model(ids)

    for layer in layers:
        mask = torch.from_numpy(masks[layer])
        last, last_in = patched[layer][:, -1], incoming[layer][:, -1]
        expected = torch.from_numpy(target[layer][masks[layer]]).float().expand(len(ids), -1)
        torch.testing.assert_close(last[:, mask], expected, atol=0, rtol=0)
        assert not torch.allclose(last_in[:, mask], expected, atol=1e-3)
        torch.testing.assert_close(last[:, ~mask], last_in[:, ~mask], atol=0, rtol=0)
        torch.testing.assert_close(patched[layer][:, :-1], incoming[layer][:, :-1], atol=0, rtol=0)
