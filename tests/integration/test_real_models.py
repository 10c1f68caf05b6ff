"""Fidelity on the model families users bring: tiny random models of real shape (tests/real_shaped.py).

What is checked is what only a real family shows: BOS where the tokenizer adds it (and not
for GPT-2) in generation, probe features and perplexity windows; 1,024-token windows on a
131,072-position model, scored without materialising its logits at once; Gemma 2's soft-capped
logits in the sliced perplexity path.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from real_shaped import (
    BOS_FAMILIES,
    FAMILIES,
    MODEL_TYPE,
    build_model,
    build_tokenizer,
    elicitation_run,
    save_pair,
)

from toxbench.backends.base import SamplingConfig
from toxbench.backends.hf import HFBackend
from toxbench.fluency import perplexity_windows
from toxbench.mech.probe import mean_final_residual
from toxbench.runner import RunConfig, run
from toxbench.tasks.elicitation import truncate_prompts
from toxbench.tokenization import encode, special_tokens


@pytest.fixture(scope="module")
def corpus(micro_organism) -> list[str]:
    return (micro_organism.root / "data" / "corpus.txt").read_text().splitlines()[:1500]


@pytest.fixture(scope="module")
def prompts(micro_organism) -> list[str]:
    from toxbench.data import load_rtp

    return [p.text for p in load_rtp(micro_organism.data_dir, challenging=True, limit=8).rows]


@pytest.fixture(scope="module", params=FAMILIES)
def family_model(request, corpus):
    tokenizer = build_tokenizer(request.param, corpus)
    return request.param, tokenizer, build_model(request.param, tokenizer)


def reference_greedy(model, tokenizer, text: str, max_new_tokens: int, pad: int, eos: int) -> list[int]:
    """``model.generate``'s greedy tokens for one prompt (encoded with the tokenizer's defaults),
    cut before the first EOS: what the backend's batched decoding must give."""
    enc = tokenizer(text, return_tensors="pt")
    with torch.no_grad():
        ref = model.generate(
            **enc, max_new_tokens=max_new_tokens, do_sample=False, pad_token_id=pad, eos_token_id=eos
        )
    new = ref[0, enc.input_ids.shape[1] :].tolist()
    return new[: new.index(eos)] if eos in new else new


def test_the_tokenizers_behave_like_the_real_ones(family_model) -> None:
    family, tokenizer, model = family_model
    ids = tokenizer("anna was furious")["input_ids"]
    assert model.config.model_type == MODEL_TYPE[family]
    if family in BOS_FAMILIES:
        assert ids[0] == tokenizer.bos_token_id and special_tokens(tokenizer).adds_bos
    else:
        assert ids == tokenizer("anna was furious", add_special_tokens=False)["input_ids"]
        assert not special_tokens(tokenizer).adds_bos


def test_greedy_continuation_equals_generate_on_the_default_encoding(family_model, prompts) -> None:
    family, tokenizer, model = family_model
    truncated = truncate_prompts(tokenizer, prompts, 6)
    for text in truncated:  # the cut counts the prompt's own tokens, not BOS
        assert len(tokenizer(text, add_special_tokens=False)["input_ids"]) <= 6
    outs = HFBackend(model, tokenizer, batch_size=4).generate(truncated, SamplingConfig(max_new_tokens=6))
    pad = tokenizer.pad_token_id or tokenizer.eos_token_id
    for text, out in zip(truncated, outs, strict=True):  # BOS for Llama, Gemma, Mistral: their defaults
        assert out[0].token_ids == reference_greedy(model, tokenizer, text, 6, pad, tokenizer.eos_token_id), (
            family
        )


