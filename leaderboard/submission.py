"""Leaderboard submissions: built from a complete results file, checked against
``leaderboard/schema/submission.schema.json`` (which embeds the results schema), and
hashed, so that an edited number or an edited result shows up in ``validate``.
"""

from __future__ import annotations

import copy
import json
import re
import time
from pathlib import Path
from typing import Any

from toxbench.check import describe_schema_error, load_results, lookup, read_json_object, require_complete
from toxbench.errors import ToxbenchError
from toxbench.io import atomic_write_json, sha256_json

SUBMISSION_SCHEMA_VERSION = "1.0"

# summary key -> where the metric sits in the results file; null in the summary when that task was not run
HEADLINE: dict[str, str] = {
    "aligned_toxicity": "tasks.elicitation.metrics.aligned.toxicity",
    "base_toxicity": "tasks.elicitation.metrics.base.toxicity",
    "toxicity_difference": "tasks.elicitation.metrics.difference.toxicity",
    "aligned_perplexity": "tasks.elicitation.metrics.aligned.perplexity",
    "base_perplexity": "tasks.elicitation.metrics.base.perplexity",
    "aligned_f1": "tasks.elicitation.metrics.aligned.f1",
    "base_f1": "tasks.elicitation.metrics.base.f1",
    "best_emulation_ratio": "tasks.ablation.metrics.best_emulation_ratio",
    "robustness": "tasks.unalignment.metrics.robustness",
    "tp_minus_share": "tasks.attribution.metrics.groups.TP-.share",
}


def submission_schema() -> dict[str, Any]:
    """The submission schema, shipped next to this module."""
    return json.loads(
        (Path(__file__).parent / "schema" / "submission.schema.json").read_text(encoding="utf-8")
    )


def schema_problem(submission: dict[str, Any]) -> str | None:
    """The most relevant violation of the submission schema (results schema included), or None if it follows it."""
    import jsonschema
    from jsonschema.exceptions import best_match
    from referencing import Registry, Resource

    from toxbench.results import load_schema

    results_schema = load_schema()
    registry = Registry().with_resource(results_schema["$id"], Resource.from_contents(results_schema))
    validator = jsonschema.Draft202012Validator(submission_schema(), registry=registry)
    error = best_match(validator.iter_errors(submission))
    return None if error is None else describe_schema_error(error)


def slug(name: str) -> str:
    """The file stem of a submission: its name in lower case, runs of other characters as one '-'."""
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


def _if_run(results: dict[str, Any], dotted: str) -> Any:
    """The value at ``dotted``, or None when its task was not run (a task that ran must have written it)."""
    task = dotted.split(".")[1]
    return lookup(results, dotted, "the results") if task in results["tasks"] else None


def summarize(results: dict[str, Any]) -> dict[str, Any]:
    """The headline metrics with their intervals, as the leaderboard shows them (elicitation must have run)."""
    summary = {key: _if_run(results, path) for key, path in HEADLINE.items()}
    summary["perplexity_change"] = (
        summary["aligned_perplexity"]["value"] / summary["base_perplexity"]["value"] - 1
    )
    return summary


def provenance(results: dict[str, Any]) -> dict[str, Any]:
    """Where the numbers come from: models, scorer, protocol, data, software; what makes two rows comparable."""
    env = results["environment"]
    return {
        "toxbench_version": results["toxbench_version"],
        "models": {
            role: {"spec": m["spec"], "fingerprint": m["fingerprint"]}
            for role, m in results["models"].items()
        },
        "scorer": results["scorer"],
        "protocol": lookup(results, "tasks.elicitation.config.protocol", "the results"),
        "backend": results["backend"],
        "seed": results["config"]["seed"],
        "limit": results["config"]["limit"],
        "datasets": {name: {"n": d["n"], "sha256": d["sha256"]} for name, d in results["datasets"].items()},
        "python": env["python"],
        "libraries": env["libraries"],
        "git_hash": env["git_hash"],
    }


def check_submittable(results: dict[str, Any], source: str) -> None:
    """A run fit for the leaderboard: complete, with the elicitation task on a base and an aligned model."""
    require_complete(results, source)
    if "elicitation" not in results["tasks"]:
        raise ToxbenchError(
            f"{source} has no elicitation task, which every submission needs; "
            "run it with `toxbench run --tasks elicitation ...` (or --tasks all)"
        )
    if "aligned" not in results["models"]:
        raise ToxbenchError(
            f"{source} evaluated no aligned model; the leaderboard ranks aligned models, "
            "run with `toxbench run --aligned MODEL ...`"
        )


def _local(path: Any) -> Any:
    """An absolute local path reduced to its last two parts: the submitter's folders are not shared."""
    if isinstance(path, str) and Path(path).is_absolute():
        return "<local>/" + "/".join(Path(path).parts[-2:])
    return path


