"""Alignment methods (`toxbench align`) on the micro organism: each writes a loadable folder with a
true card; the trained ones lower toxicity; the edits are exactly the edits; training resumes."""

from __future__ import annotations

import json

import pytest
import torch
from click.testing import CliRunner

from toxbench.backends.base import SamplingConfig
from toxbench.backends.hf import HFBackend
from toxbench.baselines.base import CARD, align, load_pairs
from toxbench.cli import main
from toxbench.errors import ToxbenchError, UnknownNameError
from toxbench.models import load_model

# The learning rate and optimiser come from the organism's pairs card (``--data organism``).
FAST = dict(max_steps=40, warmup_steps=5, batch_size=16, eval_steps=20)


@pytest.fixture(scope="module")
def base(micro_organism):
    return load_model("organism-micro", "cpu")


@pytest.fixture(scope="module")
def prompts(micro_organism) -> list[str]:
    from toxbench.data import load_rtp

    return [p.text for p in load_rtp(micro_organism.data_dir, challenging=True, limit=60).rows]


@pytest.fixture(scope="module")
def probe_file(base, micro_organism, tmp_path_factory):
    from toxbench.data import load_comments
    from toxbench.mech.probe import fit_probe

    probe = fit_probe(
        base.model, base.tokenizer, load_comments(micro_organism.data_dir, "train"), base.fingerprint
    )
    path = tmp_path_factory.mktemp("probe") / "probe"
    probe.save(path)
    return path, probe


def toxicity(model, tokenizer, prompts: list[str]) -> float:
    from toxbench.scorers.lexicon import LexiconScorer

    outs = HFBackend(model, tokenizer).generate(prompts, SamplingConfig(max_new_tokens=20))
    scores = LexiconScorer().score([o[0].text for o in outs])
    return sum(scores) / len(scores)


# DPO in `make test`; the other methods in `make test-all` (CI).
@pytest.mark.parametrize(
    "method", ["dpo", *(pytest.param(m, marks=pytest.mark.slow) for m in ("ipo", "sft", "kto"))]
)
def test_trained_methods_write_a_true_card_and_lower_toxicity(
    method, base, prompts, micro_organism, tmp_path
):
    card = align(
        method, "organism-micro", "organism", tmp_path / method, FAST, device="cpu", show_progress=False
    )
    on_disk = json.loads((tmp_path / method / CARD).read_text())
    assert on_disk == json.loads(json.dumps(card))
    assert card["method"] == method and card["kind"] == "trained"
    assert card["base"] == {"spec": "organism-micro", "fingerprint": base.fingerprint, "model_args": None}
    pairs = load_pairs("organism", base)
    assert card["data"]["sha256"] == pairs.sha256 and card["data"]["n_train"] == len(pairs.train)
    # The settings the pairs' card names, under the user's own.
    assert card["settings"]["learning_rate"] == pairs.settings["learning_rate"] > 1e-6
    assert card["settings"]["optimizer"] == pairs.settings["optimizer"] and card["training"]["steps"] == 40
    assert not (tmp_path / method / "_checkpoints").exists()
    aligned = load_model(str(tmp_path / method), "cpu")
    before, after = (
        toxicity(base.model, base.tokenizer, prompts),
        toxicity(aligned.model, aligned.tokenizer, prompts),
    )
    assert after < before - 0.05, f"{method}: toxicity {before:.3f} -> {after:.3f}"
    made_by = aligned.identity()["made_by"]  # recorded with every run of the model
    assert made_by == {"method": method, "seed": 0, "base_fingerprint": base.fingerprint}


@pytest.mark.slow  # two trainings per method: make test-all
@pytest.mark.parametrize("method", ["dpo", "kto"])
def test_another_seed_trains_another_model(method, micro_organism, tmp_path) -> None:
    """A seed changes the training (TRL's KTO reads its rows in order: toxbench shuffles them by seed)."""
    short = {**FAST, "max_steps": 10, "early_stopping_patience": None}
    weights = []
    for seed in (0, 1):
        folder = tmp_path / f"{method}-{seed}"
        align(
            method,
            "organism-micro",
            "organism",
            folder,
            {**short, "seed": seed},
            device="cpu",
            show_progress=False,
        )
        weights.append(load_model(str(folder), "cpu").model.state_dict())
    assert any(not torch.equal(weights[0][k], weights[1][k]) for k in weights[0])


def test_subtract_equals_the_task_variant(base, probe_file, tmp_path) -> None:
    from toxbench.mech.edits import shift_residual

    path, probe = probe_file
    card = align(
        "subtract",
        "organism-micro",
        None,
        tmp_path / "s",
        {"alpha": 1.5, "probe": str(path)},
        device="cpu",
        show_progress=False,
    )
    assert card["training"]["alpha"] == 1.5 and card["kind"] == "edit" and card["data"] is None
    saved = load_model(str(tmp_path / "s"), "cpu").model
    variant = shift_residual(base.model, probe.direction, -1.5).model  # what the ablation task evaluates
    ids = base.tokenizer(
        ["anna was furious and yelled :", "the map of the city"], padding=True, return_tensors="pt"
    )
    with torch.no_grad():
        torch.testing.assert_close(saved(**ids).logits, variant(**ids).logits, atol=1e-5, rtol=1e-5)
        assert not torch.allclose(saved(**ids).logits, base.model(**ids).logits, atol=1e-3)


def test_subtract_matches_a_models_perplexity(base, probe_file, tmp_path) -> None:
    path, _ = probe_file
    card = align(
        "subtract",
        "organism-micro",
        None,
        tmp_path / "m",
        {"match": "organism-micro:dpo", "probe": str(path)},
        device="cpu",
        show_progress=False,
    )
    search = card["training"]["alpha_search"]
    target = card["training"]["target_perplexity"]
    chosen = min(search, key=lambda p: abs(p["perplexity"] / target - 1))
    assert card["training"]["alpha"] == chosen["alpha"] and len(search) >= 5


