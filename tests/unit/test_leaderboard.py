"""`toxbench leaderboard submit | validate | render` on small results files."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from results_fixture import make_results, toxbench_cli, write_json

from toxbench.io import sha256_json
from toxbench.results import validate_results


def invoke(*args: str | Path) -> Result:
    """Run ``toxbench <args>`` as a user would (ToxbenchError -> one line, exit 2)."""
    return CliRunner().invoke(toxbench_cli(), [str(a) for a in args])


def submit(tmp_path: Path, results: dict[str, Any], name: str, subs: Path | None = None) -> Result:
    """Write ``results`` to a file and submit it under ``name`` into ``subs`` (default tmp_path/subs)."""
    path = write_json(tmp_path / "results.json", results)
    return invoke(
        "leaderboard",
        "submit",
        path,
        "--name",
        name,
        "--method",
        "DPO (TRL)",
        "--output-path",
        subs or tmp_path / "subs",
    )


def test_fixture_results_follow_the_schema() -> None:
    validate_results(make_results())


def test_submission_round_trip(tmp_path: Path) -> None:
    results = make_results(0.12)
    result = submit(tmp_path, results, "My DPO run")
    assert result.exit_code == 0, result.output
    path = tmp_path / "subs" / "my-dpo-run.json"
    submission = json.loads(path.read_text())
    assert submission["results"] == results
    assert submission["results_sha256"] == sha256_json(results)
    assert (
        submission["summary"]["aligned_toxicity"]
        == results["tasks"]["elicitation"]["metrics"]["aligned"]["toxicity"]
    )
    assert submission["summary"]["perplexity_change"] == pytest.approx(0.05)
    assert submission["summary"]["tp_minus_share"] == 0.5
    assert submission["provenance"]["scorer"] == results["scorer"]
    assert submission["provenance"]["datasets"] == {"real-toxicity-prompts": {"n": 100, "sha256": "a" * 64}}
    assert submission["method"] == "DPO (TRL)" and submission["url"] is None
    validated = invoke("leaderboard", "validate", "--local", tmp_path / "subs")  # no samples: a local board
    assert validated.exit_code == 0, validated.output
    assert "1 valid, 0 invalid" in validated.output


def test_tasks_not_run_are_null_in_the_summary(tmp_path: Path) -> None:
    assert submit(tmp_path, make_results(tasks=("elicitation",)), "only-elicitation").exit_code == 0
    summary = json.loads((tmp_path / "subs" / "only-elicitation.json").read_text())["summary"]
    assert summary["robustness"] is None and summary["best_emulation_ratio"] is None
    assert summary["tp_minus_share"] is None
    assert invoke("leaderboard", "validate", "--local", tmp_path / "subs").exit_code == 0


def test_tampered_results_are_detected(tmp_path: Path) -> None:
    assert submit(tmp_path, make_results(0.3), "tampered").exit_code == 0
    path = tmp_path / "subs" / "tampered.json"
    submission = json.loads(path.read_text())
    submission["results"]["tasks"]["elicitation"]["metrics"]["aligned"]["toxicity"]["value"] = 0.01
    write_json(path, submission)
    result = invoke("leaderboard", "validate", tmp_path / "subs")
    assert result.exit_code == 1
    assert "tampered.json: results_sha256" in result.output
    assert "summary does not match the embedded results at aligned_toxicity" in result.output


def test_tampered_summary_is_detected(tmp_path: Path) -> None:
    assert submit(tmp_path, make_results(0.3), "edited").exit_code == 0
    path = tmp_path / "subs" / "edited.json"
    submission = json.loads(path.read_text())
    submission["summary"]["robustness"]["value"] = 0.99
    write_json(path, submission)
    result = invoke("leaderboard", "validate", tmp_path / "subs")
    assert result.exit_code == 1
    assert "edited.json: summary does not match the embedded results at robustness" in result.output
    assert "results_sha256" not in result.output


def test_validate_reports_each_bad_file(tmp_path: Path) -> None:
    subs = tmp_path / "subs"
    assert submit(tmp_path, make_results(), "good").exit_code == 0
    (subs / "broken.json").write_text("{not json")
    write_json(subs / "schema.json", {"name": "x"})
    result = invoke("leaderboard", "validate", "--local", subs)
    assert result.exit_code == 1
    assert "ok    good" in result.output
    assert "broken.json: the submission" in result.output and "is not valid JSON" in result.output
    assert "schema.json: does not follow the submission schema" in result.output
    assert "1 valid, 2 invalid" in result.output


@pytest.mark.parametrize("status", ["running", "failed"])
def test_incomplete_run_is_rejected(tmp_path: Path, status: str) -> None:
    results = make_results(tasks=("elicitation", "ablation"))
    results["status"] = status
    if status == "failed":
        results["tasks"]["ablation"] = {"status": "failed", "error": "RuntimeError: out of memory"}
    result = submit(tmp_path, results, "incomplete")
    assert result.exit_code == 2
    assert f"has status {status!r}, not 'complete'" in result.output
    assert status != "failed" or "ablation (RuntimeError: out of memory)" in result.output
    assert not (tmp_path / "subs" / "incomplete.json").exists()


def test_missing_elicitation_is_rejected(tmp_path: Path) -> None:
    result = submit(tmp_path, make_results(tasks=("attribution",)), "no-elicitation")
    assert result.exit_code == 2
    assert "no elicitation task" in result.output and "--tasks elicitation" in result.output


def test_bad_input_files_are_rejected(tmp_path: Path) -> None:
    not_json = tmp_path / "results.json"
    not_json.write_text("{oops")
    result = invoke(
        "leaderboard", "submit", not_json, "--name", "x", "--method", "m", "--output-path", tmp_path
    )
    assert result.exit_code == 2 and "is not valid JSON" in result.output
    result = invoke("leaderboard", "submit", tmp_path / "absent.json", "--name", "x", "--method", "m")
    assert result.exit_code == 2 and "cannot read the results file" in result.output
    results = make_results()
    del results["tasks"]["elicitation"]["metrics"]["aligned"]["f1"]
    result = submit(tmp_path, results, "invalid")
    assert result.exit_code == 2
    assert (
        "does not follow the results schema at tasks.elicitation" in result.output and "'f1'" in result.output
    )


def test_bad_name_or_url_is_rejected(tmp_path: Path) -> None:
    result = submit(tmp_path, make_results(), "../escape")
    assert result.exit_code == 2 and "submission schema at name" in result.output
    path = write_json(tmp_path / "r.json", make_results())
    result = invoke(
        "leaderboard",
        "submit",
        path,
        "--name",
        "ok",
        "--method",
        "m",
        "--url",
        "javascript:alert(1)",
        "--output-path",
        tmp_path / "subs",
    )
    assert result.exit_code == 2 and "submission schema at url" in result.output


def test_name_collision_is_rejected(tmp_path: Path) -> None:
    assert submit(tmp_path, make_results(0.1), "Team A").exit_code == 0
    for clash in ("Team A", "team a", "team-a"):
        result = submit(tmp_path, make_results(0.2), clash)
        assert result.exit_code == 2, clash
        assert "already exists (team-a.json" in result.output
    assert (
        json.loads((tmp_path / "subs" / "team-a.json").read_text())["summary"]["aligned_toxicity"]["value"]
        == 0.1
    )


def _table_names(markdown: str) -> list[list[str]]:
    """The submission names of each table in the Markdown, in row order."""
    tables = markdown.split("\n## ")[1:]
    return [re.findall(r"^\| \d+ \| ([^|]+?) \|", t, flags=re.M) for t in tables]


def test_render_sorts_by_toxicity_and_separates_scorers(tmp_path: Path) -> None:
    subs = tmp_path / "subs"
    for name, results in [
        ("worst", make_results(0.4)),
        ("best", make_results(0.05)),
        ("middle", make_results(0.2)),
        ("detox", make_results(0.01, scorer="detoxify")),
        ("sampled", make_results(0.02, protocol="rtp")),
    ]:
        assert submit(tmp_path, results, name).exit_code == 0
    result = invoke("leaderboard", "render", subs, "--output-path", tmp_path / "site")
    assert result.exit_code == 0, result.output
    markdown = (tmp_path / "site" / "leaderboard.md").read_text()
    assert (
        "Not comparable across tables" in markdown
        and "3 different (base model, scorer, protocol, prompts)" in markdown
    )
    assert _table_names(markdown) == [["detox"], ["best", "middle", "worst"], ["sampled"]]
    assert (
        "## Base model `organism-micro` (`files-base0000`), scorer `detoxify` (`detoxify-v1-0000`), protocol `paper`"
        in markdown
    )
    assert (
        "| 1 | best | DPO (TRL) | 0.050 [0.030, 0.070] | — | 0.600 [0.580, 0.620] | +5.0% | 0.360" in markdown
    )
    page = (tmp_path / "site" / "index.html").read_text()
    assert page.count('<table class="board">') == 3
    assert page.index(">best<") < page.index(">middle<") < page.index(">worst<")
    assert "http" not in page  # self-contained: nothing from the network
    assert re.findall(r'src="([^"]+)"', page) == ["pareto-2.png"]  # the one group with two rows or more
    assert (tmp_path / "site" / "pareto-2.png").read_bytes().startswith(b"\x89PNG")


def test_render_keeps_runs_that_differ_only_in_seed_together(tmp_path: Path) -> None:
    for name, seed in (("seed-0", 0), ("seed-1", 1)):
        assert submit(tmp_path, make_results(0.1 + seed / 10, protocol="rtp", seed=seed), name).exit_code == 0
    assert (
        submit(
            tmp_path, make_results(0.3, protocol="rtp", prompts_sha256="b" * 64), "other-prompts"
        ).exit_code
        == 0
    )
    assert (
        invoke("leaderboard", "render", tmp_path / "subs", "--output-path", tmp_path / "site").exit_code == 0
    )
    markdown = (tmp_path / "site" / "leaderboard.md").read_text()
    # other prompts, or another number of them, are another setting: a table of their own
    assert _table_names(markdown) == [["seed-0", "seed-1"], ["other-prompts"]]
    assert "Not comparable across tables" in markdown


def test_a_run_on_fewer_prompts_is_not_ranked_with_the_full_runs(tmp_path: Path) -> None:
    for name, toxicity, n in (("full-a", 0.2, 1199), ("full-b", 0.3, 1199), ("limit-10", 0.01, 10)):
        results = make_results(toxicity)
        results["tasks"]["elicitation"]["metrics"]["aligned"]["toxicity"]["n"] = n
        assert submit(tmp_path, results, name).exit_code == 0
    assert (
        invoke("leaderboard", "render", tmp_path / "subs", "--output-path", tmp_path / "site").exit_code == 0
    )
    markdown = (tmp_path / "site" / "leaderboard.md").read_text()
    assert sorted(_table_names(markdown)) == [["full-a", "full-b"], ["limit-10"]]
    assert "10 prompts" in markdown and "1199 prompts" in markdown


def test_render_refuses_invalid_submissions(tmp_path: Path) -> None:
    subs = tmp_path / "subs"
    assert submit(tmp_path, make_results(), "fine").exit_code == 0
    (subs / "broken.json").write_text("[]")
    result = invoke("leaderboard", "render", subs, "--output-path", tmp_path / "site")
    assert result.exit_code == 2 and "broken.json" in result.output
    assert not (tmp_path / "site").exists()


def test_render_keeps_another_build_of_the_base_model_apart(tmp_path: Path) -> None:
    """Two methods on base weights that differ (an organism trained on another CPU) are not ranked together."""
    assert submit(tmp_path, make_results(0.1), "on-shipped").exit_code == 0
    rebuilt = make_results(0.05)
    rebuilt["models"]["base"]["fingerprint"] = "files-rebuilt00"
    assert submit(tmp_path, rebuilt, "on-rebuilt").exit_code == 0
    assert (
        invoke("leaderboard", "render", tmp_path / "subs", "--output-path", tmp_path / "site").exit_code == 0
    )
    markdown = (tmp_path / "site" / "leaderboard.md").read_text()
    assert _table_names(markdown) == [["on-shipped"], ["on-rebuilt"]]
    assert "Base model `organism-micro` (`files-rebuilt00`)" in markdown
    assert "2 different (base model, scorer, protocol, prompts)" in markdown


def trained(aligned_toxicity: float, seed: int, **kwargs: Any) -> dict[str, Any]:
    """Results of a model toxbench trained with ``seed`` (its method card recorded with the model)."""
    results = make_results(aligned_toxicity, **kwargs)
    results["models"]["aligned"]["fingerprint"] = f"files-aligned-seed{seed}"
    results["models"]["aligned"]["made_by"] = {
        "method": "dpo",
        "seed": seed,
        "base_fingerprint": "files-base0000",
    }
    return results


def submit_with_seeds(
    tmp_path: Path, main: dict[str, Any], others: list[dict[str, Any]], name: str
) -> Result:
    """Submit ``main`` with ``others`` as its seed runs (each written to its own folder)."""
    paths = []
    for number, results in enumerate([main, *others]):
        folder = tmp_path / f"run-{name}-{number}"
        folder.mkdir()
        paths.append(write_json(folder / "results.json", results))
    seed_args = [a for p in paths[1:] for a in ("--seed-run", p)]
    return invoke(
        "leaderboard",
        "submit",
        paths[0],
        "--name",
        name,
        "--method",
        "DPO",
        "--output-path",
        tmp_path / "subs",
        *seed_args,
    )


def test_seed_runs_give_the_spread_over_training_seeds(tmp_path: Path) -> None:
    main = trained(0.12, 0)
    others = [trained(0.14, 1, tasks=("elicitation",)), trained(0.10, 2, tasks=("elicitation",))]
    result = submit_with_seeds(tmp_path, main, others, "dpo-3-seeds")
    assert result.exit_code == 0, result.output
    submission = json.loads((tmp_path / "subs" / "dpo-3-seeds.json").read_text())
    spread = submission["summary"]["aligned_toxicity_seeds"]
    assert spread["n"] == 3 and spread["seeds"] == [0, 1, 2] and spread["values"] == [0.12, 0.14, 0.10]
    assert spread["mean"] == pytest.approx(0.12) and spread["sd"] == pytest.approx(0.02)
    assert spread["min"] == 0.10 and spread["max"] == 0.14
    assert [r["results"] for r in submission["seed_runs"]] == others
    assert invoke("leaderboard", "validate", "--local", tmp_path / "subs").exit_code == 0
    assert (
        invoke("leaderboard", "render", tmp_path / "subs", "--output-path", tmp_path / "site").exit_code == 0
    )
    assert (
        "| 0.120 [0.100, 0.140] | 0.120 ± 0.020 (3 seeds) |"
        in (tmp_path / "site" / "leaderboard.md").read_text()
    )


def test_rows_rank_by_their_mean_over_seeds(tmp_path: Path) -> None:
    assert submit(tmp_path, make_results(0.11), "one-seed").exit_code == 0
    # its own run is the worse one, but over three seeds it is the better method
    assert (
        submit_with_seeds(tmp_path, trained(0.12, 0), [trained(0.09, 1), trained(0.09, 2)], "three").exit_code
        == 0
    )
    assert (
        invoke("leaderboard", "render", tmp_path / "subs", "--output-path", tmp_path / "site").exit_code == 0
    )
    assert _table_names((tmp_path / "site" / "leaderboard.md").read_text()) == [["three", "one-seed"]]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda r: r["models"]["base"].update(fingerprint="files-otherbase"), "differs from"),
        (lambda r: r["scorer"].update(fingerprint="lexicon-v2"), "the scorer"),
        (lambda r: r["config"].update(seed=7), "the evaluation seed"),
        (lambda r: r["datasets"]["real-toxicity-prompts"].update(sha256="b" * 64), "other data"),
        (
            lambda r: r["models"]["aligned"].update(fingerprint="files-aligned-seed0"),
            "the same aligned model",
        ),
        (lambda r: r["models"]["aligned"]["made_by"].update(seed=0), "trained with seed 0"),
        (lambda r: r.update(status="partial"), "partial"),
    ],
)
def test_a_seed_run_that_is_not_a_replicate_is_refused(tmp_path: Path, change: Any, message: str) -> None:
    other = trained(0.14, 1)
    change(other)
    result = submit_with_seeds(tmp_path, trained(0.12, 0), [other], "refused")
    assert result.exit_code == 2 and message in result.output, result.output
    assert not (tmp_path / "subs" / "refused.json").exists()


def test_an_edited_seed_run_is_detected(tmp_path: Path) -> None:
    assert submit_with_seeds(tmp_path, trained(0.12, 0), [trained(0.14, 1)], "edited").exit_code == 0
    path = tmp_path / "subs" / "edited.json"
    submission = json.loads(path.read_text())
    submission["seed_runs"][0]["results"]["tasks"]["elicitation"]["metrics"]["aligned"]["toxicity"][
        "value"
    ] = 0.12
    path.write_text(json.dumps(submission))
    result = invoke("leaderboard", "validate", tmp_path / "subs")
    assert result.exit_code == 1 and "seed run 1 were edited" in result.output
    # hash recomputed too: the spread no longer follows from the seed runs
    run = submission["seed_runs"][0]
    run["results_sha256"] = sha256_json(run["results"])
    path.write_text(json.dumps(submission))
    result = invoke("leaderboard", "validate", tmp_path / "subs")
    assert result.exit_code == 1 and "aligned_toxicity_seeds" in result.output


def _with_samples(tmp_path: Path, name: str, scores: list[float]) -> Result:
    """Submit a run whose samples give each prompt's aligned score."""
    folder = tmp_path / f"run-{name}"
    folder.mkdir()
    path = write_json(folder / "results.json", make_results(sum(scores) / len(scores)))
    rows = [
        {"task": "elicitation", "role": "aligned", "kind": "continuation", "prompt_index": i, "score": x}
        for i, x in enumerate(scores)
    ]
    (folder / "samples.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return invoke(
        "leaderboard", "submit", path, "--name", name, "--method", "m", "--output-path", tmp_path / "subs"
    )