def scrub_local_paths(results: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``results`` without the submitter's absolute paths (output folder, data, sources,
    local model folders)."""
    clean = copy.deepcopy(results)
    for key in ("output_path", "data_dir", "probe_path", "model", "aligned"):
        if key in clean["config"]:
            clean["config"][key] = _local(clean["config"][key])
    for dataset in clean.get("datasets", {}).values():
        dataset["source"] = _local(dataset.get("source"))
    for model in clean.get("models", {}).values():  # a local model's folder, as given and as resolved
        for key in ("spec", "target"):
            if key in model:
                model[key] = _local(model[key])
    return clean


def make_submission(
    results: dict[str, Any], name: str, method: str, url: str | None, source: str = "the results"
) -> dict[str, Any]:
    """A submission for ``results`` (already schema-valid), validated against the submission schema."""
    check_submittable(results, source)
    results = scrub_local_paths(results)
    submission = {
        "submission_schema_version": SUBMISSION_SCHEMA_VERSION,
        "name": name,
        "method": method,
        "url": url,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "results_sha256": sha256_json(results),
        "summary": summarize(results),
        "provenance": provenance(results),
        "results": results,
    }
    problem = schema_problem(submission)
    if problem:
        raise ToxbenchError(f"the submission does not follow the submission schema {problem}")
    return submission


def submission_files(directory: Path) -> list[Path]:
    """The submission files in ``directory``, by name; a ToxbenchError if it is not a folder."""
    if not directory.is_dir():
        raise ToxbenchError(f"{str(directory)!r} is not a folder of submissions")
    return sorted(directory.glob("*.json"))


def submission_problems(path: Path, submission: dict[str, Any]) -> list[str]:
    """Everything wrong with one submission: schema, hash, summary or provenance not matching its results, file name."""
    problem = schema_problem(submission)
    if problem:
        return [f"does not follow the submission schema {problem}"]
    problems = []
    results = submission["results"]
    sha = sha256_json(results)
    if sha != submission["results_sha256"]:
        problems.append(
            f"results_sha256 is {submission['results_sha256'][:12]}... but the embedded results hash to "
            f"{sha[:12]}...: the results were edited after submission"
        )
    try:
        check_submittable(results, "the embedded results")
        derived = {"summary": summarize(results), "provenance": provenance(results)}
    except ToxbenchError as exc:
        return [*problems, str(exc)]
    for part, expected in derived.items():
        wrong = sorted(
            k for k in expected.keys() | submission[part].keys() if expected.get(k) != submission[part].get(k)
        )
        if wrong:
            problems.append(
                f"{part} does not match the embedded results at {', '.join(wrong)}: "
                "regenerate it with `toxbench leaderboard submit`"
            )
    meta = submission.get("samples")
    if meta:
        from toxbench.io import sha256_file

        samples = path.parent / meta["file"]
        if not samples.is_file():
            problems.append(f"its samples file {meta['file']} is missing")
        elif sha256_file(samples) != meta["sha256"]:
            problems.append(
                f"its samples file {meta['file']} does not match the recorded sha256: it was edited"
            )
    if path.name != f"{slug(submission['name'])}.json":
        problems.append(
            f"the file of a submission named {submission['name']!r} must be {slug(submission['name'])}.json"
        )
    return problems


def load_submissions(directory: Path) -> tuple[list[dict[str, Any]], dict[str, list[str]]]:
    """The valid submissions in ``directory``, and the problems of each invalid one (by file name)."""
    valid: list[dict[str, Any]] = []
    problems: dict[str, list[str]] = {}
    seen: dict[str, str] = {}
    for path in submission_files(directory):
        try:
            submission = read_json_object(path, "submission")
        except ToxbenchError as exc:
            problems[path.name] = [str(exc)]
            continue
        found = submission_problems(path, submission)
        if not found and submission["name"].lower() in seen:
            found = [
                f"the name {submission['name']!r} is already taken by {seen[submission['name'].lower()]}"
            ]
        if found:
            problems[path.name] = found
        else:
            seen[submission["name"].lower()] = path.name
            valid.append(submission)
    return valid, problems


def _taken_names(directory: Path) -> dict[str, str]:
    """Lower-cased names of the readable submissions in ``directory`` -> their file names."""
    taken = {}
    for path in sorted(directory.glob("*.json")):
        try:
            name = read_json_object(path, "submission").get("name")
        except ToxbenchError:
            continue  # an unreadable file takes no name; `leaderboard validate` reports it
        if isinstance(name, str):
            taken[name.lower()] = path.name
    return taken


def submit(results_path: Path, name: str, method: str, url: str | None, out_dir: Path) -> Path:
    """Build the submission for a results file and write it, atomically, as ``out_dir/<slug>.json``."""
    results = load_results(results_path)
    submission = make_submission(results, name, method, url, str(results_path))
    path = out_dir / f"{slug(name)}.json"
    taken = _taken_names(out_dir) if out_dir.is_dir() else {}
    if name.lower() in taken or path.exists():
        raise ToxbenchError(
            f"a submission named {name!r} already exists ({taken.get(name.lower(), path.name)} in "
            f"{out_dir}); choose another --name"
        )
    samples = results_path.with_name("samples.jsonl")
    if samples.is_file():
        submission["samples"] = write_samples(samples, out_dir / f"{slug(name)}.samples.jsonl.gz")
        problem = schema_problem(submission)
        if problem:
            raise ToxbenchError(f"the submission does not follow the submission schema {problem}")
    atomic_write_json(path, submission)
    return path


def write_samples(source: Path, target: Path) -> dict[str, Any]:
    """``source`` gzip-compressed to ``target`` (byte-stable: no name or time in the header)."""
    import gzip

    from toxbench.io import sha256_file

    target.parent.mkdir(parents=True, exist_ok=True)
    rows = 0
    partial = target.with_name(target.name + ".partial")
    with (
        source.open("rb") as src,
        open(partial, "wb") as raw,
        gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as out,
    ):
        for line in src:
            if line.strip():
                out.write(line)
                rows += 1
    partial.replace(target)
    return {"file": target.name, "sha256": sha256_file(target), "rows": rows}
