"""Several scorers in one run of the micro organism: the lexicon (the headline) and an hf-classifier on a
tiny random classifier built here. Adding the classifier to a finished run regenerates nothing; the
agreement in results.json is scipy's and sklearn's on the stored scores; the gate and the board read
the scorer they are given."""

from __future__ import annotations

import json
import math
import uuid
from collections import Counter
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from toxbench.cli import main
from toxbench.runner import RunConfig, run

MICRO = dict(model="organism-micro", aligned="organism-micro:dpo", tasks=["elicitation"], limit=8)
CLASSIFIER = "clf"  # the classifier's key in the run: --scorer clf=hf-classifier


@pytest.fixture(scope="module")
def classifier(micro_organism, tmp_path_factory) -> Path:
    """A tiny random sequence classifier (softmax over neutral/toxic) in the real format. Its config holds a
    nonce, so its fingerprint, and so every score cache key, is new in every session."""
    from transformers import AutoTokenizer, DistilBertConfig, DistilBertForSequenceClassification

    folder = tmp_path_factory.mktemp("classifier")
    tokenizer = AutoTokenizer.from_pretrained(micro_organism.base_dir)
    with torch.random.fork_rng(devices=[]):
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
                toxbench_test_nonce=uuid.uuid4().hex,
            )
        )
    model.save_pretrained(folder, safe_serialization=True)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def runs(micro_organism, classifier, tmp_path_factory):
    """A finished lexicon run, then the same run with the classifier added, counting the work the second does."""
    from toxbench.backends.hf import HFBackend
    from toxbench.scorers.hf_classifier import HFClassifierScorer
    from toxbench.scorers.lexicon import LexiconScorer

    out = tmp_path_factory.mktemp("multi") / "run"
    first = run(RunConfig(**MICRO, output_path=out))
    work: Counter[str] = Counter()
    scored: list[str] = []

    def counting(name, fn, texts_of=None):
        def wrapper(self, *args, **kwargs):
            work[name] += 1
            if texts_of is not None:
                texts_of.extend(args[0])
            return fn(self, *args, **kwargs)

        return wrapper

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(HFBackend, "generate", counting("generate", HFBackend.generate))
        mp.setattr(HFBackend, "window_nll", counting("window_nll", HFBackend.window_nll))
        mp.setattr(LexiconScorer, "score", counting("lexicon", LexiconScorer.score))
        mp.setattr(HFClassifierScorer, "score", counting("classifier", HFClassifierScorer.score, scored))
        second = run(
            RunConfig(
                **MICRO,
                output_path=out,  # the finished run's folder: scorers added after its own extend it
                scorer=["lexicon", f"{CLASSIFIER}=hf-classifier"],
                scorer_options={f"{CLASSIFIER}.model": str(classifier), f"{CLASSIFIER}.label": "toxic"},
            )
        )
    samples = [json.loads(line) for line in (out / "samples.jsonl").open()]
    return first, second, work, scored, samples, out


def _continuations(samples: list[dict], role: str) -> list[dict]:
    return [s for s in samples if s["kind"] == "continuation" and s["role"] == role]


def test_adding_a_scorer_regenerates_nothing_and_scores_only_with_it(runs) -> None:
    first, second, work, scored, samples, _ = runs
    assert work["generate"] == 0 and work["window_nll"] == 0  # generations and perplexity: all from the cache
    assert work["lexicon"] == 0  # the headline's scores too
    texts = {s["continuation"] for s in samples if s["kind"] == "continuation"}
    assert work["classifier"] >= 1 and sorted(scored) == sorted(texts)  # each text once, by the new scorer
    old, new = first["tasks"]["elicitation"]["metrics"], second["tasks"]["elicitation"]["metrics"]
    assert {k: v for k, v in new.items() if k != "by_scorer"} == old  # the headline's figures stay
    assert first["schema_version"] == "1.1" and second["schema_version"] == "1.2"
    assert [s["key"] for s in second["scorers"]] == ["lexicon", CLASSIFIER]
    assert second["scorers"][1]["scorer"] == "hf-classifier" and second["scorer"] == first["scorer"]


def test_each_scorer_has_its_metrics_and_every_continuation_each_score(runs) -> None:
    _, second, _, _, samples, out = runs
    by_scorer = second["tasks"]["elicitation"]["metrics"]["by_scorer"]
    assert list(by_scorer) == ["lexicon", CLASSIFIER]
    for role in ("base", "aligned"):
        rows = _continuations(samples, role)
        assert len(rows) == 8 and all(set(r["scores"]) == {"lexicon", CLASSIFIER} for r in rows)
        assert all(r["scores"]["lexicon"] == r["score"] for r in rows)
        clf = [r["scores"][CLASSIFIER] for r in rows]
        assert by_scorer[CLASSIFIER][role]["toxicity"]["value"] == pytest.approx(sum(clf) / len(clf))
        assert (
            by_scorer["lexicon"][role]["toxicity"]
            == second["tasks"]["elicitation"]["metrics"][role]["toxicity"]
        )
    report = (out / "report.md").read_text()
    assert "Toxicity by scorer" in report and f"lexicon vs {CLASSIFIER}" in report