def test_render_pairs_rows_over_prompts(tmp_path: Path) -> None:
    import numpy as np

    rng = np.random.default_rng(0)
    noise = rng.uniform(0, 0.6, size=200)  # the prompts' own spread, shared by every model
    assert _with_samples(tmp_path, "low", list(noise)).exit_code == 0
    assert _with_samples(tmp_path, "shifted", list(noise + 0.05)).exit_code == 0
    assert _with_samples(tmp_path, "same", list(noise + rng.normal(0, 0.05, size=200))).exit_code == 0
    assert (
        invoke("leaderboard", "render", tmp_path / "subs", "--output-path", tmp_path / "site").exit_code == 0
    )
    found = {
        (d["row"], d["column"]): d for d in json.loads((tmp_path / "site" / "differences.json").read_text())
    }
    assert len(found) == 3
    shifted = found[("shifted", "low")] if ("shifted", "low") in found else found[("low", "shifted")]
    assert abs(shifted["value"]) == pytest.approx(0.05) and shifted["separated"]
    same = next(d for k, d in found.items() if set(k) == {"same", "low"})
    assert not same["separated"] and same["ci_low"] < 0 < same["ci_high"]
    markdown = (tmp_path / "site" / "leaderboard.md").read_text()
    assert "Paired differences in aligned toxicity" in markdown and "of 3 pairs differ" in markdown


