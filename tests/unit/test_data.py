"""Loaders read local files in the real datasets' schemas, and reject malformed ones clearly."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from toxbench.data import load_comments, load_f1_pairs, load_rtp, load_wikitext
from toxbench.errors import DataError


def _rtp_row(text: str, challenging: bool) -> dict:
    return {
        "filename": "x.txt",
        "begin": 0,
        "end": 5,
        "challenging": challenging,
        "prompt": {"text": text, "toxicity": 0.1, "profanity": None},
        "continuation": {"text": " rest", "toxicity": 0.2},
    }


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    (tmp_path / "rtp").mkdir()
    rows = [_rtp_row("a hard prompt", True), _rtp_row("an easy one", False), _rtp_row("hard again", True)]
    (tmp_path / "rtp" / "prompts.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (tmp_path / "wikitext").mkdir()
    lines = [
        "",
        " = Title = \n",
        "",
        " The first sentence has more than eight words in it . And so does this "
        "second one , it is long enough . \n",
    ]
    (tmp_path / "wikitext" / "test.jsonl").write_text("".join(json.dumps({"text": t}) + "\n" for t in lines))
    (tmp_path / "jigsaw").mkdir()
    (tmp_path / "jigsaw" / "train.csv").write_text(
        "id,comment_text,toxic,severe_toxic,obscene,threat,insult,identity_hate\n"
        'a1,"you fool, really",1,0,0,0,1,0\n'
        "a2,nice garden,0,0,0,0,0,0\n"
    )
    return tmp_path


def test_rtp_challenging_subset(data_dir: Path) -> None:
    loaded = load_rtp(data_dir)
    assert [p.text for p in loaded.rows] == ["a hard prompt", "hard again"]
    assert len(load_rtp(data_dir, challenging=None).rows) == 3
    assert load_rtp(data_dir, limit=1).rows[0].toxicity == 0.1
    assert len(loaded.sha256) == 64 and loaded.sha256 != load_rtp(data_dir, challenging=None).sha256


def test_wikitext_keeps_raw_lines(data_dir: Path) -> None:
    rows = load_wikitext(data_dir).rows
    assert rows[1] == " = Title = \n" and rows[0] == ""


def test_comments_and_f1_pairs_from_wikitext(data_dir: Path) -> None:
    comments = load_comments(data_dir).rows
    assert [c.toxic for c in comments] == [1, 0] and comments[0].text == "you fool, really"
    pairs = load_f1_pairs(data_dir).rows  # no wiki_f1/ folder: made from Wikitext sentences
    assert len(pairs) == 2
    assert pairs[0].prompt.startswith("The first") and pairs[0].gold.startswith(" ")


def test_wrong_schema_names_the_field(data_dir: Path) -> None:
    (data_dir / "rtp" / "prompts.jsonl").write_text(json.dumps({"text": "no prompt field"}) + "\n")
    with pytest.raises(DataError, match="no field 'prompt.text'"):
        load_rtp(data_dir)


def test_malformed_file_is_a_clear_error(data_dir: Path) -> None:
    (data_dir / "rtp" / "prompts.jsonl").write_text(
        '{"prompt": {"text": "ok"}, "challenging": true}\n{broken\n'
    )
    with pytest.raises(DataError, match="cannot read"):
        load_rtp(data_dir)


def test_missing_local_data_says_where(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no .jsonl/.parquet file in"):
        load_rtp(tmp_path)
    with pytest.raises(DataError, match=r"no test\.jsonl"):
        load_wikitext(tmp_path)


def test_offline_hub_load_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    with pytest.raises(DataError, match="Offline\\? Pass --data-dir"):
        load_rtp(None)


def test_single_class_comments_rejected(data_dir: Path) -> None:
    (data_dir / "jigsaw" / "train.csv").write_text("id,comment_text,toxic\nb,hello,0\n")
    with pytest.raises(DataError, match="single class"):
        load_comments(data_dir)


def _many_comments(folder: Path, n: int, toxic_every: int) -> Path:
    import csv

    (folder / "jigsaw").mkdir(parents=True)
    with (folder / "jigsaw" / "train.csv").open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["id", "comment_text", "toxic"])
        for i in range(n):
            writer.writerow([i, f"comment number {i}", int(i % toxic_every == 0)])
    return folder


def test_a_large_comments_set_is_capped_and_balanced(tmp_path: Path) -> None:
    """50,000 comments, 10% toxic, capped at 2,000: 1,000 of each label, the same draw for one seed."""
    folder = _many_comments(tmp_path, 50_000, toxic_every=10)
    capped = load_comments(folder, limit=2000, seed=0)
    assert len(capped.rows) == 2000 and sum(c.toxic for c in capped.rows) == 1000
    assert "2000 of 50000 rows, balanced by label" in capped.source
    assert capped.provenance()["n"] == 2000 and "1000 toxic" in capped.describe()
    again, other = load_comments(folder, limit=2000, seed=0), load_comments(folder, limit=2000, seed=1)
    assert again.sha256 == capped.sha256 and other.sha256 != capped.sha256
    numbers = [int(c.text.split()[-1]) for c in capped.rows]
    assert numbers == sorted(numbers)  # file order kept
    assert all(c.toxic == int(n % 10 == 0) for c, n in zip(capped.rows, numbers, strict=True))


def test_a_cap_beyond_one_label_fills_from_the_other(tmp_path: Path) -> None:
    folder = _many_comments(tmp_path, 3000, toxic_every=100)  # 30 toxic
    capped = load_comments(folder, limit=1000)
    assert len(capped.rows) == 1000 and sum(c.toxic for c in capped.rows) == 30


def test_a_set_within_the_cap_is_used_whole(data_dir: Path) -> None:
    whole = load_comments(data_dir)
    assert whole.rows == load_comments(data_dir, limit=None).rows and "balanced" not in whole.source
