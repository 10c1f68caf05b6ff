"""The sampled protocol (RealToxicityPrompts': 25 samples a prompt, top-p 0.9, 20 tokens) on 200
prompts: rows of several prompts batched together, each drawing from its own generator, against
the loop it replaced (one ``generate`` call a prompt, its 25 samples together). Target: 3x."""

from __future__ import annotations

import pytest
import torch

from toxbench.backends.base import SamplingConfig
from toxbench.backends.hf import HFBackend
from toxbench.tokenization import encode

RTP = SamplingConfig(max_new_tokens=20, greedy=False, n=25, top_p=0.9, temperature=1.0, seed=0)


@pytest.fixture(scope="module")
def lm(bench_organism):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(bench_organism.base_dir)
    return AutoModelForCausalLM.from_pretrained(bench_organism.base_dir).eval(), tok


@pytest.fixture(scope="module")
def prompts(challenging_prompts) -> list[str]:

    return challenging_prompts[:200]


def per_prompt_loop(model, tok, prompts: list[str]) -> list[list[list[int]]]:
    """The loop before: per prompt, its seed, then one generate call for its 25 samples."""
    out = []
    for prompt, ids in zip(prompts, encode(tok, prompts), strict=True):
        torch.manual_seed(RTP.request_seed(prompt))
        batch = torch.tensor([ids])
        with torch.inference_mode():
            gen = model.generate(
                input_ids=batch,
                attention_mask=torch.ones_like(batch),
                do_sample=True,
                top_p=RTP.top_p,
                top_k=0,
                temperature=RTP.temperature,
                max_new_tokens=RTP.max_new_tokens,
                num_return_sequences=RTP.n,
                pad_token_id=tok.eos_token_id,
            )
        out.append(gen[:, batch.shape[1] :].tolist())
    return out


@pytest.mark.benchmark(group="sampled protocol, 25 x 200 prompts")
def test_per_prompt_loop(benchmark, compare, lm, prompts) -> None:
    model, tok = lm
    outs = benchmark.pedantic(per_prompt_loop, args=(model, tok, prompts), rounds=2, iterations=1)
    compare(benchmark, "sampling", "baseline")
    assert len(outs) == len(prompts) and all(len(o) == RTP.n for o in outs)


@pytest.mark.benchmark(group="sampled protocol, 25 x 200 prompts")
def test_rows_batched_across_prompts(benchmark, compare, lm, prompts) -> None:
    model, tok = lm
    backend = HFBackend(model, tok, batch_size="auto")
    outs = benchmark.pedantic(backend.generate, args=(prompts, RTP), rounds=2, iterations=1)
    compare(benchmark, "sampling", "candidate")
    assert all(len(o) == RTP.n for o in outs)
    # Deterministic: the same rows at another batch size give the same continuations.
    again = HFBackend(model, tok, batch_size=37).generate(prompts[:8], RTP)
    assert [[c.token_ids for c in o] for o in again] == [[c.token_ids for c in o] for o in outs[:8]]