def test_agreement_is_scipys_and_sklearns_on_the_stored_scores(runs) -> None:
    from scipy.stats import spearmanr
    from sklearn.metrics import cohen_kappa_score

    _, second, _, _, samples, _ = runs
    agreement = second["tasks"]["elicitation"]["agreement"]
    assert [(e["role"], e["scorers"]) for e in agreement] == [
        ("base", ["lexicon", CLASSIFIER]),
        ("aligned", ["lexicon", CLASSIFIER]),
    ]
    for entry in agreement:
        rows = _continuations(samples, entry["role"])
        pairs = [
            (r["scores"]["lexicon"], r["scores"][CLASSIFIER])
            for r in rows
            if r["scores"]["lexicon"] is not None and r["scores"][CLASSIFIER] is not None
        ]
        x, y = zip(*pairs, strict=True)
        assert entry["n"] == len(pairs) and entry["n_left_out"] == len(rows) - len(pairs)
        rho = spearmanr(x, y).statistic
        kappa = cohen_kappa_score([v >= 0.5 for v in x], [v >= 0.5 for v in y])
        for name, want in (("spearman", rho), ("kappa", kappa)):
            if math.isnan(want):
                assert entry[name] is None
            else:
                assert entry[name]["value"] == pytest.approx(want, abs=1e-12)
        differ = sum((a >= 0.5) != (b >= 0.5) for a, b in pairs) / len(pairs)
        assert entry["disagreement"]["value"] == pytest.approx(differ)
        gaps = [abs(d["scores"]["lexicon"] - d["scores"][CLASSIFIER]) for d in entry["largest_disagreements"]]
        assert gaps == sorted(gaps, reverse=True) and len(gaps) <= 20
        assert gaps[0] == pytest.approx(max(abs(a - b) for a, b in pairs))


def toxbench(*args: object):
    return CliRunner().invoke(main, [str(a) for a in args])


def test_the_gate_and_the_board_use_the_scorer_named(runs, tmp_path) -> None:
    _, second, _, _, _, out = runs
    by_scorer = second["tasks"]["elicitation"]["metrics"]["by_scorer"]
    lexicon, clf = (by_scorer[k]["aligned"]["toxicity"]["value"] for k in ("lexicon", CLASSIFIER))
    assert abs(lexicon - clf) > 0.05  # the two scorers disagree about the aligned model: a gate between them
    from toxbench.api import Results

    loaded = Results.load(out)
    assert loaded.metric("elicitation", "toxicity", scorer=CLASSIFIER) == pytest.approx(clf)
    assert loaded.metric("elicitation", "toxicity", scorer="lexicon") == loaded.metric(
        "elicitation", "toxicity"
    )
    limit = f"{(lexicon + clf) / 2:.4f}"
    results = out / "results.json"
    by_headline = toxbench("check", results, "--max-toxicity", limit)
    by_classifier = toxbench("check", results, "--max-toxicity", limit, "--scorer", CLASSIFIER)
    by_name = toxbench("check", results, "--max-toxicity", limit, "--scorer", "hf-classifier")
    assert {by_headline.exit_code, by_classifier.exit_code} == {0, 1}, (
        by_headline.output + by_classifier.output
    )
    assert by_name.exit_code == by_classifier.exit_code  # its registered name finds it too
    assert f"{clf:.4f}" in by_classifier.output and f"{lexicon:.4f}" in by_headline.output
    unknown = toxbench("check", results, "--max-toxicity", limit, "--scorer", "detoxify")
    assert unknown.exit_code == 2 and "was not scored with scorer 'detoxify'" in unknown.output

    subs, site = tmp_path / "subs", tmp_path / "site"
    made = toxbench(
        "leaderboard",
        "submit",
        results,
        "--name",
        "by-clf",
        "--method",
        "DPO",
        "-o",
        subs,
        "--scorer",
        CLASSIFIER,
    )
    assert made.exit_code == 0, made.output
    submission = json.loads((subs / "by-clf.json").read_text())
    assert submission["summary"]["aligned_toxicity"]["value"] == pytest.approx(clf)
    assert toxbench("leaderboard", "validate", "--local", subs).exit_code == 0
    verified = toxbench("leaderboard", "verify", subs)
    assert verified.exit_code == 0 and "1 verified" in verified.output, verified.output
    by_lexicon = toxbench("leaderboard", "verify", subs, "--scorer", "lexicon")
    assert by_lexicon.exit_code == 0 and "1 verified" in by_lexicon.output, by_lexicon.output
    rendered = toxbench("leaderboard", "render", subs, "-o", site, "--scorer", "lexicon")
    assert rendered.exit_code == 0, rendered.output
    assert f"{lexicon:.3f}" in (site / "leaderboard.md").read_text()


@pytest.mark.slow  # a local Ray instance: make test-all
def test_ray_scorer_replicas_score_with_each_scorer(tmp_path) -> None:
    """The Ray executor's scorer replicas hold every scorer of a run, each by its fingerprint: a second
    scorer is not served the first one's scores."""
    pytest.importorskip("ray")
    from toxbench.cache import Cache
    from toxbench.runner import RunContext
    from toxbench.scorers.lexicon import LexiconScorer

    config = RunConfig(**MICRO, executor="ray", executor_options={"num_cpus": 1, "cpus_per_replica": 0})
    full, narrow = LexiconScorer(), LexiconScorer(lexicon=["stupid"])
    ctx = RunContext(config, {}, full, Cache(None), tmp_path, None, {"full": full, "narrow": narrow})
    texts = ["you stupid clueless moron", "a calm day", "stupid stupid"]
    try:
        assert ctx.score(texts) == full.score(texts)
        assert ctx.score(texts, scorer="narrow") == narrow.score(texts) != full.score(texts)
        assert ctx.score(texts, scorer="full") == full.score(texts)
    finally:
        ctx.close()
