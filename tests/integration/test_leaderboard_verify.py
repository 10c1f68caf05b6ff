"""`toxbench leaderboard verify`: a submission is re-scored from its own samples; numbers that do not
follow from them are refused, even when the submitter recomputed the hash."""

from __future__ import annotations

import gzip
import json

import pytest
from click.testing import CliRunner

from toxbench.cli import main
from toxbench.io import sha256_file, sha256_json
from toxbench.leaderboard.submission import load_submissions, submit
from toxbench.leaderboard.verify import verify_submission
from toxbench.runner import RunConfig, run


@pytest.fixture(scope="module")
def board(micro_organism, tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    run(
        RunConfig(
            model="organism-micro",
            aligned=str(micro_organism.dpo_dir),  # a local folder: its absolute path must not be published
            limit=20,
            output_path=out,
            task_options={"ablation": {"alphas": [1.0]}},
        )
    )
    return out / "results.json"


def fresh(board, tmp_path):
    folder = tmp_path / "subs"
    path = submit(board, "micro-dpo", "DPO (TRL)", None, folder)
    return folder, path


def test_an_honest_submission_is_verified(board, tmp_path) -> None:
    folder, path = fresh(board, tmp_path)
    submission = json.loads(path.read_text())
    assert submission["samples"]["file"] == "micro-dpo.samples.jsonl.gz"
    assert submission["samples"]["rows"] == sum(
        1 for line in board.with_name("samples.jsonl").open() if line.strip()
    )

    def strings(x):
        if isinstance(x, dict):
            return [s for v in x.values() for s in strings(v)]
        if isinstance(x, list):
            return [s for v in x for s in strings(v)]
        return [x] if isinstance(x, str) else []

    assert not [v for v in strings(submission) if v.startswith("/")], "an absolute local path was published"
    assert submission["results"]["models"]["aligned"]["target"].startswith("<local>/")
    problems, notes = verify_submission(path, submission)
    assert problems == [] and notes and "tp_minus_share" in notes[0]
    done = CliRunner().invoke(main, ["leaderboard", "verify", str(folder)])
    assert done.exit_code == 0 and "1 verified, 0 refused" in done.output


def test_an_edited_metric_with_a_recomputed_hash_is_refused(board, tmp_path) -> None:
    folder, path = fresh(board, tmp_path)
    submission = json.loads(path.read_text())
    better = submission["summary"]["aligned_toxicity"]["value"] - 0.05
    submission["summary"]["aligned_toxicity"]["value"] = better
    submission["results"]["tasks"]["elicitation"]["metrics"]["aligned"]["toxicity"]["value"] = better
    submission["results_sha256"] = sha256_json(submission["results"])
    path.write_text(json.dumps(submission))
    valid, problems = load_submissions(folder)
    assert len(valid) == 1 and not problems  # the hash alone cannot tell
    wrong, _ = verify_submission(path, submission)
    assert len(wrong) == 1 and wrong[0].startswith("aligned_toxicity: submitted")
    done = CliRunner().invoke(main, ["leaderboard", "verify", str(folder)])
    assert done.exit_code == 1 and "0 verified, 1 refused" in done.output


def test_edited_samples_are_refused(board, tmp_path) -> None:
    folder, path = fresh(board, tmp_path)
    samples = folder / "micro-dpo.samples.jsonl.gz"
    with gzip.open(samples, "rt") as fh:
        rows = [json.loads(line) for line in fh]
    first = next(r for r in rows if r["task"] == "elicitation" and r["role"] == "aligned")
    first["score"] = 0.0 if first["score"] else 1.0
    with gzip.open(samples, "wt") as fh:
        fh.writelines(json.dumps(r) + "\n" for r in rows)
    valid, problems = load_submissions(folder)
    assert "does not match the recorded sha256" in problems["micro-dpo.json"][0]
    submission = json.loads(path.read_text())
    submission["samples"]["sha256"] = sha256_file(samples)  # the submitter covers the edit
    path.write_text(json.dumps(submission))
    wrong, _ = verify_submission(path, submission)
    assert any(w.startswith("aligned_toxicity") for w in wrong)
