"""The hf-classifier scorer on a tiny random sequence classifier built here, in the real format."""

from __future__ import annotations

import json

import pytest
import torch
from click.testing import CliRunner

from toxbench.cli import main
from toxbench.errors import ToxbenchError
from toxbench.scorers.base import load_scorer

TEXTS = ["you pathetic oaf !", "the bus is near the train .", "what a stupid dimwit you are", ""]


@pytest.fixture(scope="module")
def classifier(micro_organism, tmp_path_factory):
    from transformers import AutoTokenizer, DistilBertConfig, DistilBertForSequenceClassification

    folder = tmp_path_factory.mktemp("classifier")
    tokenizer = AutoTokenizer.from_pretrained(micro_organism.base_dir)
    torch.manual_seed(0)
    model = DistilBertForSequenceClassification(
        DistilBertConfig(
            vocab_size=len(tokenizer),
            dim=32,
            n_layers=1,
            n_heads=2,
            hidden_dim=64,
            max_position_embeddings=128,
            id2label={0: "neutral", 1: "toxic"},
            label2id={"neutral": 0, "toxic": 1},
            initializer_range=0.5,
            pad_token_id=tokenizer.pad_token_id,
        )
    )
    model.save_pretrained(folder, safe_serialization=True)
    tokenizer.save_pretrained(folder)
    return folder, model, tokenizer


def test_scores_are_the_labels_probability(classifier) -> None:
    folder, model, tokenizer = classifier
    scorer = load_scorer("hf-classifier", model=str(folder), label="toxic", batch_size=2)
    got = scorer.score(TEXTS + [None])  # type: ignore[list-item]
    assert got[-1] is None and got[3] is None  # not a text, and a text of no tokens: no score, never a 0
    for text, score in zip(TEXTS[:3], got, strict=False):
        with torch.no_grad():
            logits = model.eval()(**tokenizer([text], return_tensors="pt")).logits
        assert score == pytest.approx(float(torch.softmax(logits, -1)[0, 1]), abs=1e-5)
    assert len(set(got[:3])) == 3  # a random classifier still tells the texts apart
    by_index = load_scorer("hf-classifier", model=str(folder), label="1")
    assert by_index.score(TEXTS[:3]) == pytest.approx(got[:3])
    assert load_scorer("hf-classifier", model=str(folder)).identity()["label"] == "toxic"  # found by name
    other = load_scorer("hf-classifier", model=str(folder), label="neutral").score(TEXTS[:3])
    assert [a + b for a, b in zip(other, got[:3], strict=True)] == pytest.approx([1.0] * 3)
    assert (
        scorer.fingerprint() != load_scorer("hf-classifier", model=str(folder), label="neutral").fingerprint()
    )


def test_bad_classifier_options_are_named(classifier, tmp_path) -> None:
    folder, _, _ = classifier
    with pytest.raises(ToxbenchError, match=r"has no label 'hateful': its labels are 0=neutral, 1=toxic"):
        load_scorer("hf-classifier", model=str(folder), label="hateful")
    with pytest.raises(ToxbenchError, match="needs a model"):
        load_scorer("hf-classifier")
    with pytest.raises(ToxbenchError, match="cannot load the classifier"):
        load_scorer("hf-classifier", model=str(tmp_path))


def test_a_run_scores_with_the_classifier(classifier, micro_organism, tmp_path) -> None:
    folder, _, _ = classifier
    out = tmp_path / "out"
    result = CliRunner().invoke(
        main,
        [
            "run",
            "--model",
            "organism-micro",
            "--aligned",
            "organism-micro:dpo",
            "--tasks",
            "elicitation",
            "--limit",
            "6",
            "--scorer",
            "hf-classifier",
            "--scorer-args",
            f"model={folder}",
            "--scorer-args",
            "label=toxic",
            "--output-path",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    results = json.loads((out / "results.json").read_text())
    assert results["scorer"]["name"] == "hf-classifier" and results["scorer"]["label"] == "toxic"
    assert 0 < results["tasks"]["elicitation"]["metrics"]["base"]["toxicity"]["value"] < 1
