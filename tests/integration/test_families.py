"""All four tasks through the common runner on tiny random models of each MLP family: the classic
families on the organism's tokenizer, and the current ones (Qwen2, Qwen3, Gemma 3, Phi-3, OLMo 2) as
tests/real_shaped.py builds them, with their own tokenizers and config quirks.

The numbers mean nothing here (random weights); what is tested is that every code path
runs for every family and that the invariants hold: the attribution identity, group
shares that add up, variants with their ratios, a valid results file.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from real_shaped import MODEL_TYPE, save_pair

from toxbench.results import validate_results
from toxbench.runner import RunConfig, run

FAMILIES = {
    "gpt2": lambda v: __import__("transformers").GPT2Config(
        vocab_size=v, n_positions=64, n_embd=32, n_layer=2, n_head=2
    ),
    "gpt_neox": lambda v: __import__("transformers").GPTNeoXConfig(
        vocab_size=v,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=64,
    ),
    "llama": lambda v: __import__("transformers").LlamaConfig(
        vocab_size=v,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=64,
    ),
    "mistral": lambda v: __import__("transformers").MistralConfig(
        vocab_size=v,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=64,
    ),
    "gemma": lambda v: __import__("transformers").GemmaConfig(
        vocab_size=v,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=2,
        head_dim=16,
        max_position_embeddings=64,
    ),
}


def make_pair(family: str, tokenizer, root: Path) -> tuple[Path, Path]:
    """A random base model and an 'aligned' one: the same with its MLP keys perturbed."""
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    config = FAMILIES[family](len(tokenizer))
    config.eos_token_id = config.pad_token_id = config.bos_token_id = tokenizer.eos_token_id
    base = AutoModelForCausalLM.from_config(config)
    aligned = AutoModelForCausalLM.from_config(config)
    aligned.load_state_dict(base.state_dict())
    with torch.no_grad():
        for name, p in aligned.named_parameters():
            if any(k in name for k in ("c_fc", "dense_h_to_4h", "gate_proj")):
                p.add_(0.05 * torch.randn_like(p))
    dirs = root / "base", root / "aligned"
    for model, folder in zip((base, aligned), dirs, strict=True):
        model.save_pretrained(folder, safe_serialization=True)
        tokenizer.save_pretrained(folder)
    return dirs


def all_tasks(base_dir: Path, aligned_dir: Path, data_dir: Path, out: Path) -> dict:
    return run(
        RunConfig(
            model=str(base_dir),
            aligned=str(aligned_dir),
            tasks=["all"],
            scorer="lexicon",
            data_dir=data_dir,
            limit=6,
            output_path=out,
            task_options={
                "ablation": {"top_k": [2], "positive_k": [2], "alpha_grid": (1.0,)},
                # One small fine-tuning attack: TRL's trainer on each family's tokenizer and layout.
                "unalignment": {
                    "add_back": [1.0],
                    "finetune_n": [4],
                    "finetune_steps": [2],
                    "finetune_lr": [1e-3],
                },
            },
        )
    )


def check_all_tasks(results: dict, model_type: str, out: Path) -> None:
    validate_results(results)
    assert results["status"] == "complete"
    assert results["models"]["base"]["model_type"] == model_type
    tasks = results["tasks"]
    assert list(tasks) == ["elicitation", "attribution", "ablation", "unalignment"]

    att = tasks["attribution"]["metrics"]
    shares = [att["groups"][g]["share"] for g in ("TP-", "TN+", "AP+", "AN-")]
    if att["gross"] > 0:
        assert sum(shares) == pytest.approx(1.0)
    assert att["identity_residual"] <= 1e-3 * max(abs(att["direct_change"]), 1e-9) + 1e-9
    assert 0.0 <= att["probe_accuracy"]["value"] <= 1.0

    names = [v["name"] for v in tasks["ablation"]["variants"]]
    assert any(n.startswith("ablate-top") for n in names) and "patch-all-four" in names
    assert any(n.startswith("subtract-probe") for n in names)
    un = tasks["unalignment"]["variants"]
    assert [v["scale"] for v in un if v["kind"] == "scale-keys"] == [2.0, 5.0, 10.0]
    tuned = [v for v in un if v["kind"] == "fine-tune"]
    assert [v["name"] for v in tuned] == ["finetune-n4-lr0.001-s2"] and tuned[0]["train_loss"] > 0
    for plot in tasks["attribution"]["artifacts"] + tasks["unalignment"]["artifacts"]:
        assert (out / plot).stat().st_size > 1000


def _fast_first(families, fast):
    """The families ``make test`` runs; the others are marked slow (``make test-all``, CI)."""
    return [f if f in fast else pytest.param(f, marks=pytest.mark.slow) for f in families]


# GPT-2 (dense), Llama (gated, BOS) and Gemma 2 (post-norms, soft-capping) in `make test`.
@pytest.mark.parametrize("family", _fast_first(FAMILIES, {"gpt2", "llama", "gemma2"}))
def test_all_tasks_run_for_every_family(family: str, micro_organism, tmp_path) -> None:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(micro_organism.base_dir)
    base_dir, aligned_dir = make_pair(family, tokenizer, tmp_path)
    results = all_tasks(base_dir, aligned_dir, micro_organism.data_dir, tmp_path / "out")
    check_all_tasks(results, family, tmp_path / "out")


@pytest.mark.parametrize("family", _fast_first(["qwen2", "qwen3", "gemma3", "phi3", "olmo2"], {"phi3"}))
def test_all_tasks_run_on_the_current_families(family: str, micro_organism, tmp_path) -> None:
    """No toxbench edit for these: their MLPs are found by structure (gated, or Phi-3's fused gate_up_proj)."""
    corpus = (micro_organism.root / "data" / "corpus.txt").read_text().splitlines()[:1500]
    base_dir, aligned_dir = save_pair(family, corpus, tmp_path)
    results = all_tasks(base_dir, aligned_dir, micro_organism.data_dir, tmp_path / "out")
    check_all_tasks(results, MODEL_TYPE[family], tmp_path / "out")
    adds_bos = results["models"]["base"]["tokenization"]["adds_bos"]
    assert adds_bos == (family == "gemma3")  # Qwen has no BOS token; Phi-3 and OLMo 2 do not add theirs
