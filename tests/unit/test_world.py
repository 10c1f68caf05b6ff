"""The organism's world (version 2), measured on what its generator draws: hostility is graded and
distributed over many cues, challenging contexts are continued with hostility about half the time,
neutral ones rarely but not never, and the severity of hostile turns is graded."""

from __future__ import annotations

import statistics

import pytest

from toxbench.organism.world import (
    CUE_WORDS,
    HOSTILE_WORDS,
    World,
    words,
)
from toxbench.scorers.lexicon import LexiconScorer

N = 3000


@pytest.fixture(scope="module")
def drawn():
    world = World(123)
    return {
        "natural": [world.utterance() for _ in range(N)],
        "challenging": [world.utterance(challenging=True) for _ in range(N)],
        "neutral": [world.utterance(challenging=False) for _ in range(N)],
    }


def hostile_rate(utterances) -> float:
    return sum(u.hostile for u in utterances) / len(utterances)


def test_challenging_contexts_are_continued_with_hostility_about_half_the_time(drawn) -> None:
    # GPT2-medium continues RealToxicityPrompts' challenging prompts with toxicity 0.45 of the time.
    assert 0.40 <= hostile_rate(drawn["challenging"]) <= 0.65


def test_neutral_contexts_turn_hostile_rarely_but_not_never(drawn) -> None:
    assert 0.005 <= hostile_rate(drawn["neutral"]) <= 0.05


def test_the_world_draws_the_hostility_it_states(drawn) -> None:
    # A turn is drawn hostile with the probability the cues give it: the two agree over many draws.
    for kind in ("challenging", "neutral", "natural"):
        us = drawn[kind]
        expected = statistics.fmean(u.p_hostile for u in us)
        assert hostile_rate(us) == pytest.approx(expected, abs=4 * (expected / len(us)) ** 0.5 + 0.01)


@pytest.mark.parametrize("family", ["temperament", "emotion", "events", "verb", "contagion"])
def test_every_cue_family_changes_the_odds(drawn, family) -> None:
    # Natural draws with the family's cue raising the odds against those where it is absent.
    us = drawn["natural"]
    raised = [u for u in us if u.cues[family] > 0.5]
    absent = [u for u in us if u.cues[family] == 0]
    assert len(raised) > 100 and len(absent) > 100
    assert hostile_rate(raised) > hostile_rate(absent) + 0.05, family


def test_cues_are_graded_not_a_switch(drawn) -> None:
    # Contexts spread over the whole range of odds, not two values as five trigger phrases gave.
    ps = sorted(u.p_hostile for u in drawn["natural"])
    deciles = [ps[int(q * len(ps))] for q in (0.1, 0.3, 0.5, 0.7, 0.9)]
    assert len({round(p, 2) for p in deciles}) == 5
    challenging = sorted(u.p_hostile for u in drawn["challenging"])
    assert challenging[len(challenging) // 10] < 0.35 and challenging[-len(challenging) // 10] > 0.75


def test_severity_is_graded_and_grows_with_the_odds(drawn) -> None:
    hostile = [u for u in drawn["natural"] if u.hostile]
    assert {u.severity for u in hostile} == {1, 2, 3, 4}
    scores = LexiconScorer().score([u.speech for u in hostile])
    assert len({round(s, 3) for s in scores if s is not None}) >= 4  # graded scores, not one value
    low = [u.severity for u in hostile if u.p_hostile < 0.3]
    high = [u.severity for u in hostile if u.p_hostile > 0.7]
    assert statistics.fmean(high) > statistics.fmean(low) + 0.5


def test_hostility_stays_lexical(drawn) -> None:
    # A speech is hostile exactly when it holds a hostile word, and no cue is a hostile word: the
    # lexicon scorer stays exact.
    assert not CUE_WORDS & HOSTILE_WORDS
    for u in drawn["natural"][:500]:
        assert bool(HOSTILE_WORDS & set(words(u.speech))) == u.hostile


def test_prompts_fit_the_paper_protocol() -> None:
    world = World(5)
    for _ in range(200):
        u = world.utterance(challenging=True)
        assert len(u.context.split()) <= 28 and u.context.endswith(":")


def test_the_world_is_deterministic_for_a_seed() -> None:
    def docs(seed: int) -> list[str]:
        world = World(seed)
        return [world.document() for _ in range(3)]

    assert docs(9) == docs(9) and docs(9) != docs(10)
