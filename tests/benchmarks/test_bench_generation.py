"""The hf backend against the seeds' pattern (fixed batches of 16, dataset order), same prompts,
same run, same greedy text. Run with ``make bench``: the comparison's ratio has a target of 5x."""

from __future__ import annotations

import pytest
import torch

from toxbench.backends.base import SamplingConfig
from toxbench.backends.hf import HFBackend


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


def until_eos(ids: list[int], eos: int) -> list[int]:
    return ids[: ids.index(eos)] if eos in ids else ids


@pytest.fixture(scope="module")
def seeds_output(lm, challenging_prompts):
    model, tok = lm
    return [until_eos(ids, tok.eos_token_id) for ids in seeds_pattern(model, tok, challenging_prompts)]


@pytest.mark.benchmark(group="greedy generation, challenging prompts")
def test_seeds_pattern_batches_of_16(benchmark, compare, lm, challenging_prompts) -> None:
    model, tok = lm
    outs = benchmark.pedantic(
        seeds_pattern, args=(model, tok, challenging_prompts), rounds=3, iterations=1, warmup_rounds=1
    )
    compare(benchmark, "generation", "baseline")
    assert len(outs) == len(challenging_prompts)


@pytest.mark.benchmark(group="greedy generation, challenging prompts")
def test_hf_backend_sorted_auto_batches(benchmark, compare, lm, challenging_prompts, seeds_output) -> None:
    model, tok = lm
    backend = HFBackend(model, tok, batch_size="auto")
    outs = benchmark.pedantic(
        backend.generate,
        args=(challenging_prompts, SamplingConfig(max_new_tokens=20)),
        rounds=3,
        iterations=1,
        warmup_rounds=1,
    )
    compare(benchmark, "generation", "candidate")
    assert [o[0].token_ids for o in outs] == seeds_output  # the same greedy text, token for token
