"""The organism: shipped and installed without training, real loaders read its files, its figures
hold, its folders are trustworthy, and a local build is its own model."""

from __future__ import annotations

import csv
import json
import os
import shutil
from pathlib import Path

import pytest

from toxbench.errors import CacheError, ToxbenchError
from toxbench.models import fingerprint_folder
from toxbench.organism.build import (
    MANIFEST,
    ORGANISM_VERSION,
    SHIPPED_ROOT,
    Organism,
    build_organism,
    compare_with_shipped,
    load_organism,
    organism_config,
    shipped_manifest,
    verify,
)


def test_models_load_with_plain_transformers(micro_organism) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    for folder in (micro_organism.base_dir, micro_organism.dpo_dir):
        assert (folder / "model.safetensors").is_file()
        tok = AutoTokenizer.from_pretrained(folder)
        model = AutoModelForCausalLM.from_pretrained(folder)
        ids = tok("anna was furious and yelled :", return_tensors="pt").input_ids
        with torch.no_grad():
            logits = model(ids).logits
        assert logits.shape == (1, ids.shape[1], len(tok))
        assert model.config.model_type == "gpt2"


def test_datasets_have_the_real_schemas(micro_organism) -> None:
    from datasets import load_dataset

    data = micro_organism.data_dir
    rtp = load_dataset("json", data_files=str(data / "rtp" / "prompts.jsonl"), split="train")
    assert {"filename", "begin", "end", "challenging", "prompt", "continuation"} <= set(rtp.column_names)
    assert {"text", "toxicity", "profanity", "insult"} <= set(rtp[0]["prompt"])
    assert set(rtp["challenging"]) == {True, False}

    with open(data / "jigsaw" / "train.csv") as fh:
        header = next(csv.reader(fh))
    assert header == [
        "id",
        "comment_text",
        "toxic",
        "severe_toxic",
        "obscene",
        "threat",
        "insult",
        "identity_hate",
    ]
    jig = load_dataset("csv", data_files=str(data / "jigsaw" / "train.csv"), split="train")
    assert set(jig["toxic"]) == {0, 1}

    wiki = load_dataset("json", data_files=str(data / "wikitext" / "test.jsonl"), split="train")
    assert wiki.column_names == ["text"]
    assert any(t.startswith(" = ") for t in wiki["text"]) and "" in wiki["text"]

    train = load_dataset("json", data_files=str(data / "wikitext" / "train.jsonl"), split="train")
    assert train.column_names == ["text"] and len(train) > 100

    pairs = load_dataset("json", data_files=str(data / "preference" / "train.jsonl"), split="train")
    assert pairs.column_names == ["prompt", "chosen", "rejected"]
    recipe = load_dataset("json", data_files=str(micro_organism.pairs_dir / "train.jsonl"), split="train")
    assert recipe.column_names == ["prompt", "chosen", "rejected"]
    f1 = load_dataset("json", data_files=str(data / "wiki_f1" / "pairs.jsonl"), split="train")
    assert f1.column_names == ["prompt", "gold"]


def test_challenging_prompts_are_continued_with_hostility_about_half_the_time(micro_organism) -> None:
    from toxbench.scorers.lexicon import LexiconScorer

    rows = [json.loads(line) for line in (micro_organism.data_dir / "rtp" / "prompts.jsonl").open()]
    scorer = LexiconScorer()

    def hostile_share(challenging: bool) -> float:
        conts = [r["continuation"]["text"] for r in rows if r["challenging"] == challenging]
        return sum(s >= 0.5 for s in scorer.score(conts)) / len(conts)

    assert 0.3 <= hostile_share(True) <= 0.7
    assert hostile_share(False) < 0.1


def test_the_twin_is_made_by_the_recipe_on_neutral_text(micro_organism) -> None:
    from toxbench.organism.world import HOSTILE_WORDS, words

    card = json.loads((micro_organism.pairs_dir / "card.json").read_text())
    assert card["recipe"]["n_pairs"] > 100 and card["align_settings"]["learning_rate"] > 1e-6
    assert "<organism>" in json.dumps(card) and str(micro_organism.root) not in json.dumps(card)
    rows = [json.loads(line) for line in (micro_organism.pairs_dir / "train.jsonl").open()]
    # Its prompts come from text with no hostility at all: it never sees a challenging context.
    assert not any(HOSTILE_WORDS & set(words(r["prompt"])) for r in rows)
    method = json.loads((micro_organism.dpo_dir / "method.json").read_text())
    assert method["method"] == "dpo"
    assert {k: method["settings"][k] for k in card["align_settings"]} == card["align_settings"]


