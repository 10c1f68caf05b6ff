"""Attribution statistics: captured during generation (one pass) against Yang et al.'s way
(generate, then a second forward pass over prompt + continuation with stored activations).
Same model, same prompts, same run, same statistics; the comparison's target is 2.5x."""

from __future__ import annotations

import pytest
import torch

from toxbench.backends.base import SamplingConfig
from toxbench.backends.hf import HFBackend
from toxbench.mech.capture import capture_neuron_sums
from toxbench.mech.hooks import mlp_activation_hooks
from toxbench.mech.neurons import neuron_adapter

GREEDY = SamplingConfig(max_new_tokens=20)


@pytest.fixture(scope="module")
def lm(bench_organism):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(bench_organism.base_dir)
    return AutoModelForCausalLM.from_pretrained(bench_organism.base_dir).eval(), tok


def one_pass(model, tok, prompts):
    with capture_neuron_sums(model, tok) as acc:
        HFBackend(model, tok, batch_size="auto").generate(prompts, GREEDY)
    return acc.sums().act


def generate_then_forward(model, tok, prompts):
    """Generate, then re-run every prompt + continuation, storing the activations and summing
    those at the generation steps' positions."""
    outs = HFBackend(model, tok, batch_size="auto").generate(prompts, GREEDY)
    adapter = neuron_adapter(model)
    total = torch.zeros(adapter.n_layers, adapter.d_mlp, dtype=torch.float64)
    for start in range(0, len(prompts), 16):
        batch = prompts[start : start + 16]
        stored: dict[int, torch.Tensor] = {}
        seqs = [
            tok(p, add_special_tokens=False).input_ids + o[0].token_ids
            for p, o in zip(batch, outs[start : start + 16], strict=True)
        ]
        width = max(len(s) for s in seqs)
        ids = torch.full((len(seqs), width), tok.eos_token_id)
        for row, s in enumerate(seqs):
            ids[row, : len(s)] = torch.tensor(s)
        with mlp_activation_hooks(model, range(adapter.n_layers), stored.__setitem__), torch.inference_mode():
            model(ids)
        for row, (p, o) in enumerate(zip(batch, outs[start : start + 16], strict=True)):
            first = len(tok(p, add_special_tokens=False).input_ids) - 1
            last = first + len(o[0].token_ids) + (0 if len(o[0].token_ids) == GREEDY.max_new_tokens else 1)
            for layer, acts in stored.items():
                total[layer] += acts[row, first:last].double().sum(0)
    return total.numpy()


@pytest.mark.benchmark(group="attribution statistics, challenging prompts")
def test_generate_then_forward(benchmark, compare, lm, challenging_prompts) -> None:
    model, tok = lm
    result = benchmark.pedantic(
        generate_then_forward, args=(model, tok, challenging_prompts), rounds=5, iterations=1, warmup_rounds=1
    )
    compare(benchmark, "capture", "baseline")
    assert result.shape[0] == neuron_adapter(model).n_layers


@pytest.mark.benchmark(group="attribution statistics, challenging prompts")
def test_capture_during_generation(benchmark, compare, lm, challenging_prompts) -> None:
    model, tok = lm
    result = benchmark.pedantic(
        one_pass, args=(model, tok, challenging_prompts), rounds=5, iterations=1, warmup_rounds=1
    )
    compare(benchmark, "capture", "candidate")
    # The same statistics both ways (summation order aside).
    expected = generate_then_forward(model, tok, challenging_prompts)
    assert abs(result - expected).max() <= 1e-6 * abs(expected).max()
