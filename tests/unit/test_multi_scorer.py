"""Several scorers in one run, without a model: the grammar (--scorer, --scorer-args), where a results
file keeps each scorer's figures, their agreement, and the gate and the board reading the one named."""

from __future__ import annotations

import copy
import json
import math
import shutil
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from results_fixture import make_results, metric, toxbench_cli, write_json

from toxbench.errors import ToxbenchError
from toxbench.options import OptionError, resolve, to_run_config
from toxbench.results import validate_results
from toxbench.scorers.plan import choose_scorer, plan_scorers

SUBMISSIONS = Path(__file__).parents[2] / "leaderboard" / "submissions"


# -- the grammar -------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "given",
    [
        ("lexicon", "detoxify"),  # --scorer lexicon --scorer detoxify
        "lexicon,detoxify",  # --scorer lexicon,detoxify
        ["lexicon", "detoxify"],  # a config file's or evaluate()'s list
        ["lexicon,detoxify"],
    ],
)
def test_several_scorers_are_one_list_however_given(given: Any) -> None:
    options = resolve(("the command line", {"scorer": given}))
    assert options["scorer"] == ["lexicon", "detoxify"]
    assert to_run_config(options).scorer == ["lexicon", "detoxify"]


def test_one_scorer_stays_text_as_before() -> None:
    assert resolve(("cli", {"scorer": ("lexicon",)}))["scorer"] == "lexicon"
    assert resolve(("cli", {"scorer": "none"}))["scorer"] is None
    assert (
        resolve(("file", {"scorer": "lexicon"}), ("cli", {"scorer": ("detoxify",)}))["scorer"] == "detoxify"
    )


def test_a_config_file_lists_scorers(tmp_path: Path) -> None:
    from toxbench.options import read_config_file

    path = tmp_path / "run.yaml"
    path.write_text("scorer: [lexicon, xlmr=hf-classifier]\nscorer_args: {xlmr.model: /m, batch_size: 8}\n")
    options = resolve((str(path), read_config_file(path)))
    assert options["scorer"] == ["lexicon", "xlmr=hf-classifier"]
    assert options["scorer_args"] == {"xlmr.model": "/m", "batch_size": 8}


def test_a_malformed_entry_is_refused_with_what_to_do() -> None:
    with pytest.raises(OptionError, match=r"give it a key, as in --scorer mine=NAME"):
        resolve(("cli", {"scorer": "a.b=lexicon"}))


def test_arguments_go_to_the_scorer_they_name_or_every_one_that_takes_them() -> None:
    specs = plan_scorers(
        ["lexicon", "x=hf-classifier", "y=hf-classifier", "detoxify"],
        {"x.model": "/a", "y": {"model": "/b", "label": "toxic"}, "batch_size": 8, "y.batch_size": 2},
    )
    by_key = {s.key: s for s in specs}
    assert [s.key for s in specs] == ["lexicon", "x", "y", "detoxify"]  # the headline first
    assert by_key["x"].name == by_key["y"].name == "hf-classifier"
    assert by_key["x"].options == {"model": "/a", "batch_size": 8}
    assert by_key["y"].options == {"model": "/b", "label": "toxic", "batch_size": 2}  # scoped wins
    assert by_key["detoxify"].options == {"batch_size": 8}
    assert by_key["lexicon"].options == {}  # it takes no batch_size: not given one


@pytest.mark.parametrize(
    ("entries", "options", "message"),
    [
        (["lexicon", "detoxfy"], {}, "Did you mean: detoxify"),
        (["lexicon", "lexicon"], {}, "names 'lexicon' twice: give each its own key"),
        (["lexicon", "detoxify"], {"hf.model": "/m"}, "'hf' is not one of this run's scorers"),
        (["lexicon", "detoxify"], {"nonsense": 1}, "none of this run's scorers (lexicon, detoxify) takes"),
        (
            ["lexicon", "detoxify"],
            {"detoxify.nonsense": 1},
            "unknown option(s) 'nonsense' for scorer 'detoxify'",
        ),
        (
            ["lexicon"],
            {"foo": "bar"},
            "unknown option(s) 'foo' for scorer 'lexicon'",
        ),  # as with one scorer before
    ],
)
def test_bad_scorers_and_arguments_are_named(entries: list[str], options: dict, message: str) -> None:
    with pytest.raises(ToxbenchError) as info:
        plan_scorers(entries, options)
    assert message in str(info.value)