def _ranks(markdown: str) -> dict[str, int]:
    return {name: int(rank) for rank, name in re.findall(r"^\| (\d+) \| ([^|]+?) \|", markdown, flags=re.M)}


def test_rows_that_no_interval_separates_share_a_rank(tmp_path: Path) -> None:
    import numpy as np

    rng = np.random.default_rng(0)
    noise = rng.uniform(0, 0.6, size=200)
    assert _with_samples(tmp_path, "low", list(noise)).exit_code == 0
    assert _with_samples(tmp_path, "same", list(noise + rng.normal(0, 0.05, size=200))).exit_code == 0
    assert _with_samples(tmp_path, "shifted", list(noise + 0.05)).exit_code == 0
    assert (
        invoke("leaderboard", "render", tmp_path / "subs", "--output-path", tmp_path / "site").exit_code == 0
    )
    markdown = (tmp_path / "site" / "leaderboard.md").read_text()
    assert _ranks(markdown) == {"low": 1, "same": 1, "shifted": 3}
    assert _ranks(markdown) == _ranks_html((tmp_path / "site" / "index.html").read_text())


def _ranks_html(page: str) -> dict[str, int]:
    return {
        name: int(rank)
        for rank, name in re.findall(
            r'<tr><td class="num" data-sort="(\d+)">\d+</td><td[^>]*>(?:<a [^>]*>)?([^<]+)', page
        )
    }


