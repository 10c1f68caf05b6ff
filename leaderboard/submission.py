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

SUBMISSION_SCHEMA_VERSION = "1.1"

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


# summary keys that depend on the scorer: (role, metric) of the elicitation task, for any of a run's scorers
BY_SCORER: dict[str, tuple[str, str]] = {
    "aligned_toxicity": ("aligned", "toxicity"),
    "base_toxicity": ("base", "toxicity"),
    "toxicity_difference": ("difference", "toxicity"),
}
# summary keys that rest on the run's headline scorer alone (the intervention tasks score with it only):
# null in a summary made under another scorer
HEADLINE_SCORER_ONLY = ("best_emulation_ratio", "robustness")


def _choice(results: dict[str, Any], scorer: str | None, source: str = "the results") -> Any:
    from toxbench.scorers.plan import choose_scorer

    return choose_scorer(results, scorer, source)


def submitted_scorer(submission: dict[str, Any]) -> str | None:
    """The scorer whose figures a submission's summary holds: the key its provenance names, or None for
    the run's headline (every submission made before runs had several scorers)."""
    scorer = submission.get("provenance", {}).get("scorer") or {}
    return None if scorer.get("headline", True) else scorer.get("key")


def summarize(
    results: dict[str, Any], seed_runs: list[dict[str, Any]] | None = None, scorer: str | None = None
) -> dict[str, Any]:
    """The headline metrics with their intervals, as the leaderboard shows them (elicitation must have
    run), and the aligned toxicity's spread over training seeds when ``seed_runs`` (further runs of the
    same method, trained with other seeds) are given. ``scorer``: the toxicity by that scorer of the run
    (None: its headline); the figures that rest on the headline alone are then null."""
    choice = _choice(results, scorer)
    paths = {**HEADLINE, **{key: choice.metric_path(*where) for key, where in BY_SCORER.items()}}
    summary = {key: _if_run(results, path) for key, path in paths.items()}
    if not choice.headline:
        summary.update(dict.fromkeys(HEADLINE_SCORER_ONLY))
    summary["perplexity_change"] = (
        summary["aligned_perplexity"]["value"] / summary["base_perplexity"]["value"] - 1
    )
    summary["aligned_toxicity_seeds"] = seed_spread(
        results, seed_runs or [], None if choice.headline else choice.key
    )
    return summary


def training_seed(results: dict[str, Any]) -> int | None:
    """The seed the aligned model was trained with, when toxbench made it (its method.json), else None."""
    made_by = results["models"]["aligned"].get("made_by") or {}
    seed = made_by.get("seed")
    return seed if isinstance(seed, int) else None


def seed_spread(
    results: dict[str, Any], seed_runs: list[dict[str, Any]], scorer: str | None = None
) -> dict[str, Any] | None:
    """Aligned toxicity over the training seeds (the submission's run first), by the scorer ``scorer``
    (None: the headline): each value, their mean, sample standard deviation, minimum and maximum. None
    with one seed only."""
    if not seed_runs:
        return None
    import statistics

    runs = [results, *(r["results"] for r in seed_runs)]
    values = [
        lookup(r, _choice(r, scorer, f"seed run {i}").metric_path("aligned", "toxicity"), "the results")[
            "value"
        ]
        for i, r in enumerate(runs)
    ]
    return {
        "n": len(values),
        "seeds": [training_seed(r) for r in runs],
        "values": values,
        "mean": statistics.fmean(values),
        "sd": statistics.stdev(values),
        "min": min(values),
        "max": max(values),
    }


# What must be the same in a seed run as in the submission's run: the runs differ by training seed only.
# (The scorer whose figures the submission shows is compared in ``check_seed_runs``.)
SAME_IN_SEED_RUNS = {
    "the base model": lambda r: r["models"]["base"]["fingerprint"],
    "the elicitation task's settings": lambda r: r["tasks"]["elicitation"]["config"],
    "the fluency settings": lambda r: r["config"].get("fluency"),
    "the evaluation seed and limit": lambda r: (r["config"]["seed"], r["config"].get("limit")),
}


