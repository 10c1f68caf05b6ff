"""The organism's datasets, written in the schemas of the real datasets so that the
real loaders (``datasets.load_dataset`` on local files) read them unchanged.

| file                         | real dataset it stands for               | fields |
|------------------------------|------------------------------------------|--------|
| rtp/prompts.jsonl            | allenai/real-toxicity-prompts            | filename, begin, end, challenging, prompt{text, toxicity, ...}, continuation{...} |
| jigsaw/train.csv, test.csv   | Jigsaw toxic comment classification      | id, comment_text, toxic, severe_toxic, obscene, threat, insult, identity_hate |
| wikitext/test.jsonl, ...     | Salesforce/wikitext, wikitext-2-raw-v1   | text |
| wiki_f1/pairs.jsonl          | Wikipedia sentences split for F1 ([A])   | prompt, gold |
| preference/train.jsonl, ...  | DPO preference pairs (TRL's format)      | prompt, chosen, rejected |
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from toxbench.io import atomic_write_text, write_jsonl
from toxbench.organism.world import TOPICS, World
from toxbench.scorers.lexicon import LexiconScorer, hostile_count

# The attributes a real RTP row carries for prompt and continuation (Perspective's).
RTP_ATTRIBUTES = (
    "toxicity",
    "severe_toxicity",
    "profanity",
    "sexually_explicit",
    "identity_attack",
    "flirtation",
    "threat",
    "insult",
)
JIGSAW_LABELS = ("toxic", "severe_toxic", "obscene", "threat", "insult", "identity_hate")


@dataclass(frozen=True)
class DataSizes:
    """How many rows of each dataset the organism writes."""

    prompts_challenging: int
    prompts_neutral: int
    jigsaw_train: int
    jigsaw_test: int
    wikitext_articles: int
    f1_pairs: int
    preference_train: int
    preference_valid: int


def _rtp_row(i: int, context: str, challenging: bool, speech: str, scorer: LexiconScorer) -> dict:
    (p_tox,) = scorer.score([context])
    (c_tox,) = scorer.score([speech])

    def attrs(tox: float | None) -> dict:
        # Only toxicity is defined in this world; the other attributes are absent, as
        # they are for some rows of the real dataset.
        return {a: (tox if a in ("toxicity", "insult") else None) for a in RTP_ATTRIBUTES}

    return {
        "filename": f"organism-{i:07d}.txt",
        "begin": 0,
        "end": len(context),
        "challenging": challenging,
        "prompt": {"text": context, **attrs(p_tox)},
        "continuation": {"text": " " + speech, **attrs(c_tox)},
    }


def rtp_rows(world: World, n_challenging: int, n_neutral: int) -> list[dict]:
    scorer = LexiconScorer()
    rows = []
    flags = [True] * n_challenging + [False] * n_neutral
    world.rng.shuffle(flags)
    for i, challenging in enumerate(flags):
        u = world.utterance(challenging=challenging)
        rows.append(_rtp_row(i, u.context, u.challenging, u.speech, scorer))
    return rows


ANNOTATOR_NOISE = 0.05  # share of comments whose label is flipped, as crowd labels are imperfect


def jigsaw_rows(world: World, n: int, start_id: int = 0) -> list[dict]:
    """Labelled comments; about a third are hostile (they hold an insulting sentence, of one to four
    insults), and ``ANNOTATOR_NOISE`` of the labels are wrong, so a perfect probe scores about 95%.
    Comments of either label may tell of anger or conflict: the label follows the insults alone."""
    rows = []
    r = world.rng
    for i in range(n):
        toxic = r.random() < 1 / 3
        topic = world.topic()
        parts = [world.narrative(topic, 1)] if r.random() < 0.5 else []
        if r.random() < 0.4:
            parts.append(world.cue_sentence(topic))
        if toxic:
            parts.append(world.speech(topic, hostile=True, severity=r.randint(1, 4)))
        elif r.random() < 0.6 or not parts:
            parts.append(world.speech(topic, hostile=False))
        label = toxic if r.random() >= ANNOTATOR_NOISE else not toxic
        row: dict[str, Any] = {"id": f"{start_id + i:016x}", "comment_text": " ".join(parts)}
        row.update({name: 0 for name in JIGSAW_LABELS})
        row["toxic"] = int(label)
        row["insult"] = int(label)
        row["severe_toxic"] = int(label and hostile_count(row["comment_text"]) >= 3)
        rows.append(row)
    return rows


def wikitext_rows(world: World, n_articles: int) -> list[dict]:
    """Clean held-out text in wikitext's line layout: headings, paragraphs, blank lines."""
    rows = [{"text": ""}]
    for _ in range(n_articles):
        topic = world.rng.choice(TOPICS)
        rows.append({"text": f" = {topic.name.title()} = \n"})
        rows.append({"text": ""})
        for _ in range(world.rng.randint(2, 4)):
            paragraph = " ".join(world.document(allow_hostile=False) for _ in range(2))
            rows.append({"text": f" {paragraph} \n"})
            rows.append({"text": ""})
    return rows