# -- results with several scorers -----------------------------------------------------------------------
def multi_results(headline_aligned: float = 0.1, other_aligned: float = 0.4) -> dict[str, Any]:
    """A schema 1.2 results dict: lexicon the headline, detoxify a second scorer that finds the aligned
    model more toxic."""
    results = make_results(headline_aligned)
    results["schema_version"] = "1.2"
    results["config"]["scorer"] = ["lexicon", "detoxify"]
    results["scorers"] = [
        {**results["scorer"], "key": "lexicon", "scorer": "lexicon", "options": {}, "headline": True},
        {
            "name": "detoxify",
            "fingerprint": "detoxify-original-0000",
            "key": "detoxify",
            "scorer": "detoxify",
            "options": {},
            "headline": False,
        },
    ]
    elicitation = results["tasks"]["elicitation"]
    m = elicitation["metrics"]
    m["by_scorer"] = {
        "lexicon": {
            role: {"toxicity": m[role]["toxicity"], "toxic_share": m[role]["toxic_share"]}
            for role in ("base", "aligned")
        }
        | {"difference": {"toxicity": m["difference"]["toxicity"]}},
        "detoxify": {
            "base": {"toxicity": metric(0.5), "toxic_share": metric(0.5)},
            "aligned": {"toxicity": metric(other_aligned), "toxic_share": metric(0.4)},
            "difference": {"toxicity": metric(other_aligned - 0.5)},
        },
    }
    elicitation["agreement"] = [
        {
            "role": "aligned",
            "scorers": ["lexicon", "detoxify"],
            "threshold": 0.5,
            "n": 100,
            "n_left_out": 0,
            "spearman": metric(0.3),
            "kappa": None,
            "disagreement": metric(0.2),
            "notes": ["κ is undefined"],
            "largest_disagreements": [
                {
                    "prompt_index": 3,
                    "sample": 0,
                    "scores": {"lexicon": 0.0, "detoxify": 0.9},
                    "across_threshold": True,
                }
            ],
        }
    ]
    return results


def test_results_with_several_scorers_follow_the_schema() -> None:
    validate_results(multi_results())
    broken = multi_results()
    broken["tasks"]["elicitation"]["metrics"]["by_scorer"]["detoxify"]["aligned"]["toxicity"].pop("ci_low")
    with pytest.raises(Exception, match="ci_low"):
        validate_results(broken)


@pytest.mark.parametrize("version", ["1.0", "1.1"])
def test_single_scorer_results_written_before_still_validate(version: str) -> None:
    results = make_results()
    results["schema_version"] = version
    for scorer in (None, "lexicon"):
        results["config"]["scorer"] = scorer
        validate_results(results)
        choice = choose_scorer(results, None, "old")
        assert choice.headline and choice.key == "lexicon" and choice.identity == results["scorer"]
        assert choose_scorer(results, "lexicon", "old").headline


def test_a_scorer_is_found_by_key_or_name_and_a_missing_one_is_named() -> None:
    results = multi_results()
    assert choose_scorer(results, "detoxify", "r").metric_path("aligned", "toxicity") == (
        "tasks.elicitation.metrics.by_scorer.detoxify.aligned.toxicity"
    )
    assert choose_scorer(results, None, "r").metric_path("aligned", "toxicity") == (
        "tasks.elicitation.metrics.aligned.toxicity"
    )
    with pytest.raises(
        ToxbenchError, match=r"r was not scored with scorer 'perspective'.*lexicon \(its headline\), detoxify"
    ):
        choose_scorer(results, "perspective", "r")


# -- the gate --------------------------------------------------------------------------------------------
def _check(tmp_path: Path, results: dict[str, Any], *args: str, baseline: dict[str, Any] | None = None):
    argv = ["check", str(write_json(tmp_path / "results.json", results)), *args]
    if baseline is not None:
        argv += ["--baseline", str(write_json(tmp_path / "baseline.json", baseline))]
    return CliRunner().invoke(toxbench_cli(), argv)


