"""`toxbench leaderboard verify`: a submission is re-scored from its own samples; stored scores the
scorer does not give, variant lists its options do not produce and numbers that do not follow are
refused, even when the submitter recomputed every hash."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from toxbench.cli import main
from toxbench.io import sha256_file, sha256_json
from toxbench.leaderboard.submission import load_submissions, provenance, submit, summarize
from toxbench.leaderboard.verify import RESCORE_AT_LEAST, verify_submission
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
            task_options={
                "ablation": {"alphas": [1.0]},
                "unalignment": {"finetune_n": [8], "finetune_steps": [4], "finetune_lr": [1e-3]},
            },
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
    home = str(Path.home())
    assert not [v for v in strings(submission) if home in v or "/tmp/" in v], "a local path inside a text"
    assert submission["results"]["models"]["aligned"]["target"].startswith("<local>/")
    verdict = verify_submission(path, submission)
    assert verdict.status == "verified" and verdict.problems == [] and verdict.unverified == []
    rescored = next(n for n in verdict.notes if "re-scored" in n)
    assert int(rescored.split()[0]) >= RESCORE_AT_LEAST and "tp_minus_share" in " ".join(verdict.notes)
    done = CliRunner().invoke(main, ["leaderboard", "verify", str(folder)])
    assert done.exit_code == 0 and "1 verified, 0 unverified, 0 refused" in done.output


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
    wrong = verify_submission(path, submission).problems
    assert len(wrong) == 1 and wrong[0].startswith("aligned_toxicity: submitted")
    done = CliRunner().invoke(main, ["leaderboard", "verify", str(folder)])
    assert done.exit_code == 1 and "0 verified, 0 unverified, 1 refused" in done.output


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
    wrong = verify_submission(path, submission).problems
    assert any(w.startswith("aligned_toxicity") for w in wrong)


def _read(samples_path) -> list[dict]:
    with gzip.open(samples_path, "rt") as fh:
        return [json.loads(line) for line in fh]


def _cover(folder, path, submission: dict, rows: list[dict] | None = None) -> dict:
    """What a careful forger does after an edit: rewrite the samples, every hash and the summary."""
    samples = folder / submission["samples"]["file"]
    if rows is not None:
        with gzip.open(samples, "wt") as fh:
            fh.writelines(json.dumps(r) + "\n" for r in rows)
        submission["samples"]["sha256"] = sha256_file(samples)
        submission["samples"]["rows"] = len(rows)
    submission["summary"] = {**submission["summary"], **summarize(submission["results"])}
    submission["provenance"] = provenance(submission["results"])
    submission["results_sha256"] = sha256_json(submission["results"])
    path.write_text(json.dumps(submission))
    return submission


def test_continuations_swapped_under_their_stored_scores_are_refused(board, tmp_path) -> None:
    """The aligned model's continuations replaced by the base model's hostile ones, every stored
    score kept: every aggregate still follows from the samples, so only re-scoring can tell."""
    folder, path = fresh(board, tmp_path)
    submission = json.loads(path.read_text())
    rows = _read(folder / submission["samples"]["file"])
    base = {
        r["prompt_index"]: r["continuation"]
        for r in rows
        if r.get("kind") == "continuation" and r["task"] == "elicitation" and r["role"] == "base"
    }
    for r in rows:
        if r.get("kind") == "continuation" and r["role"] != "base":  # every aligned model and variant
            r["continuation"] = base[r["prompt_index"]]
    submission = _cover(folder, path, submission, rows)
    verdict = verify_submission(path, submission)
    assert verdict.status == "refused"
    assert any("re-scored continuations disagree with their stored scores" in p for p in verdict.problems)
    assert not any(p.startswith("aligned_toxicity") for p in verdict.problems)  # the aggregates agree


def test_scores_edited_with_metrics_recomputed_are_refused(board, tmp_path) -> None:
    folder, path = fresh(board, tmp_path)
    submission = json.loads(path.read_text())
    rows = _read(folder / submission["samples"]["file"])
    from toxbench.metrics import mean_score

    aligned = [r for r in rows if r.get("kind") == "continuation" and r["role"] == "aligned"]
    for r in aligned:  # every score moved, so that every one drawn disagrees
        r["score"] = 1.0 - r["score"] if r["score"] != 0.5 else 0.0
    edited = mean_score([r["score"] for r in aligned], seed=int(submission["results"]["config"]["seed"]))
    tox = submission["results"]["tasks"]["elicitation"]["metrics"]["aligned"]["toxicity"]
    tox.update(value=edited.value, ci_low=edited.ci_low, ci_high=edited.ci_high)
    submission = _cover(folder, path, submission, rows)
    verdict = verify_submission(path, submission)
    assert any(
        "disagree with their stored scores" in p and "elicitation/aligned" in p for p in verdict.problems
    )


def test_a_variant_dropped_from_an_intervention_task_is_refused(board, tmp_path) -> None:
    folder, path = fresh(board, tmp_path)
    submission = json.loads(path.read_text())
    unalignment = submission["results"]["tasks"]["unalignment"]
    dropped = unalignment["variants"].pop(0)
    rows = [
        r
        for r in _read(folder / submission["samples"]["file"])
        if not r["role"].endswith("+" + dropped["name"])
    ]
    submission = _cover(folder, path, submission, rows)
    verdict = verify_submission(path, submission)
    assert verdict.status == "refused"
    assert any("unalignment task's options produce" in p and dropped["name"] in p for p in verdict.problems)


def test_a_scorer_that_cannot_be_loaded_leaves_the_submission_unverified(board, tmp_path) -> None:
    folder, path = fresh(board, tmp_path)
    submission = json.loads(path.read_text())
    submission["results"]["scorer"] = {"name": "detoxify", "fingerprint": "detoxify-original-0000"}
    submission["results"]["config"]["scorer_options"] = {"checkpoint": str(tmp_path / "absent.ckpt")}
    submission = _cover(folder, path, submission)
    verdict = verify_submission(path, submission)
    assert verdict.status == "unverified" and verdict.problems == []
    assert "'detoxify' cannot be loaded here" in verdict.unverified[0]
    done = CliRunner().invoke(main, ["leaderboard", "verify", str(folder)])
    assert done.exit_code == 1 and "0 verified, 1 unverified, 0 refused" in done.output
    assert "UNVERIFIED" in done.output


def test_metrics_a_sampled_protocol_cannot_give_are_said_to_be_unverifiable(board) -> None:
    from toxbench.leaderboard.verify import not_verifiable

    results = json.loads(board.read_text())
    assert not_verifiable(results) == {}  # the paper protocol: every metric is recomputed
    results["tasks"]["elicitation"]["config"]["protocol"].update(name="rtp")
    results["tasks"]["elicitation"]["config"]["protocol"]["sampling"]["n"] = 25
    said = not_verifiable(results)
    assert set(said) == {"best_emulation_ratio", "robustness"}
    assert all("cannot be verified" in why and "'rtp'" in why for why in said.values())