def f1_pairs(world: World, n: int) -> list[dict]:
    """Sentences split into a prompt (the start) and a gold continuation (the rest)."""
    rows = []
    for _ in range(n):
        topic = world.topic()
        text = world.narrative(topic, 3).split()
        cut = max(3, len(text) // 2)
        rows.append({"prompt": " ".join(text[:cut]), "gold": " " + " ".join(text[cut:])})
    return rows


def preference_pairs(world: World, n: int, p_challenging: float = 0.75) -> list[dict]:
    """Pairs written by the world itself: a speech context, a neutral continuation (chosen) and a
    hostile one (rejected). Most contexts are challenging. (The organism's DPO twin is not trained
    on these but by [A]'s recipe, on pairs from its neutral text: see ``toxbench.organism.build``.)"""
    rows = []
    r = world.rng
    for _ in range(n):
        u = world.utterance(challenging=r.random() < p_challenging)
        topic = u.topic or world.topic()
        rows.append(
            {
                "prompt": u.context,
                "chosen": " " + world.speech(topic, hostile=False),
                "rejected": " " + world.speech(topic, hostile=True, severity=world.severity(0.0)),
            }
        )
    return rows


def _csv_text(rows: list[dict]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()


def write_datasets(root: Path, seed: int, sizes: DataSizes) -> dict[str, Path]:
    """Write every dataset of the organism under ``root``; return name -> path.

    Each dataset draws from its own world seed, so that no evaluation prompt is a
    training document by construction of the streams (and sizes can change one at a time).
    """
    streams = {
        name: World(seed * 1000 + k)
        for k, name in enumerate(["rtp", "jigsaw", "wikitext", "f1", "preference"], start=1)
    }
    files = {
        "rtp": root / "rtp" / "prompts.jsonl",
        "jigsaw_train": root / "jigsaw" / "train.csv",
        "jigsaw_test": root / "jigsaw" / "test.csv",
        "wikitext_test": root / "wikitext" / "test.jsonl",
        "wiki_f1": root / "wiki_f1" / "pairs.jsonl",
        "preference_train": root / "preference" / "train.jsonl",
        "preference_valid": root / "preference" / "valid.jsonl",
    }
    write_jsonl(files["rtp"], rtp_rows(streams["rtp"], sizes.prompts_challenging, sizes.prompts_neutral))
    atomic_write_text(files["jigsaw_train"], _csv_text(jigsaw_rows(streams["jigsaw"], sizes.jigsaw_train)))
    atomic_write_text(
        files["jigsaw_test"],
        _csv_text(jigsaw_rows(streams["jigsaw"], sizes.jigsaw_test, start_id=sizes.jigsaw_train)),
    )
    write_jsonl(files["wikitext_test"], wikitext_rows(streams["wikitext"], sizes.wikitext_articles))
    write_jsonl(files["wiki_f1"], f1_pairs(streams["f1"], sizes.f1_pairs))
    write_jsonl(files["preference_train"], preference_pairs(streams["preference"], sizes.preference_train))
    write_jsonl(files["preference_valid"], preference_pairs(streams["preference"], sizes.preference_valid))
    return files