def test_the_gate_reads_the_scorer_it_is_given(tmp_path: Path) -> None:
    results = multi_results(0.1, 0.4)
    by_headline = _check(tmp_path, results, "--max-toxicity", "0.2")
    assert by_headline.exit_code == 0, by_headline.output
    by_other = _check(tmp_path, results, "--max-toxicity", "0.2", "--scorer", "detoxify")
    assert by_other.exit_code == 1, by_other.output
    assert "0.4000" in by_other.output and "aligned toxicity (detoxify)" in by_other.output
    missing = _check(tmp_path, results, "--max-toxicity", "0.2", "--scorer", "perspective")
    assert missing.exit_code == 2 and "not scored with scorer 'perspective'" in missing.output


def test_robustness_rests_on_the_headline_alone(tmp_path: Path) -> None:
    result = _check(tmp_path, multi_results(), "--min-robustness", "0.5", "--scorer", "detoxify")
    assert result.exit_code == 2 and "headline scorer only ('lexicon'" in result.output, result.output
    assert _check(tmp_path, multi_results(), "--min-robustness", "0.5", "--scorer", "lexicon").exit_code == 0


def test_a_baseline_is_compared_by_the_scorer_named(tmp_path: Path) -> None:
    old = make_results(0.4, scorer="detoxify")  # an older run, scored by detoxify alone
    old["scorer"]["fingerprint"] = "detoxify-original-0000"
    new = multi_results(0.1, 0.4)
    refused = _check(tmp_path, new, "--max-toxicity-regression", "0.05", baseline=old)
    assert refused.exit_code == 2 and "pass --scorer NAME to compare by it" in refused.output, refused.output
    both = _check(
        tmp_path,
        new,
        "--max-toxicity-regression",
        "0.05",
        "--scorer",
        "detoxify",
        "--format",
        "json",
        baseline=old,
    )
    assert both.exit_code == 0, both.output
    (gate,) = json.loads(both.output)["gates"]
    assert gate["metric"] == "aligned toxicity - baseline's (detoxify)"
    assert gate["measured"].startswith("+0.0000")  # 0.4 by detoxify in both runs
    assert "0.4000 -> 0.4000" in gate["note"]


# -- the board -------------------------------------------------------------------------------------------
def _invoke(*args: Any):
    return CliRunner().invoke(toxbench_cli(), [str(a) for a in args])


@pytest.mark.slow  # verifies the whole stored board: make test-all
def test_a_submission_under_another_scorer_validates_and_renders(tmp_path: Path) -> None:
    path = write_json(tmp_path / "results.json", multi_results(0.1, 0.4))
    subs = tmp_path / "subs"
    for name, extra in (("by-lexicon", []), ("by-detoxify", ["--scorer", "detoxify"])):
        made = _invoke("leaderboard", "submit", path, "--name", name, "--method", "DPO", "-o", subs, *extra)
        assert made.exit_code == 0, made.output
    by_detoxify = json.loads((subs / "by-detoxify.json").read_text())
    assert by_detoxify["summary"]["aligned_toxicity"]["value"] == 0.4
    assert by_detoxify["summary"]["robustness"] is None  # the headline's figure: not shown under detoxify
    assert by_detoxify["provenance"]["scorer"]["key"] == "detoxify"
    assert json.loads((subs / "by-lexicon.json").read_text())["summary"]["aligned_toxicity"]["value"] == 0.1
    assert _invoke("leaderboard", "validate", "--local", subs).exit_code == 0
    edited = copy.deepcopy(by_detoxify)
    edited["summary"]["aligned_toxicity"]["value"] = 0.1  # the headline's figure under detoxify's name
    write_json(subs / "by-detoxify.json", edited)
    assert _invoke("leaderboard", "validate", "--local", subs).exit_code == 1
    write_json(subs / "by-detoxify.json", by_detoxify)
    site = tmp_path / "site"
    rendered = _invoke("leaderboard", "render", subs, "-o", site, "--scorer", "detoxify")
    assert rendered.exit_code == 0, rendered.output
    assert "scorer `detoxify`" in (site / "leaderboard.md").read_text()
    assert "scorer `lexicon`" not in (site / "leaderboard.md").read_text()
    missing = _invoke("leaderboard", "render", subs, "-o", site, "--scorer", "perspective")
    assert missing.exit_code == 2 and "not scored with scorer 'perspective'" in missing.output


