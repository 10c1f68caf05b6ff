"""The Detoxify scorer on tiny random checkpoints in Detoxify's real format, with the network off."""

from __future__ import annotations

import math
import random
import socket
from pathlib import Path

import pytest
import torch
from detoxify import Detoxify
from tiny_detoxify import WORDS, make_tiny_checkpoint

from toxbench.errors import ToxbenchError
from toxbench.scorers.base import load_scorer
from toxbench.scorers.detoxify import DetoxifyScorer

TOL = 1e-5


def _texts(n: int = 40, seed: int = 0) -> list[str]:
    """Texts from empty to past the tiny tokenizers' 64 tokens, with punctuation and non-ASCII."""
    rng = random.Random(seed)
    extras = ["!", "?", ",", "Ça", "va", "très", "bien", "😀", "IDIOT", "x" * 30, "42"]
    texts = [""]
    for i in range(1, n):
        length = rng.randint(1, 8) if i % 3 else rng.randint(20, 90)
        texts.append(" ".join(rng.choice(WORDS + extras) for _ in range(length)))
    return texts


TEXTS = _texts()


def _no_network(*args: object, **kwargs: object) -> None:
    raise OSError("network is off in this test module")


@pytest.fixture(scope="module", autouse=True)
def offline():
    """No socket connects and no DNS lookups while this module runs: proves the loading is offline."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(socket.socket, "connect", _no_network)
        mp.setattr(socket, "getaddrinfo", _no_network)
        yield


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return make_tiny_checkpoint(tmp_path_factory.mktemp("detoxify"), "original")


@pytest.fixture(scope="module")
def reference(tiny: tuple[Path, Path]) -> Detoxify:
    checkpoint, config_dir = tiny
    return Detoxify(
        "original", checkpoint=str(checkpoint), device="cpu", huggingface_config_path=str(config_dir)
    )


@pytest.fixture(scope="module")
def expected(reference: Detoxify) -> list[float]:
    """Detoxify's own score of each text, one text at a time."""
    return [reference.predict(t)["toxicity"] for t in TEXTS]


@pytest.fixture(scope="module")
def scorer(tiny: tuple[Path, Path]) -> DetoxifyScorer:
    checkpoint, config_dir = tiny
    return DetoxifyScorer(
        checkpoint=checkpoint, huggingface_config_path=config_dir, device="cpu", batch_size=8
    )


def _close(got: list[float | None], want: list[float]) -> bool:
    return len(got) == len(want) and all(
        g is not None and abs(g - w) <= TOL for g, w in zip(got, want, strict=True)
    )


def test_scores_equal_detoxify_predict_per_text(scorer: DetoxifyScorer, expected: list[float]) -> None:
    # The comparison only means something if the random model tells the texts apart.
    assert max(expected) - min(expected) > 0.1
    assert len({round(e, 4) for e in expected}) > len(TEXTS) // 2
    got = scorer.score(TEXTS)
    assert _close(got, expected), [
        (g, e) for g, e in zip(got, expected, strict=False) if g is None or abs(g - e) > TOL
    ]


def test_order_is_kept_after_length_sorting(
    scorer: DetoxifyScorer, expected: list[float], monkeypatch: pytest.MonkeyPatch
) -> None:
    batches: list[list[str]] = []
    real_predict = scorer.detoxify.predict

    def predict(texts: list[str]) -> dict:
        batches.append(list(texts))
        return real_predict(texts)

    monkeypatch.setattr(scorer.detoxify, "predict", predict)
    perm = list(range(len(TEXTS)))
    random.Random(1).shuffle(perm)
    assert _close(scorer.score([TEXTS[i] for i in perm]), [expected[i] for i in perm])
    lengths = [len(t) for batch in batches for t in batch]
    assert [len(b) for b in batches] == [8] * 5 and lengths == sorted(lengths)


def test_non_strings_get_none_and_the_rest_are_scored(scorer: DetoxifyScorer, expected: list[float]) -> None:
    got = scorer.score([TEXTS[5], None, TEXTS[7], 3, b"bytes"])  # type: ignore[list-item]
    assert got[1] is None and got[3] is None and got[4] is None
    assert _close([got[0], got[2]], [expected[5], expected[7]])
    assert scorer.score([]) == []


def test_fingerprint_follows_the_weights(scorer: DetoxifyScorer, tiny: tuple[Path, Path]) -> None:
    checkpoint, config_dir = tiny
    again = DetoxifyScorer(checkpoint=checkpoint, huggingface_config_path=config_dir, device="cpu")
    assert again.fingerprint() == scorer.fingerprint()
    assert (
        scorer.fingerprint().startswith("detoxify-0.")
        and "-original-toxicity-sha256:" in scorer.fingerprint()
    )

    loaded = torch.load(checkpoint, weights_only=True)
    weight = next(k for k in loaded["state_dict"] if k.endswith("classifier.weight"))
    loaded["state_dict"][weight] = loaded["state_dict"][weight] + 0.01
    changed = checkpoint.with_name("changed.ckpt")
    torch.save(loaded, changed)
    other = DetoxifyScorer(checkpoint=changed, huggingface_config_path=config_dir, device="cpu")
    assert other.fingerprint() != scorer.fingerprint()
    insult = DetoxifyScorer(
        checkpoint=checkpoint, huggingface_config_path=config_dir, device="cpu", attribute="insult"
    )
    assert insult.fingerprint() != scorer.fingerprint()
    assert insult.identity() == {
        "name": "detoxify",
        "fingerprint": insult.fingerprint(),
        "model_type": "original",
        "attribute": "insult",
        "checkpoint": str(checkpoint),
    }


