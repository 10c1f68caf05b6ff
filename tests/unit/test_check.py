"""`toxbench check`: each gate passes and fails when it should; exit 0 / 1 / 2; nothing passes silently."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from results_fixture import make_results, toxbench_cli, write_json


def check(
    tmp_path: Path, results: dict[str, Any], *args: str, baseline: dict[str, Any] | None = None
) -> Result:
    """Run ``toxbench check`` on ``results`` (and ``baseline``), written to files in ``tmp_path``."""
    argv = ["check", str(write_json(tmp_path / "results.json", results)), *args]
    if baseline is not None:
        argv += ["--baseline", str(write_json(tmp_path / "baseline.json", baseline))]
    return CliRunner().invoke(toxbench_cli(), argv)


def test_all_gates_pass(tmp_path: Path) -> None:
    result = check(
        tmp_path,
        make_results(0.1),
        "--max-toxicity",
        "0.15",
        "--max-perplexity-increase",
        "0.06",
        "--min-robustness",
        "0.7",
        "--max-toxicity-regression",
        "0.05",  # 0.100 vs 0.095, each +- 0.02: the unpaired interval of the change is [-0.035, +0.045]
        baseline=make_results(0.095),
    )
    assert result.exit_code == 0, result.output
    assert "4 of 4 gates passed" in result.output and "FAIL" not in result.output


@pytest.mark.parametrize(
    ("args", "gate"),
    [
        (["--max-toxicity", "0.09"], "--max-toxicity"),
        (["--max-perplexity-increase", "0.04"], "--max-perplexity-increase"),  # 10.0 -> 10.5 is +5%
        (["--min-robustness", "0.81"], "--min-robustness"),
    ],
)
def test_each_gate_fails(tmp_path: Path, args: list[str], gate: str) -> None:
    result = check(tmp_path, make_results(0.1), *args)
    assert result.exit_code == 1, result.output
    assert "0 of 1 gates passed, 1 failed" in result.output
    assert gate in result.output and "FAIL" in result.output


def test_regression_gate_fails_when_toxicity_rises_too_much(tmp_path: Path) -> None:
    result = check(
        tmp_path, make_results(0.2), "--max-toxicity-regression", "0.05", baseline=make_results(0.1)
    )
    assert result.exit_code == 1, result.output
    assert "+0.1000" in result.output
    assert "FAIL --max-toxicity-regression: non-inferiority: 0.1000 -> 0.2000" in result.output
    assert "aggregates only, unpaired" in result.output  # no samples beside the results: said, not hidden


def test_boundaries_pass(tmp_path: Path) -> None:
    result = check(
        tmp_path, make_results(0.1, robustness=0.8), "--max-toxicity", "0.1", "--min-robustness", "0.8"
    )
    assert result.exit_code == 0, result.output


def test_strict_uses_the_conservative_end_of_the_interval(tmp_path: Path) -> None:
    results = make_results(0.1, robustness=0.8)  # intervals are value +- 0.02
    assert check(tmp_path, results, "--max-toxicity", "0.11", "--min-robustness", "0.79").exit_code == 0
    strict = check(tmp_path, results, "--max-toxicity", "0.11", "--min-robustness", "0.79", "--strict")
    assert strict.exit_code == 1
    assert "95% upper bound" in strict.output and "95% lower bound" in strict.output
    assert "0 of 2 gates passed" in strict.output


def test_strict_without_an_interval_fails(tmp_path: Path) -> None:
    results = make_results(0.1)
    toxicity = results["tasks"]["elicitation"]["metrics"]["aligned"]["toxicity"]
    toxicity["ci_low"] = toxicity["ci_high"] = None
    result = check(tmp_path, results, "--max-toxicity", "0.5", "--strict")
    assert result.exit_code == 1
    assert "tasks.elicitation.metrics.aligned.toxicity.ci_high is null" in result.output


def test_missing_metric_fails_loudly(tmp_path: Path) -> None:
    result = check(
        tmp_path, make_results(tasks=("elicitation",)), "--max-toxicity", "0.5", "--min-robustness", "0.5"
    )
    assert result.exit_code == 2
    assert "tasks.unalignment.metrics.robustness is missing" in result.output
    assert "the unalignment task was not run" in result.output and "--tasks unalignment" in result.output


def test_missing_aligned_model_fails_loudly(tmp_path: Path) -> None:
    results = make_results(tasks=("elicitation",))
    results["config"]["aligned"] = None
    del results["models"]["aligned"], results["tasks"]["elicitation"]["metrics"]["aligned"]
    result = check(tmp_path, results, "--max-toxicity", "0.5")
    assert result.exit_code == 2
    assert (
        "tasks.elicitation.metrics.aligned.toxicity is missing" in result.output
        and "--aligned" in result.output
    )


def test_null_metric_fails_never_passes(tmp_path: Path) -> None:
    result = check(tmp_path, make_results(robustness=None), "--min-robustness", "-1")
    assert result.exit_code == 1
    assert "FAIL --min-robustness: tasks.unalignment.metrics.robustness is null" in result.output


def test_baseline_with_another_scorer_is_refused(tmp_path: Path) -> None:
    result = check(
        tmp_path,
        make_results(0.1),
        "--max-toxicity-regression",
        "0.5",
        baseline=make_results(0.1, scorer="detoxify"),
    )
    assert result.exit_code == 2
    assert "refusing to compare with the baseline" in result.output
    assert "the scorer differs (lexicon-v1-0000 vs the baseline's detoxify-v1-0000)" in result.output


@pytest.mark.parametrize(
    ("baseline", "reason"),
    [
        (make_results(0.1, protocol="rtp"), "the protocol differs"),
        (make_results(0.1, prompts_sha256="b" * 64), "task read another 'real-toxicity-prompts'"),
    ],
)
def test_baseline_with_other_protocol_or_data_is_refused(
    tmp_path: Path, baseline: dict[str, Any], reason: str
) -> None:
    result = check(tmp_path, make_results(0.1), "--max-toxicity-regression", "0.5", baseline=baseline)
    assert result.exit_code == 2 and reason in result.output


def _changed(path: str, value: Any) -> dict[str, Any]:
    """The fixture's results with one setting changed (``path``: dotted keys)."""
    results = make_results(0.1)
    *parents, last = path.split(".")
    node = results
    for key in parents:
        node = node[key]
    node[last] = value
    return results


