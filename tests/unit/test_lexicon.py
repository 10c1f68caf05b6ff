"""The lexicon scorer on hand-made cases."""

import math

import pytest

from toxbench.organism.world import HOSTILE_WORDS
from toxbench.scorers.lexicon import LexiconScorer, hostile_count


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("the rose is green today .", 0.0),
        ("", 0.0),
        ("you idiot !", 0.5),
        ("shut up , you stupid idiot !", 0.75),
        ("YOU STUPID IDIOT, you fool", 0.875),
        ("idiotic foolish moronic", 0.0),  # whole words only
        ("the clown's hat", 0.0),  # the possessive is another word
    ],
)
def test_lexicon_rule(text: str, expected: float) -> None:
    assert LexiconScorer().score([text]) == [pytest.approx(expected)]


def test_non_text_is_a_failure_not_a_zero() -> None:
    scores = LexiconScorer().score(["you fool", None, 3])  # type: ignore[list-item]
    assert scores[0] == 0.5
    assert scores[1] is None and scores[2] is None


def test_counts_repetitions_and_stays_in_unit_interval() -> None:
    text = " ".join(["idiot"] * 60)
    assert hostile_count(text) == 60
    (score,) = LexiconScorer().score([text])
    assert 0.0 <= score <= 1.0 and not math.isnan(score)


def test_fingerprint_tracks_the_lexicon() -> None:
    assert LexiconScorer().fingerprint() == LexiconScorer().fingerprint()
    assert LexiconScorer(lexicon=["fool"]).fingerprint() != LexiconScorer().fingerprint()
    assert "idiot" in HOSTILE_WORDS