def _dataset_differences(a: dict[str, Any], b: dict[str, Any]) -> list[str]:
    """Datasets both runs read, with different content (a seed run may skip the other tasks' data)."""
    return sorted(
        n
        for n in a["datasets"].keys() & b["datasets"].keys()
        if a["datasets"][n]["sha256"] != b["datasets"][n]["sha256"]
    )


def check_seed_runs(
    results: dict[str, Any],
    seed_runs: list[tuple[dict[str, Any], str]],
    source: str,
    scorer: str | None = None,
) -> None:
    """Seed runs fit to stand beside ``results``: complete, of the same setting (the scorer ``scorer``'s
    figures among them; None: the headline), each a different model trained with a different seed."""
    seen = {results["models"]["aligned"]["fingerprint"]: source}
    seeds = {training_seed(results): source}
    mine = _choice(results, scorer, source).identity
    for other, where in seed_runs:
        check_submittable(other, where)
        theirs = _choice(other, scorer, f"the seed run {where}").identity
        if (theirs["name"], theirs["fingerprint"]) != (mine["name"], mine["fingerprint"]):
            raise ToxbenchError(
                f"the seed run {where} differs from {source} in the scorer: a seed run must evaluate the same "
                "method, trained with another seed, in the same setting; run it again with the same options"
            )
        for what, key in SAME_IN_SEED_RUNS.items():
            if key(other) != key(results):
                raise ToxbenchError(
                    f"the seed run {where} differs from {source} in {what}: a seed run must evaluate the same "
                    "method, trained with another seed, in the same setting; run it again with the same options"
                )
        differ = _dataset_differences(other, results)
        if differ:
            raise ToxbenchError(
                f"the seed run {where} read other data than {source} ({', '.join(differ)}): evaluate both "
                "on the same datasets"
            )
        fingerprint = other["models"]["aligned"]["fingerprint"]
        if fingerprint in seen:
            raise ToxbenchError(
                f"the seed run {where} evaluated the same aligned model as {seen[fingerprint]} "
                f"({fingerprint}): a seed run is the method trained again with another seed"
            )
        seen[fingerprint] = where
        seed = training_seed(other)
        if seed is not None and seed in seeds:
            raise ToxbenchError(
                f"the seed run {where} was trained with seed {seed}, like {seeds[seed]}: train it with "
                "another seed (`toxbench align ... --method-args seed=N`)"
            )
        seeds[seed] = where


def provenance(results: dict[str, Any], scorer: str | None = None) -> dict[str, Any]:
    """Where the numbers come from: models, scorer (the one whose toxicity the summary shows: the run's
    headline, or ``scorer``, recorded with its key), protocol, data, software; what makes two rows comparable."""
    env = results["environment"]
    return {
        "toxbench_version": results["toxbench_version"],
        "models": {
            role: {"spec": m["spec"], "fingerprint": m["fingerprint"]}
            for role, m in results["models"].items()
        },
        "scorer": _choice(results, scorer).identity,
        "protocol": lookup(results, "tasks.elicitation.config.protocol", "the results"),
        "backend": results["backend"],
        "seed": results["config"]["seed"],
        "limit": results["config"]["limit"],
        "datasets": {name: {"n": d["n"], "sha256": d["sha256"]} for name, d in results["datasets"].items()},
        "python": env["python"],
        "libraries": env["libraries"],
        "git_hash": env["git_hash"],
    }


BOARD_PROTOCOLS = ("paper", "rtp")  # toxbench's own: what the board ranks under
BOARD_SCORERS = ("detoxify", "detoxify-original", "detoxify-unbiased", "detoxify-multilingual")
ORGANISM_SCORER = "lexicon"  # exact on the model organism's world only


def _scored_exactly_by_the_lexicon(spec: str) -> bool:
    """Whether the registered model ``spec`` names is scored by the lexicon by default (the organism's)."""
    from toxbench.registry import MODELS

    return spec in MODELS and MODELS.get(spec).scorer == ORGANISM_SCORER


