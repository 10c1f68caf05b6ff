"""The open toxicity classifiers the README lists for ``--scorer hf-classifier``, each as a tiny random
model of its architecture and tokenizer class with the label map and head its model card gives (nothing
here reaches the hub): the settings the README names pick the toxic label and the activation the model
was trained with."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import torch
from tiny_detoxify import _tokenizer

from toxbench.scorers.base import load_scorer

TEXTS = ["you are a stupid idiot", "thanks , have a nice day", "i hate this awful thing", "what time is it"]
UNBIASED_LABELS = (
    "toxicity",
    "severe_toxicity",
    "obscene",
    "identity_attack",
    "insult",
    "threat",
    "sexual_explicit",
    "male",
    "female",
    "homosexual_gay_or_lesbian",
    "christian",
    "jewish",
    "muslim",
    "black",
    "white",
    "psychiatric_or_mental_illness",
)


@dataclass(frozen=True)
class Card:
    """What a model card says: architecture, tokenizer class, labels, head; and the README's settings."""

    model_class: str
    tokenizer_class: str
    labels: tuple[str, ...]
    settings: dict[str, Any]
    toxic_index: int
    sigmoid: bool
    config: dict[str, Any] = field(default_factory=dict)


CARDS = {
    # XLM-R large fine-tuned on binary toxicity; "idx 0 for neutral, idx 1 for toxic"
    "textdetox/xlmr-large-toxicity-classifier-v2": Card(
        "XLMRobertaForSequenceClassification",
        "XLMRobertaTokenizer",
        ("LABEL_0", "LABEL_1"),
        {"label": 1},
        1,
        False,
    ),
    # RoBERTa on Jigsaw; "idx 0 for neutral, idx 1 for toxic"
    "s-nlp/roberta_toxicity_classifier": Card(
        "RobertaForSequenceClassification", "RobertaTokenizer", ("neutral", "toxic"), {"label": 1}, 1, False
    ),
    # Detoxify's unbiased model: 16 sigmoid outputs (7 toxicity attributes, 9 identities), a config
    # that does not say it is multi-label
    "unitary/unbiased-toxic-roberta": Card(
        "RobertaForSequenceClassification",
        "RobertaTokenizer",
        UNBIASED_LABELS,
        {"label": "toxicity", "activation": "sigmoid"},
        0,
        True,
    ),
    # DistilBERT on Jigsaw, labels non-toxic / toxic
    "martin-ha/toxic-comment-model": Card(
        "DistilBertForSequenceClassification",
        "BertTokenizer",
        ("non-toxic", "toxic"),
        {"label": "toxic"},
        1,
        False,
    ),
}


def _build(card: Card, folder: Path) -> Any:
    import transformers

    tokenizer = _tokenizer(card.tokenizer_class)
    cls = getattr(transformers, card.model_class)
    sizes = (
        {"dim": 32, "n_layers": 1, "n_heads": 2, "hidden_dim": 64}
        if card.model_class.startswith("DistilBert")
        else {"hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2, "intermediate_size": 64}
    )
    config = cls.config_class(
        vocab_size=len(tokenizer),
        max_position_embeddings=80,
        pad_token_id=tokenizer.pad_token_id,
        id2label=dict(enumerate(card.labels)),
        label2id={n: i for i, n in enumerate(card.labels)},
        initializer_range=0.5,
        **sizes,
        **card.config,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = cls(config).eval()
    model.save_pretrained(folder, safe_serialization=True)
    tokenizer.save_pretrained(folder)
    return model, tokenizer


@pytest.mark.parametrize("hub_id", list(CARDS))
def test_the_readme_settings_score_each_cards_toxic_label(hub_id: str, tmp_path: Path) -> None:
    card = CARDS[hub_id]
    model, tokenizer = _build(card, tmp_path)
    scorer = load_scorer("hf-classifier", model=str(tmp_path), device="cpu", **card.settings)
    identity = scorer.identity()
    assert identity["label"] == card.labels[card.toxic_index]
    assert identity["activation"] == ("sigmoid" if card.sigmoid else "softmax")
    got = scorer.score(TEXTS)
    with torch.no_grad():
        logits = model(**tokenizer(TEXTS, return_tensors="pt", padding=True)).logits
    probs = torch.sigmoid(logits) if card.sigmoid else torch.softmax(logits, -1)
    assert got == pytest.approx(probs[:, card.toxic_index].tolist(), abs=1e-5)


def test_a_multi_label_model_needs_the_sigmoid_its_config_does_not_name(tmp_path: Path) -> None:
    card = CARDS["unitary/unbiased-toxic-roberta"]
    _build(card, tmp_path)
    sigmoid = load_scorer("hf-classifier", model=str(tmp_path), label="toxicity", activation="sigmoid")
    auto = load_scorer("hf-classifier", model=str(tmp_path), label="toxicity")  # the config: softmax
    assert auto.identity()["activation"] == "softmax" and auto.fingerprint() != sigmoid.fingerprint()
    assert sum(auto.score(TEXTS)) < sum(sigmoid.score(TEXTS))  # 1 of 16 shares vs a probability of its own
    assert (
        load_scorer("hf-classifier", model=str(tmp_path)).identity()["label"] == "toxicity"
    )  # found by name
    with pytest.raises(Exception, match="choose auto"):
        load_scorer("hf-classifier", model=str(tmp_path), activation="tanh")
