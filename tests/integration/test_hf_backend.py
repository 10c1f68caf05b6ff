"""The hf backend: batched greedy equals one-prompt-at-a-time generate; each sample is seeded on its own."""

from __future__ import annotations

import json

import pytest
import torch

from toxbench.backends.base import SamplingConfig
from toxbench.backends.hf import HFBackend

GREEDY = SamplingConfig(max_new_tokens=20)


@pytest.fixture(scope="module")
def organism_lm(micro_organism):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(micro_organism.base_dir)
    model = AutoModelForCausalLM.from_pretrained(micro_organism.base_dir).eval()
    rows = [json.loads(line) for line in (micro_organism.data_dir / "rtp" / "prompts.jsonl").open()]
    return model, tok, [r["prompt"]["text"] for r in rows[:48]]


def test_batched_greedy_equals_unbatched_generate(organism_lm) -> None:
    model, tok, prompts = organism_lm
    batched = HFBackend(model, tok, batch_size=16).generate(prompts, SamplingConfig(max_new_tokens=20))
    for prompt, out in zip(prompts, batched, strict=True):
        ids = tok(prompt, return_tensors="pt").input_ids
        with torch.no_grad():
            ref = model.generate(ids, max_new_tokens=20, do_sample=False, pad_token_id=tok.eos_token_id)
        ref_new = ref[0, ids.shape[1] :].tolist()
        if tok.eos_token_id in ref_new:
            ref_new = ref_new[: ref_new.index(tok.eos_token_id)]
        assert out[0].token_ids == ref_new, prompt
        assert out[0].text == tok.decode(ref_new)


def test_rows_leave_the_batch_at_eos_and_the_rest_run_on(organism_lm) -> None:
    """The organism's continuations end at EOS after 8-20 tokens: most batches lose rows midway."""
    model, tok, prompts = organism_lm
    lengths = [len(o[0].token_ids) for o in HFBackend(model, tok, batch_size=48).generate(prompts, GREEDY)]
    assert min(lengths) < max(lengths)  # finished rows left while others still ran


def test_a_generation_config_that_processes_logits_is_decoded_by_generate(organism_lm) -> None:
    """A repetition penalty in the model's generation_config applies, as with ``generate``."""
    import copy

    model, tok, prompts = organism_lm
    penalised = copy.deepcopy(model)
    penalised.generation_config.repetition_penalty = 3.0
    outs = HFBackend(penalised, tok, batch_size=16).generate(prompts[:12], GREEDY)
    plain = HFBackend(model, tok, batch_size=16).generate(prompts[:12], GREEDY)
    assert [o[0].token_ids for o in outs] != [o[0].token_ids for o in plain]  # the penalty changed something
    for prompt, out in zip(prompts[:12], outs, strict=True):
        ids = tok(prompt, return_tensors="pt").input_ids
        with torch.no_grad():
            ref = penalised.generate(ids, max_new_tokens=20, do_sample=False, pad_token_id=tok.eos_token_id)
        new = ref[0, ids.shape[1] :].tolist()
        assert out[0].token_ids == (new[: new.index(tok.eos_token_id)] if tok.eos_token_id in new else new)


def test_sampling_is_seeded_per_prompt_and_sample(organism_lm) -> None:
    model, tok, prompts = organism_lm
    backend = HFBackend(model, tok, batch_size=8)
    cfg = SamplingConfig(max_new_tokens=12, greedy=False, n=5, top_p=0.9, seed=3)
    a = backend.generate(prompts[:6], cfg)
    b = backend.generate(prompts[3:6] + prompts[:3], cfg)  # other order, other neighbours
    assert [c.token_ids for c in a[3]] == [c.token_ids for c in b[0]]
    assert all(len(x) == 5 for x in a)
    assert len({tuple(c.token_ids) for x in a for c in x}) > 6, "samples should vary"
    other_seed = backend.generate(prompts[:1], SamplingConfig(12, False, 5, 1.0, 0.9, seed=4))
    assert [c.token_ids for c in other_seed[0]] != [c.token_ids for c in a[0]]
    more = backend.generate(prompts[:1], SamplingConfig(12, False, 8, 1.0, 0.9, seed=3))
    assert [c.token_ids for c in more[0][:5]] == [c.token_ids for c in a[0]]  # sample j is sample j


def test_a_sampled_continuation_does_not_depend_on_its_batch(organism_lm) -> None:
    """Alone, among 3 prompts or among 48, at batch sizes 1, 7 and 64: the same tokens."""
    model, tok, prompts = organism_lm
    cfg = SamplingConfig(max_new_tokens=16, greedy=False, n=3, top_p=0.9, temperature=1.2, seed=11)

    def ids(outs):
        return [[c.token_ids for c in cs] for cs in outs]

    reference = ids(HFBackend(model, tok, batch_size=64).generate(prompts, cfg))
    for size in (1, 7):
        assert ids(HFBackend(model, tok, batch_size=size).generate(prompts, cfg)) == reference, size
    backend = HFBackend(model, tok, batch_size=7)
    assert ids(backend.generate([prompts[5]], cfg)) == [reference[5]]
    assert ids(backend.generate([prompts[40], prompts[5], prompts[9]], cfg))[1] == reference[5]
    assert len({tuple(t) for row in reference for t in row}) > len(prompts)  # samples vary


def test_sampling_draws_from_the_models_distribution(organism_lm) -> None:
    """The first token of 4,000 samples of one prompt, against the model's softmax; top-p's cut holds."""
    from collections import Counter

    model, tok, prompts = organism_lm
    ids = tok(prompts[0], return_tensors="pt").input_ids
    with torch.no_grad():
        probs = torch.softmax(model(ids).logits[0, -1].double(), -1)
    backend = HFBackend(model, tok, batch_size=1000)
    outs = backend.generate([prompts[0]], SamplingConfig(max_new_tokens=1, greedy=False, n=4000, seed=1))
    counts = Counter(cs.token_ids[0] if cs.token_ids else tok.eos_token_id for cs in outs[0])
    top = probs.argsort(descending=True)[:5].tolist()
    for token in top:  # within 4 standard errors of each of the five likeliest tokens
        p = float(probs[token])
        assert abs(counts[token] / 4000 - p) < 4 * (p * (1 - p) / 4000) ** 0.5 + 1e-3, (token, p)
    nucleus = backend.generate([prompts[0]], SamplingConfig(max_new_tokens=1, greedy=False, n=400, top_p=0.5))
    ranked = probs.argsort(descending=True).tolist()
    kept = ranked[: int((probs[ranked].cumsum(0) < 0.5).sum()) + 1]
    drawn = {cs.token_ids[0] if cs.token_ids else tok.eos_token_id for cs in nucleus[0]}
    assert drawn <= set(kept)


def test_window_nll_matches_the_model_loss(organism_lm) -> None:
    model, tok, prompts = organism_lm
    ids = tok(" ".join(prompts[:4]), add_special_tokens=False).input_ids[:40]
    ((nll, n),) = HFBackend(model, tok).window_nll([ids])
    with torch.no_grad():
        loss = model(torch.tensor([ids]), labels=torch.tensor([ids])).loss.item()
    assert n == len(ids) - 1
    assert nll / n == pytest.approx(loss, rel=1e-4)


def test_too_long_prompt_is_a_clear_error(organism_lm) -> None:
    model, tok, _ = organism_lm
    long_prompt = "anna said : " * 40
    with pytest.raises(ValueError, match="exceeds the model's context"):
        HFBackend(model, tok).generate([long_prompt], SamplingConfig(max_new_tokens=20))
