"""The papers' released artefacts and recipes: dpo.pt imported safely, DPO as [A] ran it,
patched variants' perplexity, and the presets through the runner."""

from __future__ import annotations

import pickle

import pytest
import torch
from click.testing import CliRunner
from real_shaped import build_model, build_tokenizer

from toxbench.cli import main
from toxbench.errors import ToxbenchError
from toxbench.importers import import_dpo_checkpoint
from toxbench.models import load_model


@pytest.fixture(scope="module")
def corpus(micro_organism) -> list[str]:
    return (micro_organism.root / "data" / "corpus.txt").read_text().splitlines()[:1500]


@pytest.fixture(scope="module")
def gpt2_base(tmp_path_factory, corpus):
    tokenizer = build_tokenizer("gpt2", corpus)
    model = build_model("gpt2", tokenizer)
    folder = tmp_path_factory.mktemp("gpt2-base")
    model.save_pretrained(folder, safe_serialization=True)
    tokenizer.save_pretrained(folder)
    return folder, model


def test_dpo_pt_converts_to_an_equal_safetensors_model(gpt2_base, tmp_path) -> None:
    folder, base = gpt2_base
    tuned = {k: v.clone() + 0.01 for k, v in base.state_dict().items()}
    tuned["transformer.h.0.attn.masked_bias"] = torch.tensor(-1e4)  # a buffer older versions saved
    torch.save({"state": tuned}, tmp_path / "dpo.pt")
    out = tmp_path / "imported"
    result = CliRunner().invoke(
        main,
        [
            "import",
            "dpo-checkpoint",
            str(tmp_path / "dpo.pt"),
            "--base",
            str(folder),
            "--output-path",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    assert (out / "model.safetensors").is_file() and (out / "import.json").is_file()
    loaded = load_model(str(out), "cpu")
    for name, tensor in loaded.model.state_dict().items():
        torch.testing.assert_close(tensor, tuned[name], atol=0, rtol=0)
    again = CliRunner().invoke(
        main,
        [
            "import",
            "dpo-checkpoint",
            str(tmp_path / "dpo.pt"),
            "--base",
            str(folder),
            "--output-path",
            str(out),
        ],
    )
    assert again.exit_code == 2 and "already holds a model" in again.output


def test_dpo_pt_that_does_not_match_or_needs_pickle_is_refused(gpt2_base, tmp_path) -> None:
    folder, base = gpt2_base
    state = base.state_dict()
    wrong = {k.replace("transformer.", "decoder."): v for k, v in state.items()}
    torch.save({"state": wrong}, tmp_path / "wrong.pt")
    with pytest.raises(ToxbenchError, match=r"does not match base model .*missing parameter"):
        import_dpo_checkpoint(tmp_path / "wrong.pt", str(folder), tmp_path / "o1")
    shapes = dict(state)
    shapes["transformer.wte.weight"] = torch.zeros(3, 3)
    torch.save({"state": shapes}, tmp_path / "shape.pt")
    with pytest.raises(ToxbenchError, match="shapes that differ"):
        import_dpo_checkpoint(tmp_path / "shape.pt", str(folder), tmp_path / "o2")

    class Evil:
        def __reduce__(self):
            return (print, ("never",))

    with open(tmp_path / "evil.pt", "wb") as fh:
        pickle.dump({"state": Evil()}, fh)
    result = CliRunner().invoke(
        main,
        [
            "import",
            "dpo-checkpoint",
            str(tmp_path / "evil.pt"),
            "--base",
            str(folder),
            "--output-path",
            str(tmp_path / "o3"),
        ],
    )
    assert result.exit_code == 2 and "only pickle can load" in result.output
    assert not (tmp_path / "o3").exists()


def test_lee2024_pair_encoding_truncates_separately_without_eos(corpus) -> None:
    from toxbench.baselines.dpo import DPOSettings, lee2024_tokenize

    tokenizer = build_tokenizer("llama2", corpus)
    row = {"prompt": " ".join(corpus[:30]), "chosen": " ".join(corpus[30:60]), "rejected": "you idiot"}
    enc = lee2024_tokenize(tokenizer, row, DPOSettings())
    assert enc["prompt_ids"][0] == tokenizer.bos_token_id and len(enc["prompt_ids"]) == 64
    assert (
        len(enc["chosen_ids"]) == 64 and tokenizer.eos_token_id not in enc["chosen_ids"] + enc["rejected_ids"]
    )
    assert enc["rejected_ids"] == tokenizer("you idiot", add_special_tokens=False)["input_ids"]
    with_eos = lee2024_tokenize(tokenizer, row, DPOSettings(append_eos=True))
    assert with_eos["chosen_ids"][-1] == tokenizer.eos_token_id and len(with_eos["chosen_ids"]) == 64
    assert with_eos["rejected_ids"][-1] == tokenizer.eos_token_id


def test_dpo_with_lee2024_recipe_trains_with_early_stopping(micro_organism, tmp_path) -> None:
    import json

    from toxbench.baselines.dpo import DPOSettings, train_dpo

    base = load_model("organism-micro", "cpu")
    rows = [
        json.loads(x)
        for x in (micro_organism.data_dir / "preference" / "train.jsonl").read_text().splitlines()
    ]
    settings = DPOSettings(
        learning_rate=1e-4,
        batch_size=4,
        warmup_steps=0,
        max_steps=12,
        eval_steps=2,
        early_stopping_patience=30,
        device="cpu",
        optimizer="adamw_torch",
    )
    aligned, stats = train_dpo(
        base.model, base.tokenizer, rows[:48], settings, tmp_path / "dpo", rows[48:64], show_progress=False
    )
    assert stats["tokenization"] == "lee2024" and stats["best_eval_loss"] is not None
    assert stats["eval_loss"] == pytest.approx(
        stats["best_eval_loss"], rel=1e-4
    )  # the best checkpoint is kept
    assert (tmp_path / "dpo" / "model.safetensors").is_file()
    moved = max(
        float((p.detach() - q.detach()).abs().max())
        for p, q in zip(aligned.parameters(), base.model.parameters(), strict=True)
    )
    assert moved > 0


def test_patched_variants_have_their_own_perplexity(micro_organism, tmp_path) -> None:
    from toxbench.runner import RunConfig, run

    results = run(
        RunConfig(
            model="organism-micro",
            aligned="organism-micro:dpo",
            tasks=["ablation"],
            limit=12,
            output_path=tmp_path / "out",
            task_options={
                "ablation": {"top_k": [2], "positive_k": [2], "alpha_grid": (1.0,), "refine_steps": 0}
            },
        )
    )
    variants = {v["name"]: v for v in results["tasks"]["ablation"]["variants"]}
    ref = run(
        RunConfig(
            model="organism-micro",
            aligned="organism-micro:dpo",
            tasks=["elicitation"],
            limit=12,
            output_path=tmp_path / "ref",
        )
    )["tasks"]["elicitation"]["metrics"]["base"]["perplexity"]["value"]
    patched = [v for name, v in variants.items() if name.startswith("patch-") and v["n_neurons"] > 0]
    assert patched
    assert all(abs(v["perplexity"]["value"] - ref) > 1e-6 for v in patched)
    assert "mean-diff" in {v.get("direction") for v in variants.values()}
    assert any(a.endswith("ablation_alpha.png") for a in results["tasks"]["ablation"]["artifacts"])


def test_lee2024_preset_through_the_cli(micro_organism, tmp_path) -> None:
    import json

    out = tmp_path / "lee"
    result = CliRunner().invoke(
        main,
        [
            "run",
            "--model",
            "organism-micro",
            "--aligned",
            "organism-micro:dpo",
            "--tasks",
            "elicitation,ablation",
            "--limit",
            "8",
            "--preset",
            "lee2024",
            "--output-path",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    results = json.loads((out / "results.json").read_text())
    assert results["config"]["preset"] == "lee2024"
    assert results["config"]["fluency"] == {"perplexity_window": 1024, "bos": "corpus_start", "f1": "lee2024"}
    variants = results["tasks"]["ablation"]["variants"]
    alphas = {v["direction"]: v["alpha"] for v in variants if v.get("kind") == "subtract"}
    assert alphas["probe"] == 50.0 and alphas["svd-u0"] == 100.0 and "mean-diff" not in alphas
    assert any(v == 20.0 for k, v in alphas.items() if k.startswith("value-"))
    assert "Preset `lee2024`" in (out / "report.md").read_text()
    bad = CliRunner().invoke(
        main,
        ["run", "--model", "organism-micro", "--preset", "lee2042", "--output-path", str(tmp_path / "bad")],
    )
    assert bad.exit_code == 2 and "unknown preset" in bad.output
