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
        "--out",
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
    validated = invoke("leaderboard", "validate", tmp_path / "subs")
    assert validated.exit_code == 0, validated.output
    assert "1 valid, 0 invalid" in validated.output


def test_tasks_not_run_are_null_in_the_summary(tmp_path: Path) -> None:
    assert submit(tmp_path, make_results(tasks=("elicitation",)), "only-elicitation").exit_code == 0
    summary = json.loads((tmp_path / "subs" / "only-elicitation.json").read_text())["summary"]
    assert summary["robustness"] is None and summary["best_emulation_ratio"] is None
    assert summary["tp_minus_share"] is None
    assert invoke("leaderboard", "validate", tmp_path / "subs").exit_code == 0


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
    result = invoke("leaderboard", "validate", subs)
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
    result = invoke("leaderboard", "submit", not_json, "--name", "x", "--method", "m", "--out", tmp_path)
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
        "--out",
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
    result = invoke("leaderboard", "render", subs, "--out", tmp_path / "site")
    assert result.exit_code == 0, result.output
    markdown = (tmp_path / "site" / "leaderboard.md").read_text()
    assert (
        "Not comparable across tables" in markdown
        and "3 different (base model, scorer, protocol)" in markdown
    )
    assert _table_names(markdown) == [["detox"], ["best", "middle", "worst"], ["sampled"]]
    assert (
        "## Base model `organism-micro` (`files-base0000`), scorer `detoxify` (`detoxify-v1-0000`), protocol `paper`"
        in markdown
    )
    assert "| 1 | best | DPO (TRL) | 0.050 [0.030, 0.070] | 0.600 [0.580, 0.620] | +5.0% | 0.360" in markdown
    page = (tmp_path / "site" / "index.html").read_text()
    assert page.count('<table class="board">') == 3
    assert page.index(">best<") < page.index(">middle<") < page.index(">worst<")
    assert "src=" not in page and "http" not in page  # self-contained: nothing from the network


def test_render_keeps_runs_that_differ_only_in_seed_together(tmp_path: Path) -> None:
    for name, seed in (("seed-0", 0), ("seed-1", 1)):
        assert submit(tmp_path, make_results(0.1 + seed / 10, protocol="rtp", seed=seed), name).exit_code == 0
    assert (
        submit(
            tmp_path, make_results(0.3, protocol="rtp", prompts_sha256="b" * 64), "other-prompts"
        ).exit_code
        == 0
    )
    assert invoke("leaderboard", "render", tmp_path / "subs", "--out", tmp_path / "site").exit_code == 0
    markdown = (tmp_path / "site" / "leaderboard.md").read_text()
    assert _table_names(markdown) == [["seed-0", "seed-1", "other-prompts"]]
    assert "Not comparable across tables" not in markdown
    assert "dataset `real-toxicity-prompts` differs between rows (2 versions)" in markdown


def test_render_refuses_invalid_submissions(tmp_path: Path) -> None:
    subs = tmp_path / "subs"
    assert submit(tmp_path, make_results(), "fine").exit_code == 0
    (subs / "broken.json").write_text("[]")
    result = invoke("leaderboard", "render", subs, "--out", tmp_path / "site")
    assert result.exit_code == 2 and "broken.json" in result.output
    assert not (tmp_path / "site").exists()


def test_render_keeps_another_build_of_the_base_model_apart(tmp_path: Path) -> None:
    """Two methods on base weights that differ (an organism trained on another CPU) are not ranked together."""
    assert submit(tmp_path, make_results(0.1), "on-shipped").exit_code == 0
    rebuilt = make_results(0.05)
    rebuilt["models"]["base"]["fingerprint"] = "files-rebuilt00"
    assert submit(tmp_path, rebuilt, "on-rebuilt").exit_code == 0
    assert invoke("leaderboard", "render", tmp_path / "subs", "--out", tmp_path / "site").exit_code == 0
    markdown = (tmp_path / "site" / "leaderboard.md").read_text()
    assert _table_names(markdown) == [["on-shipped"], ["on-rebuilt"]]
    assert "Base model `organism-micro` (`files-rebuilt00`)" in markdown
    assert "2 different (base model, scorer, protocol)" in markdown