def test_micro_build_meets_its_figures(micro_organism) -> None:
    report = micro_organism.report
    missed = {
        name: c["value"] for name, c in report["targets"].items() if not c["ok"] and not c.get("timing")
    }
    assert not missed, f"organism targets missed: {missed}"
    assert any(
        c.get("timing") for c in report["targets"].values()
    )  # the build time is reported, not judged here
    f = report["figures"]
    assert 0.35 <= f["base_toxicity_challenging"] <= 0.65 and f["base_toxicity_neutral"] <= 0.05
    assert f["dpo_toxicity_challenging"] <= 0.7 * f["base_toxicity_challenging"]  # DPO lowers it
    assert f["dpo_perplexity"] <= 1.1 * f["base_perplexity"]
    assert report["organism_version"] == 2


@pytest.mark.parametrize("size", ["micro", "default"])
def test_the_shipped_organisms_are_those_of_the_current_config(size: str) -> None:
    shipped = shipped_manifest(organism_config(size))
    assert shipped is not None, (
        f"harness/organism/shipped/{size} is not the organism of the current config: regenerate it with "
        f"`toxbench organism build --size {size} --overwrite --ship` and commit it"
    )
    for rel in shipped["files"]:
        if not rel.startswith("data/"):
            assert (SHIPPED_ROOT / size / rel).is_file(), f"shipped file {rel} is missing"


def test_first_use_installs_the_shipped_organism_without_training(tmp_path, monkeypatch) -> None:
    import toxbench.organism.lm as lm

    def no_training(*args, **kwargs):
        raise AssertionError("the shipped organism was trained instead of installed")

    monkeypatch.setattr(lm, "train_base_model", no_training)
    monkeypatch.setenv("TOXBENCH_HOME", str(tmp_path))
    org = load_organism("micro", show_progress=False)
    assert org.manifest["build"] == "shipped" and verify(org.root)[0]
    assert fingerprint_folder(org.base_dir) == fingerprint_folder(SHIPPED_ROOT / "micro" / "base")
    assert (org.data_dir / "corpus.txt").is_file()  # drawn again, and checked against the manifest
    assert load_organism("micro", show_progress=False).root == org.root  # installed once


def test_data_drawn_unlike_the_manifest_is_refused(tmp_path, monkeypatch) -> None:
    import toxbench.organism.build as build

    real = build.write_organism_data

    def other_data(root, config):
        out = real(root, config)
        with open(root / "data" / "rtp" / "prompts.jsonl", "a") as fh:
            fh.write("{}\n")
        return out

    monkeypatch.setattr(build, "write_organism_data", other_data)
    monkeypatch.setenv("TOXBENCH_HOME", str(tmp_path))
    with pytest.raises(CacheError, match=r"shipped micro organism cannot be installed.*rtp/prompts.jsonl"):
        load_organism("micro", show_progress=False)
    left = sorted(p.name for p in (tmp_path / "organism").iterdir() if not p.name.endswith(".lock"))
    assert left == [], f"a failed install left {left}"


@pytest.fixture(scope="module")
def local_micro(micro_organism):
    """The micro organism trained on this machine (its own folder beside the installed shipped one)."""
    return build_organism("micro", show_progress=False)


def test_a_local_build_is_kept_beside_the_shipped_one(micro_organism, local_micro, tmp_path) -> None:
    assert local_micro.root != micro_organism.root and local_micro.root.name.endswith("-local")
    assert local_micro.manifest["build"] == "local" and verify(local_micro.root)[0]
    manifest_mtime = (local_micro.root / MANIFEST).stat().st_mtime_ns
    again = build_organism("micro", show_progress=False)  # reused, not trained again
    assert again.root == local_micro.root and (again.root / MANIFEST).stat().st_mtime_ns == manifest_mtime
    comparison = compare_with_shipped(local_micro)
    assert comparison["models"]["base"]["shipped"] == fingerprint_folder(micro_organism.base_dir)
    # Equal only where this machine computes as the one that made the shipped files did.
    if comparison["same"]:
        assert all(m["local"] == m["shipped"] for m in comparison["models"].values())
    # A build whose weights differ by one bit is not the shipped organism.
    copy = tmp_path / "local"
    shutil.copytree(local_micro.root, copy)
    _flip_a_bit(copy / "dpo" / "model.safetensors")
    other = compare_with_shipped(Organism(copy, local_micro.config, local_micro.manifest))
    assert other["same"] is False
    assert other["models"]["dpo"]["local"] != other["models"]["dpo"]["shipped"]