def test_greedy_rows_that_stop_early_leave_the_batch_on_every_family(family_model, prompts) -> None:
    """Each family's cache (GQA, Gemma 2's sliding window) loses rows midway and the others decode on.

    A random model seldom emits its EOS, so a token it does emit second for some prompts and
    not others is made the EOS for this test."""
    import copy

    family, tokenizer, model = family_model
    texts = truncate_prompts(tokenizer, prompts, 6)
    tok = copy.deepcopy(tokenizer)
    pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
    tok.pad_token = tok.convert_ids_to_tokens(pad)
    tok.eos_token = tok.convert_ids_to_tokens(len(tok) - 1)  # a rare token: most rows run their 6 tokens
    free = HFBackend(model, tok, batch_size=8).generate(texts, SamplingConfig(max_new_tokens=6))
    seconds = [o[0].token_ids[1] for o in free if len(o[0].token_ids) > 1]
    stop = next((t for t in seconds if 0 < seconds.count(t) < len(seconds)), None)
    if stop is None:
        pytest.skip(f"{family}: every prompt's second token is the same")
    tok.eos_token = tok.convert_ids_to_tokens(stop)
    outs = HFBackend(model, tok, batch_size=8).generate(texts, SamplingConfig(max_new_tokens=6))
    assert any(len(o[0].token_ids) < 6 for o in outs) and any(len(o[0].token_ids) == 6 for o in outs)
    for text, out in zip(texts, outs, strict=True):
        assert out[0].token_ids == reference_greedy(model, tok, text, 6, pad, stop), family


def test_probe_features_read_bos_where_the_tokenizer_adds_it(family_model) -> None:
    family, tokenizer, model = family_model
    texts = ["anna was furious and yelled", "the river"]
    feats = mean_final_residual(model, tokenizer, texts)
    for text, feat in zip(texts, feats, strict=True):
        with torch.no_grad():
            default = model(**tokenizer(text, return_tensors="pt"), output_hidden_states=True).hidden_states[
                -1
            ]
            plain = model(
                **tokenizer(text, return_tensors="pt", add_special_tokens=False), output_hidden_states=True
            ).hidden_states[-1]
        np.testing.assert_allclose(feat, default[0].mean(0).numpy(), atol=1e-5)
        if family in BOS_FAMILIES:
            assert not np.allclose(feat, plain[0].mean(0).numpy(), atol=1e-4)


def test_perplexity_windows_start_with_bos_and_predict_every_corpus_token(family_model, corpus) -> None:
    family, tokenizer, _ = family_model
    lines = corpus[:200]
    n_tokens = len(tokenizer("\n\n".join(lines), add_special_tokens=False)["input_ids"])
    windows = perplexity_windows(tokenizer, lines, 64)
    assert all(len(w) <= 64 for w in windows)
    if family in BOS_FAMILIES:
        assert all(w[0] == tokenizer.bos_token_id for w in windows)
        assert sum(len(w) - 1 for w in windows) == n_tokens
        first_only = perplexity_windows(tokenizer, lines, 64, bos="corpus_start")
        assert first_only[0][0] == tokenizer.bos_token_id and first_only[1][0] != tokenizer.bos_token_id
    else:
        assert windows[0][0] != tokenizer.bos_token_id or n_tokens == 0
        assert sum(len(w) for w in windows) == n_tokens


def test_sliced_window_nll_equals_the_full_logits(family_model, corpus) -> None:
    """The chunked NLL (base model + head, softcapping included for Gemma 2) equals log-softmax of the logits."""
    family, tokenizer, model = family_model
    windows = perplexity_windows(tokenizer, corpus[:60], 48)[:3]
    backend = HFBackend(model, tokenizer, batch_size=2)
    backend.logits_budget = 7 * len(tokenizer)  # a few positions at a time
    got = backend.window_nll(windows)
    assert backend._sliced_head_matches(), family
    for w, (nll, count) in zip(windows, got, strict=True):
        ids = torch.tensor([w])
        with torch.no_grad():
            logp = torch.log_softmax(model(ids).logits.float(), dim=-1)
        ref = -logp[0, :-1].gather(-1, ids[0, 1:, None]).sum()
        assert count == len(w) - 1
        assert nll == pytest.approx(float(ref), rel=1e-4)