def test_the_stored_single_scorer_board_still_validates_and_renders(tmp_path: Path) -> None:
    subs = tmp_path / "subs"
    shutil.copytree(SUBMISSIONS, subs)
    assert _invoke("leaderboard", "validate", subs).exit_code == 0
    assert _invoke("leaderboard", "validate", subs, "--scorer", "lexicon").exit_code == 0
    rendered = _invoke("leaderboard", "render", subs, "-o", tmp_path / "site")
    assert rendered.exit_code == 0, rendered.output
    again = _invoke("leaderboard", "render", subs, "-o", tmp_path / "site-lexicon", "--scorer", "lexicon")
    assert again.exit_code == 0, again.output
    shown = (tmp_path / "site" / "leaderboard.md").read_text()
    assert shown == (tmp_path / "site-lexicon" / "leaderboard.md").read_text()  # the headline by name
    refused = _invoke("leaderboard", "validate", subs, "--scorer", "detoxify")
    assert refused.exit_code == 1 and "not scored with scorer 'detoxify'" in refused.output
    embedded = json.loads((subs / "organism-dpo.json").read_text())["results"]
    assert _check(tmp_path, embedded, "--max-toxicity", "1").exit_code == 0
    assert _check(tmp_path, embedded, "--max-toxicity", "1", "--scorer", "lexicon").exit_code == 0


# -- agreement -----------------------------------------------------------------------------------------
def test_agreement_is_scipys_and_sklearns_and_leaves_failures_out() -> None:
    from scipy.stats import spearmanr
    from sklearn.metrics import cohen_kappa_score

    from toxbench.agreement import pair_agreement

    a = [0.0, 0.5, 0.75, 0.0, None, 0.5, 0.875, 0.0, 0.5, 0.0]
    b = [0.1, 0.7, 0.2, 0.05, 0.9, float("nan"), 0.8, 0.6, 0.4, 0.3]
    rows = [{"prompt_index": i, "sample": 0, "continuation": f"text {i}"} for i in range(len(a))]
    got = pair_agreement("aligned", ("lexicon", "clf"), (a, b), rows, 0.5, seed=0)
    kept = [i for i in range(len(a)) if i not in (4, 5)]  # a failed on 4, b on 5: left out, never 0
    x, y = [a[i] for i in kept], [b[i] for i in kept]
    assert got["n"] == 8 and got["n_left_out"] == 2
    assert got["spearman"].value == pytest.approx(spearmanr(x, y).statistic, abs=1e-12)
    kappa = cohen_kappa_score([v >= 0.5 for v in x], [v >= 0.5 for v in y])
    assert got["kappa"].value == pytest.approx(kappa, abs=1e-12)
    differ = sum((p >= 0.5) != (q >= 0.5) for p, q in zip(x, y, strict=True))
    assert got["disagreement"].value == pytest.approx(differ / 8)
    gaps = [abs(p - q) for p, q in zip(x, y, strict=True)]
    assert [d["prompt_index"] for d in got["largest_disagreements"]][:2] == [7, 2]  # by |a - b|
    assert got["largest_disagreements"][0]["scores"] == {"lexicon": 0.0, "clf": 0.6}
    assert (
        got["largest_disagreements"][0]["across_threshold"]
        and not got["largest_disagreements"][2]["across_threshold"]
    )
    assert len(got["largest_disagreements"]) == sum(g > 0 for g in gaps)
    assert any("2 of 10 continuations left out" in n for n in got["notes"])


def test_undefined_agreement_is_null_with_the_reason() -> None:
    from toxbench.agreement import pair_agreement

    rows = [{"prompt_index": i, "sample": 0} for i in range(6)]
    got = pair_agreement("base", ("a", "b"), ([0.0] * 6, [0.0, 0.1, 0.2, 0.0, 0.3, 0.1]), rows, 0.5)
    assert got["spearman"] is None and got["kappa"] is None
    assert got["disagreement"].value == 0.0
    assert any("same score" in n for n in got["notes"]) and any("κ is undefined" in n for n in got["notes"])
    none = pair_agreement("base", ("a", "b"), ([None] * 6, [0.1] * 6), rows, 0.5)
    assert none["n"] == 0 and none["disagreement"] is None and none["n_left_out"] == 6
    assert all(not (isinstance(v, float) and math.isnan(v)) for v in (none["spearman"], none["kappa"]))