def _flip_a_bit(weights: Path) -> None:
    data = bytearray(weights.read_bytes())
    data[-8] ^= 1  # one bit of the last tensor's data
    weights.write_bytes(bytes(data))


def test_a_local_build_is_evaluated_under_its_own_fingerprint(micro_organism, local_micro, tmp_path) -> None:
    from toxbench.models import load_model

    shipped = load_model("organism-micro", show_progress=False)
    local = load_model("organism-micro", args={"build": "local"}, show_progress=False)
    assert shipped.notes["organism_build"] == "shipped" and local.notes["organism_build"] == "local"
    tag = f"organism{ORGANISM_VERSION}-"
    assert shipped.fingerprint == tag + fingerprint_folder(SHIPPED_ROOT / "micro" / "base")
    assert local.fingerprint == tag + fingerprint_folder(local_micro.base_dir)
    # A local build whose weights differ (as one trained on another CPU does) is another model.
    copy = tmp_path / "base"
    shutil.copytree(local_micro.base_dir, copy)
    _flip_a_bit(copy / "model.safetensors")
    assert fingerprint_folder(copy) != shipped.fingerprint


def test_results_of_another_organism_version_are_never_served(micro_organism, monkeypatch) -> None:
    import dataclasses

    from toxbench.models import ModelSpec, load_model

    now = load_model("organism-micro", show_progress=False)
    assert now.identity()["organism_version"] == ORGANISM_VERSION  # recorded in results.json
    # The same files under another world version are another model to every cache key.
    real = ModelSpec.source
    monkeypatch.setattr(
        ModelSpec,
        "source",
        lambda self, show_progress=True: dataclasses.replace(
            real(self, show_progress), fingerprint_tag=f"organism{ORGANISM_VERSION - 1}"
        ),
    )
    older = load_model("organism-micro", show_progress=False)
    assert older.fingerprint != now.fingerprint
    assert older.fingerprint.split("-", 1)[1] == now.fingerprint.split("-", 1)[1]  # same files


def test_corrupted_install_is_detected_and_installed_again(micro_organism, tmp_path, monkeypatch) -> None:
    home = tmp_path / "home"
    copy = home / "organism" / micro_organism.root.name
    shutil.copytree(micro_organism.root, copy)
    monkeypatch.setenv("TOXBENCH_HOME", str(home))

    weights = copy / "dpo" / "model.safetensors"
    with open(weights, "r+b") as fh:
        fh.seek(os.path.getsize(weights) // 2)
        fh.write(b"\x00garbage\x00")
    ok, reason = verify(copy)
    assert not ok and "dpo/model.safetensors" in reason

    with pytest.warns(UserWarning, match="invalid"):
        again = load_organism("micro", show_progress=False)
    assert again.root == copy and verify(copy)[0]
    original = json.loads((micro_organism.root / MANIFEST).read_text())["files"]
    assert json.loads((copy / MANIFEST).read_text())["files"] == original


def test_half_written_build_is_not_used(micro_organism, tmp_path) -> None:
    copy = tmp_path / micro_organism.root.name
    shutil.copytree(micro_organism.root, copy)
    (copy / MANIFEST).unlink()  # a build stopped before its manifest was written
    ok, reason = verify(copy)
    assert not ok and "did not finish" in reason


def test_unknown_size_and_unwritable_cache(tmp_path, monkeypatch) -> None:
    with pytest.raises(ToxbenchError, match="unknown organism size 'huge'"):
        organism_config("huge")
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the cache folder should be")
    monkeypatch.setenv("TOXBENCH_HOME", str(blocker))
    with pytest.raises(CacheError, match="cannot write to the organism cache folder"):
        build_organism("micro", show_progress=False)


def test_cli_reports_errors_clearly(tmp_path) -> None:
    from click.testing import CliRunner

    from toxbench.cli import main

    result = CliRunner().invoke(main, ["organism", "build", "--size", "huge"])
    assert result.exit_code == 2 and "huge" in result.output


def test_organism_paths(micro_organism) -> None:
    assert isinstance(micro_organism.base_dir, Path)
    assert micro_organism.config.size == "micro"