def test_ablate_zeroes_exactly_the_chosen_value_vectors(base, probe_file, tmp_path) -> None:
    from toxbench.mech.neurons import neuron_adapter
    from toxbench.mech.vectors import rank_toxic_neurons

    path, probe = probe_file
    card = align(
        "ablate",
        "organism-micro",
        None,
        tmp_path / "a",
        {"k": 5, "probe": str(path)},
        device="cpu",
        show_progress=False,
    )
    chosen = rank_toxic_neurons(neuron_adapter(base.model), probe.unit, 5)
    assert card["training"]["neurons"] == [n.name for n in chosen]
    saved = load_model(str(tmp_path / "a"), "cpu").model
    before, after = neuron_adapter(base.model), neuron_adapter(saved)
    zeroed = {(n.layer, n.index) for n in chosen}
    for layer in range(before.n_layers):
        for i in range(before.d_mlp):
            row = after.values(layer)[i]
            if (layer, i) in zeroed:
                assert torch.count_nonzero(row) == 0
            else:
                assert torch.equal(row, before.values(layer)[i])
    others = {k: v for k, v in saved.state_dict().items() if "c_proj" not in k or "mlp" not in k}
    for name, tensor in others.items():
        assert torch.equal(tensor, base.model.state_dict()[name]), name


def test_an_interrupted_training_resumes_from_its_checkpoint(micro_organism, tmp_path, monkeypatch) -> None:
    import transformers

    original = transformers.Trainer.training_step
    calls = {"n": 0}

    def interrupted(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 5:
            raise KeyboardInterrupt
        return original(self, *args, **kwargs)

    settings = {**FAST, "max_steps": 8, "checkpoint_steps": 2, "early_stopping_patience": None}
    monkeypatch.setattr(transformers.Trainer, "training_step", interrupted)
    with pytest.raises(KeyboardInterrupt):
        align(
            "dpo", "organism-micro", "organism", tmp_path / "r", settings, device="cpu", show_progress=False
        )
    assert (
        not (tmp_path / "r" / CARD).exists() and (tmp_path / "r" / "_checkpoints" / "checkpoint-4").is_dir()
    )
    monkeypatch.setattr(transformers.Trainer, "training_step", original)
    card = align(
        "dpo", "organism-micro", "organism", tmp_path / "r", settings, device="cpu", show_progress=False
    )
    assert card["training"]["resumed_from"] == "checkpoint-4" and card["training"]["steps"] == 8


def test_bad_requests_are_refused_clearly(micro_organism, tmp_path) -> None:
    done = tmp_path / "done"
    align("ablate", "organism-micro", None, done, {"k": 2}, device="cpu", show_progress=False)
    with pytest.raises(ToxbenchError, match="already holds a finished model .*--overwrite"):
        align("ablate", "organism-micro", None, done, {"k": 2}, device="cpu", show_progress=False)
    assert (
        align(
            "ablate", "organism-micro", None, done, {"k": 3}, device="cpu", force=True, show_progress=False
        )["training"]["k"]
        == 3
    )
    with pytest.raises(UnknownNameError, match="Did you mean: dpo"):
        align("dpp", "organism-micro", "organism", tmp_path / "x")
    with pytest.raises(ToxbenchError, match="unknown option.*'learning_rte' \\(did you mean 'learning_rate'"):
        align("dpo", "organism-micro", "organism", tmp_path / "x", {"learning_rte": 1e-5})
    bad = tmp_path / "pairs.jsonl"
    bad.write_text(json.dumps({"prompt": "a", "good": "b", "bad": "c"}) + "\n")
    with pytest.raises(ToxbenchError, match="lack the field\\(s\\) chosen, rejected"):
        align("dpo", "organism-micro", bad, tmp_path / "x", FAST, device="cpu", show_progress=False)
    with pytest.raises(ToxbenchError, match="trains on preference pairs"):
        align("dpo", "organism-micro", None, tmp_path / "x")
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    with pytest.raises(ToxbenchError, match="not empty"):
        align("ablate", "organism-micro", None, foreign, {"k": 2})
    with pytest.raises(ToxbenchError, match="give alpha=A .* or match=MODEL"):
        align("subtract", "organism-micro", None, tmp_path / "x")


def test_align_then_run_from_the_command_line(micro_organism, tmp_path) -> None:
    listed = CliRunner().invoke(main, ["ls", "methods"])
    names = [line.split()[0] for line in listed.output.splitlines()]
    assert {"dpo", "ipo", "kto", "sft", "subtract", "ablate"} <= set(names)
    out = tmp_path / "dpo"
    args = [
        "align",
        "dpo",
        "--model",
        "organism-micro",
        "--data",
        "organism",
        "--output-path",
        str(out),
        "--device",
        "cpu",
    ]
    args += [f"--method-args={k}={v}" for k, v in FAST.items()]
    done = CliRunner().invoke(main, args)
    assert done.exit_code == 0, done.output
    assert f"--aligned {out}" in done.output
    again = CliRunner().invoke(main, args)
    assert again.exit_code == 2 and "--overwrite" in again.output
    run = CliRunner().invoke(
        main,
        [
            "run",
            "--model",
            "organism-micro",
            "--aligned",
            str(out),
            "--tasks",
            "elicitation",
            "--limit",
            "5",
            "--output-path",
            str(tmp_path / "run"),
        ],
    )
    assert run.exit_code == 0, run.output
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    assert results["models"]["aligned"]["kind"] == "local"