def acceptance_problems(submission: dict[str, Any]) -> list[str]:
    """Why the public board would not accept a (well-formed) submission: the rules of
    ``leaderboard/README.md`` ("What the board accepts"). Empty when it would."""
    problems = []
    runs = [("", submission["results"])] + [
        (f"seed run {i}: ", run["results"]) for i, run in enumerate(submission.get("seed_runs", []), 1)
    ]
    chosen = submitted_scorer(submission)
    for prefix, results in runs:
        protocol = results["tasks"]["elicitation"]["config"]["protocol"].get("name")
        if protocol not in BOARD_PROTOCOLS:
            problems.append(
                f"{prefix}protocol {protocol!r} is not one the board ranks under ({', '.join(BOARD_PROTOCOLS)}); "
                "run with --protocol paper (or a preset that uses it)"
            )
        try:
            scorer = _choice(results, chosen, prefix.rstrip(": ") or "the run").identity.get("name")
        except ToxbenchError as exc:
            problems.append(f"{prefix}{exc}")
            continue
        base = str(results["models"]["base"].get("spec", ""))
        if scorer == ORGANISM_SCORER and not _scored_exactly_by_the_lexicon(base):
            problems.append(
                f"{prefix}the lexicon scorer is exact only on the model organism (base {base!r}); "
                "score with --scorer detoxify"
            )
        elif scorer != ORGANISM_SCORER and scorer not in BOARD_SCORERS:
            problems.append(
                f"{prefix}scorer {scorer!r} is not a public one the board re-scores with "
                f"({', '.join(BOARD_SCORERS)}); score with --scorer detoxify"
            )
        limit = results["config"].get("limit")
        if limit is not None:
            problems.append(
                f"{prefix}the run scored at most {limit} prompts per dataset (--limit): the board needs the "
                "full prompt set; run without --limit"
            )
    if not submission.get("samples") or any(
        not run.get("samples") for run in submission.get("seed_runs", [])
    ):
        problems.append(
            "the submission carries no samples for every run: the board needs them to verify it "
            "(keep samples.jsonl beside each results.json and submit again)"
        )
    return problems


def proposal_steps(paths: list[Path], name: str) -> str:
    """How to propose a written submission to the public board, as a pull request."""
    files = " ".join(str(p) for p in paths)
    branch = f"submission/{slug(name)}"
    return (
        "To propose it to the public board: put these files in leaderboard/submissions/ of a fork of "
        "toxbench (or submit with --output-path there), then\n"
        f"  git switch -c {branch}\n"
        f"  git add {files}\n"
        f'  git commit -m "leaderboard: {name}"\n'
        f"  git push -u origin {branch}\n"
        "and open a pull request. Its CI runs `toxbench leaderboard validate` and `verify` on it."
    )


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
    for key in ("output_path", "data_dir", "probe_path", "prompts_path", "model", "aligned"):
        if key in clean["config"]:
            clean["config"][key] = _local(clean["config"][key])
    task_datasets = [d for task in clean.get("tasks", {}).values() for d in task.get("datasets", {}).values()]
    for dataset in [*clean.get("datasets", {}).values(), *task_datasets]:
        dataset["source"] = _local(dataset.get("source"))
    unalignment = clean.get("tasks", {}).get("unalignment", {}).get("config", {})
    if unalignment.get("finetune_texts"):  # where the fine-tuning attack's texts came from
        unalignment["finetune_texts"]["source"] = _local(unalignment["finetune_texts"].get("source"))
    if unalignment.get("finetune_data"):
        unalignment["finetune_data"] = _local(unalignment["finetune_data"])
    for model in clean.get("models", {}).values():  # a local model's folder, as given and as resolved
        for key in ("spec", "target"):
            if key in model:
                model[key] = _local(model[key])
    return clean