def test_without_samples_rows_share_a_rank_where_their_intervals_overlap(tmp_path: Path) -> None:
    for name, toxicity in (("a", 0.10), ("b", 0.12), ("c", 0.30)):  # intervals of ±0.02
        assert submit(tmp_path, make_results(toxicity), name).exit_code == 0
    assert (
        invoke("leaderboard", "render", tmp_path / "subs", "--output-path", tmp_path / "site").exit_code == 0
    )
    assert _ranks((tmp_path / "site" / "leaderboard.md").read_text()) == {"a": 1, "b": 1, "c": 3}


def test_the_pareto_plot_marks_rows_past_the_perplexity_bound(tmp_path: Path) -> None:
    from toxbench.leaderboard.render import PERPLEXITY_BOUND

    fluent = make_results(0.2, aligned_perplexity=10.5)  # +5%
    broken = make_results(0.05, aligned_perplexity=10.0 * (1 + PERPLEXITY_BOUND) + 1.0)  # past the bound
    assert submit(tmp_path, fluent, "fluent").exit_code == 0
    assert submit(tmp_path, broken, "broken").exit_code == 0
    assert (
        invoke("leaderboard", "render", tmp_path / "subs", "--output-path", tmp_path / "site").exit_code == 0
    )
    markdown = (tmp_path / "site" / "leaderboard.md").read_text()
    row = {
        name: line for line in markdown.splitlines() for name in ("fluent", "broken") if f"| {name} |" in line
    }
    assert "+20.0% †" in row["broken"] and "†" not in row["fluent"]
    assert "![Aligned toxicity against perplexity change](pareto-1.png)" in markdown
    assert (tmp_path / "site" / "pareto-1.png").stat().st_size > 1000


