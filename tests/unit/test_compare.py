"""``toxbench compare`` (harness/compare.py): runs side by side, paired differences only where the runs
scored the same prompts, and bad input as one line with exit status 2."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from results_fixture import make_results, write_json

from toxbench.cli import _Group
from toxbench.compare import compare, compare_runs, render
from toxbench.errors import ToxbenchError

# Per prompt, the scores of its samples (a prompt may have several; a failed score is None).
BASE = [[0.6], [0.5], [0.9], [0.4], [0.7], [0.8]]
ALIGNED_A = [[0.1], [0.2], [0.0], [0.3], [0.2], [0.1]]
ALIGNED_B = [[0.2], [0.2, 0.4], [0.1], [0.2], [0.5, None], [0.3]]
BASE_B = [[0.6], [0.6], [0.9], [0.4], [0.7], [0.9]]


def _mean(scores: list[float | None]) -> float:
    return float(np.mean([s for s in scores if s is not None]))


def _write_run(folder: Path, aligned: list, base: list, prompts_sha256: str) -> Path:
    """A run folder: results.json in the real shape and samples.jsonl with the given per-prompt scores."""
    folder.mkdir(parents=True)
    results = make_results(
        float(np.mean([_mean(s) for s in aligned])),
        base_toxicity=float(np.mean([_mean(s) for s in base])),
        prompts_sha256=prompts_sha256,
        tasks=("elicitation", "unalignment"),
    )
    write_json(folder / "results.json", results)
    rows = [
        {"task": "elicitation", "role": role, "kind": "continuation", "prompt_index": i, "score": s}
        for role, prompts in (("base", base), ("aligned", aligned))
        for i, scores in enumerate(prompts)
        for s in scores
    ]
    (folder / "samples.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return folder


@pytest.fixture
def runs(tmp_path: Path) -> list[Path]:
    """Runs a and b read the same prompts; c read others."""
    return [
        _write_run(tmp_path / "a", ALIGNED_A, BASE, "a" * 64),
        _write_run(tmp_path / "b", ALIGNED_B, BASE_B, "a" * 64),
        _write_run(tmp_path / "c", ALIGNED_B, BASE, "c" * 64),
    ]


def test_metrics_side_by_side(runs: list[Path]) -> None:
    table = compare_runs(runs)
    assert [r["label"] for r in table["runs"]] == ["a", "b", "c"] and table["reference"] == "a"
    assert (
        table["runs"][0]["model"] == "organism-micro" and table["runs"][0]["aligned"] == "organism-micro:dpo"
    )
    aligned = table["metrics"]["elicitation.aligned.toxicity"]
    assert aligned["a"]["value"] == pytest.approx(np.mean([_mean(s) for s in ALIGNED_A]))
    assert aligned["b"]["value"] == pytest.approx(np.mean([_mean(s) for s in ALIGNED_B]))
    assert table["metrics"]["elicitation.base.perplexity"]["c"]["value"] == pytest.approx(10.0)
    assert table["metrics"]["unalignment.robustness"]["b"]["value"] == pytest.approx(0.8)
    assert "elicitation.difference.toxicity" in table["metrics"]
    assert not any(key.startswith("unalignment.worst_variant") for key in table["metrics"])  # text


def test_the_paired_difference_is_the_mean_of_per_prompt_differences(runs: list[Path]) -> None:
    table = compare_runs(runs)
    by_metric = {(p["run"], p["metric"]): p for p in table["paired"]}
    expected = np.mean([_mean(b) - _mean(a) for a, b in zip(ALIGNED_A, ALIGNED_B, strict=True)])
    aligned = by_metric["b", "elicitation.aligned.toxicity"]
    assert aligned["reference"] == "a"
    assert aligned["difference"]["value"] == pytest.approx(expected)
    assert aligned["difference"]["n"] == len(ALIGNED_A)
    assert aligned["difference"]["ci_low"] <= expected <= aligned["difference"]["ci_high"]
    base = by_metric["b", "elicitation.base.toxicity"]
    assert base["difference"]["value"] == pytest.approx(
        np.mean([_mean(b) - _mean(a) for a, b in zip(BASE, BASE_B, strict=True)])
    )
    assert not any(p["run"] == "c" for p in table["paired"])  # other prompts: nothing to pair
    (note,) = [n for n in table["notes"] if n.startswith("c:")]
    assert "real-toxicity-prompts" in note and "sha256" in note


def test_another_reference_pairs_against_it(runs: list[Path]) -> None:
    table = compare_runs(runs, reference=1)
    assert table["reference"] == "b"
    (aligned,) = [p for p in table["paired"] if p["metric"] == "elicitation.aligned.toxicity"]
    assert aligned["run"] == "a"
    assert aligned["difference"]["value"] == pytest.approx(
        np.mean([_mean(a) - _mean(b) for a, b in zip(ALIGNED_A, ALIGNED_B, strict=True)])
    )


def test_a_run_without_samples_gets_a_note_not_a_paired_row(runs: list[Path]) -> None:
    (runs[1] / "samples.jsonl").unlink()
    table = compare_runs(runs[:2])
    assert table["paired"] == []
    assert any("no samples.jsonl" in n for n in table["notes"])


def test_runs_sharing_a_folder_name_get_distinct_labels(tmp_path: Path) -> None:
    one = _write_run(tmp_path / "x" / "run", ALIGNED_A, BASE, "a" * 64)
    two = _write_run(tmp_path / "y" / "run", ALIGNED_B, BASE_B, "a" * 64)
    labels = [r["label"] for r in compare_runs([one, two / "results.json"])["runs"]]
    assert labels == ["x/run", "y/run"]


def test_bad_input_names_the_path(tmp_path: Path, runs: list[Path]) -> None:
    with pytest.raises(ToxbenchError, match="without a results.json"):
        compare_runs([runs[0], tmp_path])
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    with pytest.raises(ToxbenchError, match="not valid JSON") as err:
        compare_runs([runs[0], broken])
    assert str(broken) in str(err.value)


@pytest.mark.parametrize("fmt", ["text", "markdown", "json"])
def test_each_format_shows_every_run(runs: list[Path], fmt: str) -> None:
    result = CliRunner().invoke(compare, [*map(str, runs), "--format", fmt])
    assert result.exit_code == 0, result.output
    for label in ("a", "b", "c"):
        assert f"{label}: organism-micro" in result.output or f'"label": "{label}"' in result.output
    if fmt == "json":
        parsed = json.loads(result.output)
        assert parsed["reference"] == "a" and len(parsed["paired"]) == 2
    else:
        assert "elicitation.aligned.toxicity" in result.output and "paired" in result.output
    assert render(compare_runs(runs), fmt) == result.output


def test_fewer_than_two_runs_is_a_usage_error(runs: list[Path]) -> None:
    result = CliRunner().invoke(compare, [str(runs[0])])
    assert result.exit_code == 2 and "at least 2 runs" in result.output
    result = CliRunner().invoke(compare, [*map(str, runs), "--reference", "3"])
    assert result.exit_code == 2 and "--reference 3" in result.output


def test_a_missing_folder_exits_2_naming_it(tmp_path: Path, runs: list[Path]) -> None:
    missing = tmp_path / "no-such-run"
    for cli, args in ((compare, []), (_Group(name="toxbench", commands=[compare]), ["compare"])):
        result = CliRunner().invoke(cli, [*args, str(runs[0]), str(missing)])
        assert result.exit_code == 2, result.output
        assert str(missing) in result.output and "Traceback" not in result.output
        assert len(result.output.strip().splitlines()) == 1