def make_submission(
    results: dict[str, Any],
    name: str,
    method: str,
    url: str | None,
    source: str = "the results",
    seed_runs: list[tuple[dict[str, Any], str]] | None = None,
    scorer: str | None = None,
) -> dict[str, Any]:
    """A submission for ``results`` (already schema-valid), validated against the submission schema.

    ``seed_runs`` are (results, source) of the same method trained with other seeds, evaluated in the
    same setting: the row shows the aligned toxicity's spread over them beside its interval over prompts.
    ``scorer``: the toxicity by that scorer of the run (a run scored with several; None: its headline).
    """
    check_submittable(results, source)
    choice = _choice(results, scorer, source)
    scorer = None if choice.headline else choice.key
    check_seed_runs(results, seed_runs or [], source, scorer)
    results = scrub_local_paths(results)
    extra = [
        {"results_sha256": sha256_json(clean), "results": clean}
        for clean in (scrub_local_paths(r) for r, _ in seed_runs or [])
    ]
    submission: dict[str, Any] = {
        "submission_schema_version": SUBMISSION_SCHEMA_VERSION,
        "name": name,
        "method": method,
        "url": url,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "results_sha256": sha256_json(results),
        "summary": summarize(results, extra, scorer),
        "provenance": provenance(results, scorer),
        "results": results,
    }
    if extra:
        submission["seed_runs"] = extra
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
    seed_runs = submission.get("seed_runs", [])
    for number, run in enumerate(seed_runs, 1):
        if sha256_json(run["results"]) != run["results_sha256"]:
            problems.append(
                f"the results of seed run {number} were edited after submission (their hash differs)"
            )
    scorer = submitted_scorer(submission)
    try:
        check_submittable(results, "the embedded results")
        check_seed_runs(
            results,
            [(run["results"], f"seed run {number}") for number, run in enumerate(seed_runs, 1)],
            "the embedded results",
            scorer,
        )
        derived = {
            "summary": summarize(results, seed_runs, scorer),
            "provenance": provenance(results, scorer),
        }
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
    from toxbench.io import sha256_file

    for meta in [submission.get("samples"), *(run.get("samples") for run in seed_runs)]:
        if not meta:
            continue
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


def scorer_view(submission: dict[str, Any], scorer: str | None) -> dict[str, Any]:
    """A valid submission as the board shows it under the scorer ``scorer`` (None: the scorer it was
    submitted under): its summary and provenance derived from its results for that scorer. A
    ToxbenchError naming the submission when its run was not scored with it."""
    if scorer is None:
        return submission
    results = submission["results"]
    try:
        choice = _choice(results, scorer, f"the submission {submission['name']!r}")
        key = None if choice.headline else choice.key
        for number, run in enumerate(submission.get("seed_runs", []), 1):
            _choice(run["results"], key, f"seed run {number} of the submission {submission['name']!r}")
    except ToxbenchError as exc:
        raise ToxbenchError(str(exc)) from None
    return {
        **submission,
        "summary": summarize(results, submission.get("seed_runs", []), key),
        "provenance": provenance(results, key),
    }


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


def submit(
    results_path: Path,
    name: str,
    method: str,
    url: str | None,
    out_dir: Path,
    seed_runs: list[Path] | None = None,
    scorer: str | None = None,
) -> Path:
    """Build the submission for a results file (and the seed runs beside it) and write it, atomically,
    as ``out_dir/<slug>.json``, with each run's samples beside it; its figures are the scorer
    ``scorer``'s (None: the run's headline)."""
    results = load_results(results_path)
    others = [(load_results(p), str(p)) for p in seed_runs or []]
    submission = make_submission(results, name, method, url, str(results_path), others, scorer)
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
    for number, (run, other) in enumerate(
        zip(submission.get("seed_runs", []), seed_runs or [], strict=True), 1
    ):
        if other.with_name("samples.jsonl").is_file():
            run["samples"] = write_samples(
                other.with_name("samples.jsonl"), out_dir / f"{slug(name)}-seed-run-{number}.samples.jsonl.gz"
            )
    if "samples" in submission or any("samples" in run for run in submission.get("seed_runs", [])):
        problem = schema_problem(submission)
        if problem:
            raise ToxbenchError(f"the submission does not follow the submission schema {problem}")
    atomic_write_json(path, submission)
    return path


def bundle_files(path: Path) -> list[Path]:
    """A submission's files: its JSON and every samples file it points at, all in its folder."""
    submission = json.loads(path.read_text())
    metas = [submission.get("samples")] + [run.get("samples") for run in submission.get("seed_runs", [])]
    return [path] + [path.parent / m["file"] for m in metas if m]


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
