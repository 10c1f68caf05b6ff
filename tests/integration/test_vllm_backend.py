"""The vllm backend against the real engine: it matches the hf backend on a tiny GPT-2, edited or not."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

vllm = pytest.importorskip("vllm", reason="needs the vllm package: run `make test-vllm` (its own venv)")

import torch  # noqa: E402

from toxbench.backends.base import SamplingConfig  # noqa: E402
from toxbench.backends.hf import HFBackend  # noqa: E402
from toxbench.backends.vllm import VLLMBackend  # noqa: E402

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


# -- one engine for every variant: weights loaded in place --------------------------------------
def as_loaded(model, tok, name: str, path: Path | None = None, **notes):
    """What the backend reads of a ``LoadedModel``."""
    from types import SimpleNamespace

    return SimpleNamespace(model=model, tokenizer=tok, name=name, fingerprint=name, path=path, notes=notes)


@pytest.fixture(scope="module")
def run_config():
    from types import SimpleNamespace

    return SimpleNamespace(dtype="float32", seed=0, backend_options={"kv_cache_memory_bytes": 64 << 20})


def edit_two_blocks(model):
    """A copy with a key of the first MLP scaled and a bias added to the last MLP's output."""
    import copy

    edited = copy.deepcopy(model)
    with torch.no_grad():
        edited.transformer.h[0].mlp.c_fc.weight[:, 7] *= 8.0
        edited.transformer.h[-1].mlp.c_proj.bias += 2.0
    return edited


def test_in_place_edit_equals_hf_and_restores(
    vllm_env, tiny_gpt2: Path, run_config, prompts: list[str]
) -> None:
    model, tok = load_hf(tiny_gpt2)
    cfg = SamplingConfig(max_new_tokens=20)
    base = VLLMBackend.for_model(as_loaded(model, tok, "base", tiny_gpt2), run_config)
    before = [out[0].token_ids for out in base.generate(prompts, cfg)]
    windows = [tok(" ".join(sentences(30, seed=5)), add_special_tokens=False)["input_ids"][:90]]
    nll_before = base.window_nll(windows)

    edited = edit_two_blocks(model)
    variant = base.serve(as_loaded(edited, tok, "base+edit"), run_config)
    assert variant is not None
    engine = base._engine
    assert variant._engine is engine and engine.users == 2
    hf_edited = HFBackend(edited, tok, batch_size=8)
    ref = [out[0].token_ids for out in hf_edited.generate(prompts, cfg)]
    assert ref != before, "the edit should change some continuations"
    assert [out[0].token_ids for out in variant.generate(prompts, cfg)] == ref
    assert variant.window_nll(windows)[0][0] == pytest.approx(hf_edited.window_nll(windows)[0][0], rel=1e-4)
    # Only the two edited MLP blocks travelled, whole (c_fc and c_proj, weights and biases).
    last = len(model.transformer.h) - 1
    blocks = [
        n for n in model.state_dict() if n.startswith(("transformer.h.0.mlp.", f"transformer.h.{last}.mlp."))
    ]
    assert (engine.swaps, engine.tensors_sent) == (1, len(blocks))

    variant.close()
    assert engine.users == 1

    # A changed input embedding, tied to the output head: the head's logits change too.
    embedding = edit_two_blocks(model)
    with torch.no_grad():
        embedding.transformer.wte.weight[tok.eos_token_id] *= 4.0
    variant = base.serve(as_loaded(embedding, tok, "base+embedding"), run_config)
    assert variant is not None
    hf_embedding = HFBackend(embedding, tok, batch_size=8)
    assert [out[0].token_ids for out in variant.generate(prompts, cfg)] == [
        out[0].token_ids for out in hf_embedding.generate(prompts, cfg)
    ]
    assert variant.window_nll(windows)[0][0] == pytest.approx(
        hf_embedding.window_nll(windows)[0][0], rel=1e-4
    )
    variant.close()
    assert [out[0].token_ids for out in base.generate(prompts, cfg)] == before  # restored
    assert base.window_nll(windows)[0][0] == pytest.approx(nll_before[0][0], rel=1e-6)
    assert engine.swaps == 3
    base.close()
    assert engine.users == 0 and not hasattr(engine, "llm")  # the last user shut the engine down


def test_other_shapes_or_opting_out_start_a_new_engine(
    vllm_env, tiny_gpt2: Path, run_config, caplog: pytest.LogCaptureFixture
) -> None:
    from types import SimpleNamespace

    from transformers import GPT2Config, GPT2LMHeadModel

    model, tok = load_hf(tiny_gpt2)
    base = VLLMBackend.for_model(as_loaded(model, tok, "base", tiny_gpt2), run_config)
    wider = GPT2LMHeadModel(GPT2Config(**{**model.config.to_dict(), "n_inner": 96}))
    with caplog.at_level("INFO", logger="toxbench"):
        assert base.serve(as_loaded(wider, tok, "wider"), run_config) is None
        assert base.serve(as_loaded(model, tok, "hooks", saveable=False), run_config) is None
    assert "a new engine for wider: its configuration or tensor shapes differ" in caplog.text
    assert "a new engine for hooks: the model exists only as hooks" in caplog.text
    base.close()

    opted_out = SimpleNamespace(
        **{**vars(run_config), "backend_options": {**run_config.backend_options, "in_place_weights": False}}
    )
    fixed = VLLMBackend.for_model(as_loaded(model, tok, "base", tiny_gpt2), opted_out)
    with caplog.at_level("INFO", logger="toxbench"):
        assert fixed.serve(as_loaded(edit_two_blocks(model), tok, "edit"), opted_out) is None
    assert "started without in-place weights" in caplog.text
    fixed.close()
