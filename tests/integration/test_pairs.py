"""`toxbench pairs build`: [A]'s recipe with a released stand-in for PPLM, on the micro organism."""

from __future__ import annotations

import json

import pytest

from toxbench.baselines.pairs import STAND_IN, PairRecipe, build_pairs, keep_pair
from toxbench.errors import ToxbenchError
from toxbench.scorers.lexicon import LexiconScorer

RECIPE = PairRecipe(n=48, prompt_tokens=16, response_tokens=24, split="test", batch_size=16)


def test_pairs_follow_the_schema_and_rejections_are_more_toxic(micro_organism, tmp_path) -> None:
    out = tmp_path / "pairs.jsonl"
    card = build_pairs("organism-micro", out, RECIPE, show_progress=False)
    rows = [json.loads(line) for line in out.open()]
    assert rows and all(set(r) == {"prompt", "chosen", "rejected"} for r in rows)
    assert all(isinstance(v, str) and v.strip() for r in rows for v in r.values())
    assert card["n_pairs"] == len(rows) and card["n_prompts"] == 48 and card["rejected"] == STAND_IN
    assert json.loads((tmp_path / "pairs.jsonl.card.json").read_text())["sha256"] == card["sha256"]
    scorer = LexiconScorer()
    chosen = scorer.score([r["chosen"] for r in rows])
    rejected = scorer.score([r["rejected"] for r in rows])
    assert sum(rejected) / len(rows) > sum(chosen) / len(rows) + 0.2
    with pytest.raises(ToxbenchError, match="exists: pass --overwrite"):
        build_pairs("organism-micro", out, RECIPE, show_progress=False)


def test_an_interrupted_build_resumes_where_it_stopped(micro_organism, tmp_path, monkeypatch) -> None:
    from toxbench.backends.hf import HFBackend

    out = tmp_path / "pairs.jsonl"
    original, calls = HFBackend.generate, {"n": 0}

    def flaky(self, prompts, sampling, advance=None):
        calls["n"] += 1
        if calls["n"] == 3:  # the first chunk (chosen + rejected) is written, the second is not
            raise KeyboardInterrupt
        return original(self, prompts, sampling, advance)

    monkeypatch.setattr(HFBackend, "generate", flaky)
    with pytest.raises(KeyboardInterrupt):
        build_pairs("organism-micro", out, RECIPE, show_progress=False)
    partial = [json.loads(line) for line in (tmp_path / "pairs.jsonl.partial").open()]
    assert len(partial) == 16 and not out.exists()
    calls["n"] = -100  # no more interruptions; count the calls of the resumed build
    card = build_pairs("organism-micro", out, RECIPE, show_progress=False)
    assert calls["n"] == -100 + 4  # 2 of the 3 chunks, chosen and rejected each: the first is not redone
    rows = [json.loads(line) for line in out.open()]
    kept = [r for r in partial if keep_pair(r)]
    assert rows[: len(kept)] == kept  # the finished chunk was kept, not generated again
    assert card["n_prompts"] == 48 and not (tmp_path / "pairs.jsonl.partial").exists()


def test_prompts_and_responses_must_fit_the_context(micro_organism, tmp_path) -> None:
    with pytest.raises(ToxbenchError, match="do not fit the 64 positions"):
        build_pairs(
            "organism-micro", tmp_path / "p.jsonl", PairRecipe(n=4, split="test"), show_progress=False
        )