def test_unknown_model_type_and_attribute_are_clear_errors(tiny: tuple[Path, Path]) -> None:
    with pytest.raises(
        ToxbenchError, match="model_type 'toxic': choose one of original, unbiased, multilingual"
    ):
        DetoxifyScorer(model_type="toxic")
    checkpoint, config_dir = tiny
    with pytest.raises(
        ToxbenchError, match="no attribute 'rudeness': choose one of toxicity, severe_toxicity"
    ):
        DetoxifyScorer(
            checkpoint=checkpoint, huggingface_config_path=config_dir, device="cpu", attribute="rudeness"
        )
    with pytest.raises(ToxbenchError, match="batch_size must be a positive integer"):
        DetoxifyScorer(checkpoint=checkpoint, batch_size="many")


def test_offline_without_checkpoint_says_how_to_get_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))  # an empty torch hub cache: Detoxify must download
    with pytest.raises(ToxbenchError) as info:
        DetoxifyScorer("unbiased", device="cpu")
    message = str(info.value)
    assert "toxic_debiased-c7548aa0.ckpt" in message
    assert "checkpoint=PATH" in message and "huggingface_config_path=DIR" in message
    assert "'roberta-base'" in message


def test_nan_scores_become_none_for_that_text_only(
    scorer: DetoxifyScorer, expected: list[float], monkeypatch: pytest.MonkeyPatch
) -> None:
    bad = TEXTS[10]
    real_predict = scorer.detoxify.predict

    def predict(texts: list[str]) -> dict:
        out = real_predict(texts)
        values = out["toxicity"] if isinstance(out["toxicity"], list) else [out["toxicity"]]
        out["toxicity"] = [math.nan if t == bad else v for t, v in zip(texts, values, strict=True)]
        return out

    monkeypatch.setattr(scorer.detoxify, "predict", predict)
    got = scorer.score(TEXTS)
    assert got[10] is None
    assert _close(got[:10] + got[11:], expected[:10] + expected[11:])


def test_a_failing_text_fails_alone(
    scorer: DetoxifyScorer, expected: list[float], monkeypatch: pytest.MonkeyPatch
) -> None:
    bad = TEXTS[20]
    real_predict = scorer.detoxify.predict

    def predict(texts: list[str]) -> dict:
        if bad in texts:
            raise RuntimeError("boom")
        return real_predict(texts)

    monkeypatch.setattr(scorer.detoxify, "predict", predict)
    got = scorer.score(TEXTS)
    assert got[20] is None
    assert _close(got[:20] + got[21:], expected[:20] + expected[21:])


@pytest.mark.parametrize("model_type", ["unbiased", "multilingual"])
def test_other_architectures_through_the_registry(model_type: str, tmp_path: Path) -> None:
    checkpoint, config_dir = make_tiny_checkpoint(tmp_path, model_type)
    reference = Detoxify(
        model_type, checkpoint=str(checkpoint), device="cpu", huggingface_config_path=str(config_dir)
    )
    scorer = load_scorer(
        f"detoxify-{model_type}",
        checkpoint=str(checkpoint),
        huggingface_config_path=str(config_dir),
        device="cpu",
        batch_size="4",
    )
    assert scorer.identity()["model_type"] == model_type
    texts = TEXTS[:12]
    assert _close(scorer.score(texts), [reference.predict(t)["toxicity"] for t in texts])


class _Payload:
    """Unpickling this calls a function: what a crafted checkpoint would do."""

    def __reduce__(self):
        return (print, ("a crafted checkpoint ran code",))


def test_a_checkpoint_that_needs_pickle_is_refused_unless_allowed(
    tiny: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    ckpt, config_dir = tiny
    loaded = torch.load(ckpt, weights_only=True)
    loaded["hyper_parameters"] = _Payload()
    crafted = tmp_path / "crafted.ckpt"
    torch.save(loaded, crafted)
    with pytest.raises(ToxbenchError, match="only pickle can load.*allow_pickle=true"):
        DetoxifyScorer(checkpoint=crafted, huggingface_config_path=config_dir)
    assert "ran code" not in capsys.readouterr().out
    trusted = DetoxifyScorer(checkpoint=crafted, huggingface_config_path=config_dir, allow_pickle="true")
    assert "ran code" in capsys.readouterr().out  # only when the user said so
    plain = DetoxifyScorer(checkpoint=ckpt, huggingface_config_path=config_dir)
    assert trusted.score(["you idiot"]) == plain.score(["you idiot"])
