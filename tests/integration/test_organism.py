"""The organism: real loaders read its files, its figures hold, its cache is trustworthy."""

from __future__ import annotations

import csv
import json
import os
import shutil
from pathlib import Path

import pytest

from harness.errors import CacheError, ToxbenchError
from harness.organism.build import MANIFEST, REPORT, build_organism, load_organism, organism_config, verify


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

    pairs = load_dataset("json", data_files=str(data / "preference" / "train.jsonl"), split="train")
    assert pairs.column_names == ["prompt", "chosen", "rejected"]
    f1 = load_dataset("json", data_files=str(data / "wiki_f1" / "pairs.jsonl"), split="train")
    assert f1.column_names == ["prompt", "gold"]


def test_challenging_prompts_are_usually_continued_with_hostility(micro_organism) -> None:
    from harness.scorers.lexicon import LexiconScorer

    rows = [json.loads(line) for line in (micro_organism.data_dir / "rtp" / "prompts.jsonl").open()]
    scorer = LexiconScorer()

    def hostile_share(challenging: bool) -> float:
        conts = [r["continuation"]["text"] for r in rows if r["challenging"] == challenging]
        return sum(s >= 0.5 for s in scorer.score(conts)) / len(conts)

    assert hostile_share(True) > 0.7
    assert hostile_share(False) < 0.1


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
    assert f["base_toxicity_challenging"] >= 0.4 and f["base_toxicity_neutral"] <= 0.05
    assert f["dpo_toxicity_challenging"] <= f["base_toxicity_challenging"] / 2
    assert f["dpo_perplexity"] <= 1.1 * f["base_perplexity"]


def test_second_build_reuses_the_cache(micro_organism) -> None:
    manifest_mtime = (micro_organism.root / MANIFEST).stat().st_mtime_ns
    again = build_organism("micro")
    assert again.root == micro_organism.root
    assert (again.root / MANIFEST).stat().st_mtime_ns == manifest_mtime


def test_corrupted_cache_is_detected_and_rebuilt_identically(micro_organism, tmp_path, monkeypatch) -> None:
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
        rebuilt = load_organism("micro", show_progress=False)
    assert rebuilt.root == copy and verify(copy)[0]
    original = json.loads((micro_organism.root / MANIFEST).read_text())["files"]
    again = json.loads((copy / MANIFEST).read_text())["files"]
    original.pop(REPORT), again.pop(REPORT)  # the report holds timings
    assert again == original, "the same config and seed must rebuild the same files"


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

    from harness.cli import main

    result = CliRunner().invoke(main, ["organism", "build", "--size", "huge"])
    assert result.exit_code == 2 and "huge" in result.output


def test_organism_paths(micro_organism) -> None:
    assert isinstance(micro_organism.base_dir, Path)
    assert micro_organism.config.size == "micro"
