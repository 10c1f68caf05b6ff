"""The vllm backend against the real engine: it matches the hf backend on a tiny GPT-2, edited or not."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

vllm = pytest.importorskip("vllm", reason="needs the vllm package: run `make test-vllm` (its own venv)")

import torch  # noqa: E402

from harness.backends.base import SamplingConfig  # noqa: E402
from harness.backends.hf import HFBackend  # noqa: E402
from harness.backends.vllm import VLLMBackend  # noqa: E402

pytestmark = pytest.mark.vllm

N_POSITIONS = 128
SUBJECTS = ["anna", "the cat", "my neighbour", "a robot", "the old man", "our teacher", "bob", "the dog"]
VERBS = ["sees", "likes", "hates", "follows", "paints", "calls", "finds", "builds"]
OBJECTS = ["a red house", "the river", "two birds", "a small boat", "the green hill", "the moon"]
ENDINGS = ["today", "at night", "in the rain", "again", "with joy", "slowly", "near the sea"]


def sentences(n: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    return [
        f"{rng.choice(SUBJECTS)} {rng.choice(VERBS)} {rng.choice(OBJECTS)} {rng.choice(ENDINGS)}."
        for _ in range(n)
    ]


def build_tokenizer(texts: list[str]):
    """A byte-level BPE tokenizer trained on ``texts``, with GPT-2's special token."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    raw = Tokenizer(models.BPE())
    raw.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    raw.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400,
        special_tokens=["<|endoftext|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    raw.train_from_iterator(texts, trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=raw, eos_token="<|endoftext|>", bos_token="<|endoftext|>", pad_token="<|endoftext|>"
    )


def load_hf(path: Path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval()
    return model, AutoTokenizer.from_pretrained(path)


@pytest.fixture(scope="module")
def vllm_env(tmp_path_factory: pytest.TempPathFactory):
    """The engine settings for CPU tests, set before any engine starts."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("VLLM_ENABLE_V1_MULTIPROCESSING", "0")  # in-process engine: fast start, clean exit
        mp.setenv("VLLM_CACHE_ROOT", str(tmp_path_factory.mktemp("vllm-cache")))
        yield


@pytest.fixture(scope="module")
def tiny_gpt2(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random 2-layer GPT-2 and its tokenizer, saved as safetensors."""
    from transformers import GPT2Config, GPT2LMHeadModel

    tok = build_tokenizer(sentences(400))
    config = GPT2Config(
        n_layer=2,
        n_embd=64,
        n_head=2,
        n_positions=N_POSITIONS,
        vocab_size=len(tok),
        bos_token_id=tok.eos_token_id,
        eos_token_id=tok.eos_token_id,
        # Wide weights give peaked next-token distributions: no near-ties for argmax to flip on.
        initializer_range=0.3,
    )
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("tiny-gpt2")
    GPT2LMHeadModel(config).save_pretrained(path, safe_serialization=True)
    tok.save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def edited_gpt2(tiny_gpt2: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``tiny_gpt2`` with one MLP input column scaled and the EOS embedding boosted (some outputs stop early)."""
    model, tok = load_hf(tiny_gpt2)
    with torch.no_grad():
        model.transformer.h[0].mlp.c_fc.weight[:, 7] *= 8.0
        model.transformer.wte.weight[tok.eos_token_id] *= 4.0
    path = tmp_path_factory.mktemp("tiny-gpt2-edited")
    model.save_pretrained(path, safe_serialization=True)
    tok.save_pretrained(path)
    return path


def backends(path: Path) -> tuple[HFBackend, VLLMBackend]:
    model, tok = load_hf(path)
    # An explicit KV cache size: the default (a fraction of RAM, less what the process holds) leaves
    # nothing for a second engine in the same process.
    vl = VLLMBackend(path, tok, dtype="float32", kv_cache_memory_bytes=64 << 20)
    return HFBackend(model, tok, batch_size=8), vl


@pytest.fixture(scope="module")
def pair(vllm_env, tiny_gpt2: Path) -> tuple[HFBackend, VLLMBackend]:
    return backends(tiny_gpt2)


@pytest.fixture(scope="module")
def prompts() -> list[str]:
    # Unseen word orders and lengths from 1 to ~15 tokens.
    return [" ".join(s.split()[: 1 + i % 6]) for i, s in enumerate(sentences(16, seed=1))]


def test_greedy_equals_hf(pair, prompts: list[str]) -> None:
    hf, vl = pair
    cfg = SamplingConfig(max_new_tokens=20)
    ticks: list[int] = []
    ours = vl.generate(prompts, cfg, ticks.append)
    assert sum(ticks) == len(prompts)
    for prompt, a, b in zip(prompts, hf.generate(prompts, cfg), ours, strict=True):
        assert b[0].token_ids == a[0].token_ids, prompt
        assert b[0].text == a[0].text


def test_window_nll_equals_hf(pair) -> None:
    hf, vl = pair
    ids = hf.tokenizer(" ".join(sentences(80, seed=2)), add_special_tokens=False)["input_ids"]
    # Full-context windows (vLLM refuses them as prompts), shorter ones, and a 2-token one.
    windows = [ids[:N_POSITIONS], ids[N_POSITIONS : 2 * N_POSITIONS], ids[5:60], ids[7:9]]
    for (ref, n_ref), (nll, n) in zip(hf.window_nll(windows), vl.window_nll(windows), strict=True):
        assert n == n_ref
        assert nll == pytest.approx(ref, rel=1e-4)


def token_ids(outs) -> list[list[list[int]]]:
    return [[c.token_ids for c in out] for out in outs]


def test_sampling_is_seeded_per_prompt(pair, prompts: list[str]) -> None:
    _, vl = pair
    cfg = SamplingConfig(max_new_tokens=12, greedy=False, n=4, top_p=0.9, seed=3)
    a = vl.generate(prompts[:6], cfg)
    again = vl.generate(prompts[:6], cfg)
    b = vl.generate(prompts[3:6] + prompts[:3], cfg)  # other order, other neighbours
    assert token_ids(again) == token_ids(a)
    assert token_ids(b) == token_ids(a[3:6] + a[:3])
    assert all(len(out) == 4 for out in a)
    assert len({tuple(c.token_ids) for out in a for c in out}) > 6, "samples should vary"
    other_seed = vl.generate(prompts[:1], SamplingConfig(12, False, 4, 1.0, 0.9, seed=4))
    assert token_ids(other_seed) != token_ids(a[:1])


def test_too_long_prompt_is_a_clear_error(pair) -> None:
    _, vl = pair
    with pytest.raises(ValueError, match="exceeds the model's context"):
        vl.generate(["anna sees the river " * 40], SamplingConfig(max_new_tokens=20))


def test_identity_names_the_engine_version(pair) -> None:
    assert pair[1].identity() == {"name": "vllm", "vllm": vllm.__version__}


def test_edited_model_equals_hf(vllm_env, edited_gpt2: Path, pair, prompts: list[str]) -> None:
    hf, vl = backends(edited_gpt2)
    cfg = SamplingConfig(max_new_tokens=20)
    ref = hf.generate(prompts, cfg)
    assert [out[0].token_ids for out in vl.generate(prompts, cfg)] == [out[0].token_ids for out in ref]
    assert ref != pair[0].generate(prompts, cfg), "the edit should change some continuations"
    assert any(len(out[0].token_ids) < cfg.max_new_tokens for out in ref), "some should stop at EOS"