@pytest.mark.parametrize(
    ("path", "value", "reason"),
    [
        ("config.fluency.perplexity_window", 256, "the fluency settings differ"),
        ("config.fluency.bos", "corpus_start", "the fluency settings differ"),
        ("tasks.unalignment.config.scales", [2.0, 5.0], "the unalignment task's option 'scales' differs"),
        ("tasks.unalignment.config.ppl_bound", 0.5, "the unalignment task's option 'ppl_bound' differs"),
        ("tasks.unalignment.config.n_neurons", 20, "the unalignment task's option 'n_neurons' differs"),
        ("tasks.elicitation.config.subset", "all", "the elicitation task's option 'subset' differs"),
        ("tasks.ablation.version", "0.9", "the ablation task's version differs"),
        (
            "tasks.elicitation.datasets.real-toxicity-prompts.sha256",
            "c" * 64,
            "the elicitation task read another 'real-toxicity-prompts'",
        ),
    ],
)
def test_baseline_with_other_settings_is_refused(tmp_path: Path, path: str, value: Any, reason: str) -> None:
    """Settings that move the metrics make two runs incomparable, even where the run-level dataset
    record (the last task's) agrees."""
    result = check(
        tmp_path, make_results(0.1), "--max-toxicity-regression", "0.5", baseline=_changed(path, value)
    )
    assert result.exit_code == 2, result.output
    assert "refusing to compare with the baseline" in result.output and reason in result.output
    assert "Traceback" not in result.output


def test_baseline_with_another_seed_is_compared(tmp_path: Path) -> None:
    result = check(
        tmp_path,
        make_results(0.1, protocol="rtp", seed=1),
        "--max-toxicity-regression",
        "0.05",
        baseline=make_results(0.1, protocol="rtp", seed=2),
    )
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "no gate given"),
        (["--max-toxicity-regression", "0.1"], "compare with a run: pass --baseline"),
    ],
)
def test_usage_errors_exit_2(tmp_path: Path, args: list[str], message: str) -> None:
    result = check(tmp_path, make_results(), *args)
    assert result.exit_code == 2 and message in result.output


def test_bad_input_exits_2(tmp_path: Path) -> None:
    (tmp_path / "broken.json").write_text("not json")
    result = CliRunner().invoke(
        toxbench_cli(), ["check", str(tmp_path / "broken.json"), "--max-toxicity", "1"]
    )
    assert result.exit_code == 2 and "is not valid JSON" in result.output
    result = CliRunner().invoke(
        toxbench_cli(), ["check", str(tmp_path / "absent.json"), "--max-toxicity", "1"]
    )
    assert result.exit_code == 2 and "cannot read the results file" in result.output
    invalid = make_results()
    invalid["scorer"] = {"name": "lexicon"}
    result = check(tmp_path, invalid, "--max-toxicity", "1")
    assert result.exit_code == 2 and "does not follow the results schema at scorer" in result.output


def test_incomplete_run_exits_2(tmp_path: Path) -> None:
    results = make_results()
    results["status"] = "running"
    result = check(tmp_path, results, "--max-toxicity", "1")
    assert result.exit_code == 2 and "has status 'running', not 'complete'" in result.output


def test_malformed_metric_exits_2(tmp_path: Path) -> None:
    results = make_results()
    results["tasks"]["unalignment"]["metrics"]["robustness"] = 0.9  # a bare number, not a metric object
    result = check(tmp_path, results, "--min-robustness", "0.5")
    assert (
        result.exit_code == 2
        and "tasks.unalignment.metrics.robustness is not a metric object" in result.output
    )


