"""The hf backend against the seeds' pattern (fixed batches of 16, dataset order), same prompts, same run.

Run with ``make bench``; pytest-benchmark prints both, and the group's table gives the ratio.
"""

from __future__ import annotations

import pytest
import torch

from harness.backends.base import SamplingConfig
from harness.backends.hf import HFBackend


@pytest.fixture(scope="module")
def lm(bench_organism):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(bench_organism.base_dir)
    return AutoModelForCausalLM.from_pretrained(bench_organism.base_dir).eval(), tok


def seeds_pattern(model, tok, prompts: list[str]) -> list[list[int]]:
    """What the papers' code does: batches of 16 in dataset order, left padding, greedy, 20 tokens."""
    tok.padding_side = "left"
    out = []
    for start in range(0, len(prompts), 16):
        batch = tok(prompts[start : start + 16], return_tensors="pt", padding=True)
        with torch.no_grad():
            gen = model.generate(**batch, max_new_tokens=20, do_sample=False, pad_token_id=tok.eos_token_id)
        out += gen[:, batch.input_ids.shape[1] :].tolist()
    return out


@pytest.mark.benchmark(group="greedy generation, challenging prompts")
def test_seeds_pattern_batches_of_16(benchmark, lm, challenging_prompts) -> None:
    model, tok = lm
    outs = benchmark.pedantic(seeds_pattern, args=(model, tok, challenging_prompts), rounds=2, iterations=1)
    assert len(outs) == len(challenging_prompts)


@pytest.mark.benchmark(group="greedy generation, challenging prompts")
def test_hf_backend_sorted_auto_batches(benchmark, lm, challenging_prompts) -> None:
    model, tok = lm
    backend = HFBackend(model, tok, batch_size="auto")
    outs = benchmark.pedantic(
        backend.generate,
        args=(challenging_prompts, SamplingConfig(max_new_tokens=20)),
        rounds=2,
        iterations=1,
    )
    assert len(outs) == len(challenging_prompts)