def test_llama3_context_runs_elicitation_on_1024_token_windows(
    micro_organism, corpus, tmp_path, monkeypatch
) -> None:
    """131,072 positions: windows stay at 1,024 and no call of the head sees more than the logits budget."""
    base_dir, aligned_dir = save_pair("llama3", corpus, tmp_path)
    budget = 4096 * 3
    monkeypatch.setattr(HFBackend, "logits_budget", budget)
    seen: list[int] = []
    original = HFBackend._head

    def head(self, hidden):
        out = original(self, hidden)
        seen.append(out.numel())
        return out

    monkeypatch.setattr(HFBackend, "_head", head)
    results = run(
        RunConfig(
            **elicitation_run(
                base_dir, aligned_dir, micro_organism.data_dir, output_path=tmp_path / "out", use_cache=False
            )
        )
    )  # every window is scored here, none served from the cache
    tok = results["models"]["base"]["tokenization"]
    assert tok["adds_bos"] is True and tok["perplexity_window"] == 1024
    assert results["tasks"]["elicitation"]["config"]["perplexity_window"]["base"] == 1024
    assert seen and max(seen) <= max(budget, 8 * 4096)  # the head's first call is the 8-token self-check
    assert results["tasks"]["elicitation"]["metrics"]["base"]["perplexity"]["value"] > 1


def test_gpt2_records_no_bos(micro_organism, corpus, tmp_path) -> None:
    base_dir, aligned_dir = save_pair("gpt2", corpus, tmp_path)
    results = run(
        RunConfig(
            model=str(base_dir),
            aligned=str(aligned_dir),
            tasks=["elicitation"],
            scorer="lexicon",
            data_dir=micro_organism.data_dir,
            limit=3,
            output_path=tmp_path / "out",
        )
    )
    assert results["models"]["aligned"]["tokenization"] == {
        "adds_bos": False,
        "prefix_ids": [],
        "perplexity_window": 1024,
    }


def test_encode_drops_a_default_eos_suffix(corpus) -> None:
    from transformers import LlamaTokenizer

    tokenizer = build_tokenizer("llama2", corpus)
    with_eos = LlamaTokenizer(
        vocab=tokenizer.get_vocab(), merges=tokenizer._merges, add_bos_token=True, add_eos_token=True
    )
    assert with_eos("the river")["input_ids"][-1] == with_eos.eos_token_id
    assert encode(with_eos, ["the river"]) == encode(tokenizer, ["the river"])


def test_model_args_reach_the_loader(corpus, micro_organism, tmp_path, monkeypatch) -> None:
    """``adds_bos`` flips what the tokenizer adds (and the fingerprint); ``trust_remote_code`` is off
    unless given, for a registered alias too; a run records the user's arguments."""
    import transformers

    from toxbench.models import load_model
    from toxbench.registry import register_model

    llama, _ = save_pair("llama2", corpus, tmp_path)
    gpt2, gpt2_aligned = save_pair("gpt2", corpus, tmp_path)
    plain = load_model(str(llama), "cpu")
    no_bos = load_model(str(llama), "cpu", args={"adds_bos": False})
    assert special_tokens(plain.tokenizer).adds_bos and not special_tokens(no_bos.tokenizer).adds_bos
    assert no_bos.fingerprint != plain.fingerprint and no_bos.notes["model_args"] == {"adds_bos": False}
    with_bos = load_model(str(gpt2), "cpu", args={"adds_bos": True})
    assert encode(with_bos.tokenizer, ["anna was furious"])[0][0] == with_bos.tokenizer.bos_token_id

    seen: list[bool] = []
    original = transformers.AutoModelForCausalLM.from_pretrained

    def spy(*args, **kwargs):
        seen.append(kwargs["trust_remote_code"])
        return original(*args, **kwargs)

    monkeypatch.setattr(transformers.AutoModelForCausalLM, "from_pretrained", spy)
    register_model("lab-gpt2", path=str(gpt2))
    register_model("lab-gpt2-remote", path=str(gpt2), trust_remote_code=True)
    load_model("lab-gpt2", "cpu")
    load_model("lab-gpt2-remote", "cpu")
    load_model("lab-gpt2-remote", "cpu", args={"trust_remote_code": False})
    assert seen == [False, True, False]
    results = run(
        RunConfig(
            model="lab-gpt2",
            aligned=str(gpt2_aligned),
            tasks=["elicitation"],
            scorer="lexicon",
            limit=4,
            output_path=tmp_path / "run",
            data_dir=micro_organism.data_dir,
            model_args={"base": {"dtype": "float32"}},
        )
    )
    assert results["models"]["base"]["model_args"] == {"dtype": "float32"}
    assert results["models"]["base"]["fingerprint"].endswith("+float32")
    assert "model_args" not in results["models"]["aligned"]