def test_a_results_file_of_another_schema_version(tmp_path) -> None:
    results = make_results()
    results["schema_version"] = "0.9"
    result = check(tmp_path, results, "--max-toxicity", "0.5")
    assert result.exit_code == 2 and "written with results schema '0.9'" in result.output


def paired_runs(tmp_path: Path, candidate: list[float], baseline: list[float]) -> tuple[Path, Path]:
    """A candidate run and a baseline run whose samples give each prompt's aligned-model score."""
    import json

    paths = []
    for name, scores in (("candidate", candidate), ("baseline", baseline)):
        folder = tmp_path / name
        folder.mkdir()
        rows = [
            {"task": "elicitation", "role": "aligned", "kind": "continuation", "prompt_index": i, "score": x}
            for i, x in enumerate(scores)
        ]
        (folder / "samples.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
        paths.append(write_json(folder / "results.json", make_results(sum(scores) / len(scores))))
    return paths[0], paths[1]


def gate(candidate: Path, baseline: Path, limit: str, *extra: str) -> Result:
    argv = ["check", str(candidate), "--baseline", str(baseline), "--max-toxicity-regression", limit, *extra]
    return CliRunner().invoke(toxbench_cli(), argv)


# Ten prompts whose own spread is wide; the candidate is 0.03 more toxic on each, against a limit of 0.02.
BASE10 = [0.05, 0.4, 0.1, 0.7, 0.2, 0.0, 0.55, 0.3, 0.15, 0.6]


def test_an_underpowered_regression_beyond_the_limit_is_not_a_pass(tmp_path: Path) -> None:
    noise = [0.04, -0.05, 0.06, -0.04, 0.05, 0.03, -0.03, 0.07, 0.02, 0.15]  # mean +0.03
    candidate, baseline = paired_runs(tmp_path, [b + d for b, d in zip(BASE10, noise, strict=True)], BASE10)
    result = gate(candidate, baseline, "0.02")
    assert result.exit_code == 1, result.output
    assert "INCONCLUSIVE" in result.output and "inconclusive: the interval holds the limit" in result.output
    needed = re.search(r"about (\d+) prompts \(now 10\) would decide it", result.output)
    assert needed and int(needed.group(1)) > 10
    assert "non-inferiority" in result.output and "0 of 1 gates passed, 1 inconclusive" in result.output
    # superiority: only a proven regression fails; the output names the rule it applied
    lenient = gate(candidate, baseline, "0.02", "--mode", "superiority")
    assert lenient.exit_code == 0, lenient.output
    assert "superiority" in lenient.output and "lower 95% end <= +0.0200" in lenient.output
    # --strict covers the regression gates too
    assert gate(candidate, baseline, "0.02", "--mode", "superiority", "--strict").exit_code == 1


def test_equal_toxicity_on_the_full_prompt_set_passes(tmp_path: Path) -> None:
    import numpy as np

    scores = list(np.random.default_rng(0).uniform(0, 1, size=1199))
    candidate, baseline = paired_runs(tmp_path, scores, scores)
    result = gate(candidate, baseline, "0.02")
    assert result.exit_code == 0, result.output
    assert "1 of 1 gates passed" in result.output and "1199 prompts paired by index" in result.output


def test_a_proven_regression_fails_in_either_mode(tmp_path: Path) -> None:
    candidate, baseline = paired_runs(tmp_path, [b + 0.2 for b in BASE10], BASE10)
    for mode in ("non-inferiority", "superiority"):
        result = gate(candidate, baseline, "0.02", "--mode", mode)
        assert result.exit_code == 1 and "the whole interval lies beyond the limit" in result.output


def test_aggregates_without_intervals_are_inconclusive_not_passed(tmp_path: Path) -> None:
    """Without samples and without intervals nothing shows the candidate within the limit."""
    candidate, baseline = make_results(0.1), make_results(0.1)
    for results in (candidate, baseline):
        toxicity = results["tasks"]["elicitation"]["metrics"]["aligned"]["toxicity"]
        toxicity["ci_low"] = toxicity["ci_high"] = None
    result = check(tmp_path, candidate, "--max-toxicity-regression", "0.05", baseline=baseline)
    assert result.exit_code == 1 and "INCONCLUSIVE" in result.output
    lenient = check(
        tmp_path, candidate, "--max-toxicity-regression", "0.05", "--mode", "superiority", baseline=baseline
    )
    assert lenient.exit_code == 0, lenient.output


def test_strict_reaches_the_perplexity_gate(tmp_path: Path) -> None:
    results = make_results(aligned_perplexity=10.5, base_perplexity=10.0)  # aligned interval +- 1.0
    assert check(tmp_path, results, "--max-perplexity-increase", "0.06").exit_code == 0
    strict = check(tmp_path, results, "--max-perplexity-increase", "0.06", "--strict")
    assert strict.exit_code == 1 and "95% upper bound" in strict.output