def test_an_acceptable_submission_says_how_to_propose_it(tmp_path: Path) -> None:
    result = _with_samples(tmp_path, "full-run", [0.1, 0.2, 0.3])
    assert result.exit_code == 0, result.output
    assert "full-run.json" in result.output and "full-run.samples.jsonl.gz" in result.output
    assert "git switch -c submission/full-run" in result.output and "pull request" in result.output
    validated = invoke("leaderboard", "validate", tmp_path / "subs")
    assert validated.exit_code == 0 and "1 valid, 0 invalid" in validated.output, validated.output


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (lambda r: r["config"].update(limit=10), "the full prompt set"),
        (
            lambda r: r["models"]["base"].update(spec="gpt2-medium"),
            "lexicon scorer is exact only on the model organism",
        ),
        (lambda r: r.update(scorer={"name": "my-plugin-scorer", "fingerprint": "x"}), "not a public one"),
        (
            lambda r: r["tasks"]["elicitation"]["config"]["protocol"].update(name="my-protocol"),
            "is not one the board ranks under",
        ),
    ],
)
def test_the_board_refuses_what_it_cannot_rank_or_verify(tmp_path: Path, change: Any, reason: str) -> None:
    from toxbench.leaderboard.submission import acceptance_problems

    folder = tmp_path / "run"
    folder.mkdir()
    results = make_results(0.2)
    change(results)
    path = write_json(folder / "results.json", results)
    row = {"task": "elicitation", "role": "aligned", "kind": "continuation", "prompt_index": 0, "score": 0.2}
    (folder / "samples.jsonl").write_text(json.dumps(row) + "\n")
    result = invoke(
        "leaderboard", "submit", path, "--name", "x", "--method", "m", "--output-path", tmp_path / "subs"
    )
    assert result.exit_code == 0, result.output  # a local board may hold it
    assert "would not accept it" in result.output and reason in result.output
    assert "git switch" not in result.output
    validated = invoke("leaderboard", "validate", tmp_path / "subs")
    assert validated.exit_code == 1 and "not accepted" in validated.output and reason in validated.output
    assert invoke("leaderboard", "validate", "--local", tmp_path / "subs").exit_code == 0
    assert any(
        reason in p for p in acceptance_problems(json.loads((tmp_path / "subs" / "x.json").read_text()))
    )


def test_a_submission_without_samples_is_not_accepted(tmp_path: Path) -> None:
    assert submit(tmp_path, make_results(0.2), "no-samples").exit_code == 0
    validated = invoke("leaderboard", "validate", tmp_path / "subs")
    assert validated.exit_code == 1 and "carries no samples" in validated.output
