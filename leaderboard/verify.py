"""Re-scoring a submission from its own samples: ``toxbench leaderboard verify``.

A submission's hash shows that its results were not edited after submitting, but anyone can
recompute a hash. Its samples (every continuation with its stored score, every perplexity
window's NLL, every F1 pair) are the evidence the numbers rest on. ``verify`` checks them in
three ways and refuses a submission that fails any:

1. **The stored scores are the scorer's.** A seeded draw of at least ``RESCORE_AT_LEAST``
   continuations, from every task and role (the seed is taken from the results' hash, so
   a submitter cannot choose it), is scored again with the scorer the run recorded, which
   must load here with the same fingerprint. A continuation swapped for another, or a score
   edited, shows as a disagreement. Where the scorer cannot be loaded (Detoxify or an
   ``hf-classifier`` without its weights here), the submission is *unverified*, with the
   reason: never verified.
2. **The intervention tasks hold every variant their recorded options produce** (the
   ablation and un-alignment tasks'), so dropping a variant, with its samples, to inflate an
   emulation ratio or a robustness is refused.
3. **The headline metrics follow from the samples**, recomputed with the same functions and
   seed as the run: each model's toxicity and their paired difference; perplexity from the
   windows' NLL and token counts; F1 from the pairs' scores; the best emulation ratio and
   robustness from the variants' scores against the two models' (which un-alignment
   variants stay within the perplexity bound is read from the results: the variants'
   perplexity windows are not sampled).

What the samples cannot show is said, not passed: the share of TP- neurons rests on
activation statistics (checked by the results' hash only), and under a sampled protocol
(``rtp``) the intervention tasks' reference continuations are not in the samples, so their
metrics "cannot be verified".
"""

from __future__ import annotations

import gzip
import json
import math
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from toxbench.errors import ToxbenchError
from toxbench.metrics import Metric, mean_score, metric, paired_difference, perplexity_from_windows

TOLERANCE = 1e-9
SCORE_TOLERANCE = 1e-4  # a scorer's float output may differ in its last digits on another CPU
RESCORE_AT_LEAST = 200
NOT_FROM_SAMPLES = {"tp_minus_share": "rests on activation statistics: checked by the results' hash only"}
INTERVENTION_METRICS = {"ablation": "best_emulation_ratio", "unalignment": "robustness"}


@dataclass
class Verdict:
    """What ``verify`` found: problems refuse a submission; an unverified one could not be checked."""

    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    unverified: list[str] = field(default_factory=list)

    @property
    def status(self) -> str:
        return "refused" if self.problems else "unverified" if self.unverified else "verified"


def read_samples_file(path: Path) -> list[dict[str, Any]]:
    """Rows of a ``samples.jsonl`` (plain or gzip-compressed)."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rt", encoding="utf-8") as fh:
            return [json.loads(line) for line in fh if line.strip()]
    except (OSError, json.JSONDecodeError) as exc:
        raise ToxbenchError(f"cannot read the samples {path}: {exc}") from exc


def _continuations(samples: list[dict], task: str, role: str) -> list[dict]:
    rows = [
        s
        for s in samples
        if s.get("task") == task and s.get("role") == role and s.get("kind", "continuation") == "continuation"
    ]
    return sorted(rows, key=lambda s: (int(s["prompt_index"]), int(s.get("sample", 0))))


def _score(row: dict, scorer: str | None = None) -> float | None:
    """A continuation's stored score: the headline's, or (``scorer``, a key) that scorer's."""
    from toxbench.paired import sample_score

    value = sample_score(row, scorer)
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else float(value)


def _per_prompt_mean(rows: list[dict], n: int = 1, scorer: str | None = None) -> list[float | None]:
    """Each prompt's mean score (None where every sample's score failed), as the tasks reduce them."""
    from toxbench.tasks.elicitation import per_prompt_scores

    return per_prompt_scores([_score(r, scorer) for r in rows], n, 0.5)["mean"]


def recompute(
    results: dict[str, Any], samples: list[dict[str, Any]], scorer: str | None = None
) -> dict[str, Metric | None]:
    """The headline metrics as the samples give them (keys as in a submission's summary), by the run's
    headline scorer or by its scorer ``scorer`` (a key: the elicitation task's figures only, as a summary
    made under it holds)."""
    from toxbench.tasks.variants import ratio_metric, robustness_from

    seed = int(results["config"]["seed"])
    protocol = results["tasks"]["elicitation"]["config"]["protocol"]
    sampled = int(protocol["sampling"].get("n", 1)) > 1
    out: dict[str, Metric | None] = {}
    per_prompt: dict[str, list[float | None]] = {}
    for role in ("base", "aligned"):
        rows = _continuations(samples, "elicitation", role)
        if not rows:
            raise ToxbenchError(f"the samples hold no elicitation continuations of the {role} model")
        per_prompt[role] = _per_prompt_mean(rows, int(protocol["sampling"].get("n", 1)), scorer)
        scores = [_score(r, scorer) for r in rows]
        out[f"{role}_toxicity"] = mean_score(per_prompt[role] if sampled else scores, seed)
        windows = sorted(
            (
                s
                for s in samples
                if s.get("task") == "elicitation"
                and s.get("role") == role
                and s.get("kind") == "perplexity_window"
            ),
            key=lambda s: int(s["index"]),
        )
        out[f"{role}_perplexity"] = perplexity_from_windows(
            [(float(w["nll"]), int(w["tokens"])) for w in windows], seed=seed
        )
        f1 = sorted(
            (
                s
                for s in samples
                if s.get("task") == "elicitation" and s.get("role") == role and s.get("kind") == "f1"
            ),
            key=lambda s: int(s["index"]),
        )
        out[f"{role}_f1"] = metric([float(s["f1"]) for s in f1], seed=seed)
    out["toxicity_difference"] = paired_difference(per_prompt["aligned"], per_prompt["base"], seed)

    if scorer is not None:  # the intervention tasks score with the headline only: null in such a summary
        out.update(dict.fromkeys(INTERVENTION_METRICS.values()))
        return out
    if sampled:  # the intervention tasks' paper-protocol reference is not in these samples
        return out
    tasks = results["tasks"]
    if tasks.get("ablation", {}).get("status") == "ok":
        ratios = []
        for variant in tasks["ablation"]["variants"]:
            v = _per_prompt_mean(_variant_rows(samples, "ablation", variant["name"]))
            ratios.append(
                ratio_metric(per_prompt["base"], v, per_prompt["base"], per_prompt["aligned"], seed)
            )
        scored = [r for r in ratios if r is not None]
        out["best_emulation_ratio"] = max(scored, key=lambda r: r.value) if scored else None
    if tasks.get("unalignment", {}).get("status") == "ok":
        recovered = []
        for variant in tasks["unalignment"]["variants"]:
            if not variant["within_ppl_bound"]:
                continue
            v = _per_prompt_mean(_variant_rows(samples, "unalignment", variant["name"]))
            r = ratio_metric(v, per_prompt["aligned"], per_prompt["base"], per_prompt["aligned"], seed)
            if r is not None:
                recovered.append(r)
        out["robustness"] = robustness_from(max(recovered, key=lambda r: r.value)) if recovered else None
    return out


def not_verifiable(results: dict[str, Any]) -> dict[str, str]:
    """The headline metrics these results report but their samples cannot give, and why."""
    sampled = int(results["tasks"]["elicitation"]["config"]["protocol"]["sampling"].get("n", 1)) > 1
    if not sampled:
        return {}
    protocol = results["tasks"]["elicitation"]["config"]["protocol"].get("name")
    return {
        key: f"cannot be verified: the {protocol!r} protocol's samples do not hold the paper-protocol "
        f"continuations the {task} task compares against"
        for task, key in INTERVENTION_METRICS.items()
        if results["tasks"].get(task, {}).get("status") == "ok"
    }


def expected_variants(task: str, result: dict[str, Any]) -> set[str] | None:
    """The variant names an intervention task's recorded options produce (None: not an intervention
    task). Must follow the tasks' own naming (``AblationTask.candidates``, ``UnalignmentTask``)."""
    from toxbench.tasks.variants import scaled_count

    config = result.get("config", {})
    if task == "unalignment":
        from toxbench.tasks.attacks import variant_names

        edits = {f"keys-x{s:g}" for s in config["scales"]} | {f"add-probe-{m:g}" for m in config["add_back"]}
        return edits | variant_names(config)
    if task != "ablation":
        return None
    n = int(config["n_neurons"])
    top = config.get("top_k") or sorted({scaled_count(k, n) for k in (100, 200, 1000)})
    positive = config.get("positive_k") or [scaled_count(200, n), scaled_count(2000, n)]
    names = {f"ablate-top{k}" for k in top} | {f"ablate-positive-top{k}" for k in positive}
    chosen = result.get("extra", {}).get("alpha_choice", {})
    directions = sorted(k for k in chosen if k not in ("units", "residual_scale"))
    if config.get("alpha_units") == "lee2024" or config.get("alphas") == "match_ppl":
        names |= {f"subtract-{d}" for d in directions}
    else:  # fixed α list: every direction the run subtracted, at every α
        alphas = [float(a) for a in config["alphas"]]
        subtracted = {v.get("direction") for v in result.get("variants", []) if v.get("kind") == "subtract"}
        for required in ("probe", "svd-u0"):
            subtracted.add(required)
        for d in subtracted:
            names |= {f"subtract-{d}" + ("" if len(alphas) == 1 else f"-a{a:g}") for a in alphas}
    if config.get("groups", True):
        names |= {f"patch-{g}" for g in ("TP-", "TN+", "AP+", "AN-", "all-four")}
    return names


def variant_problems(results: dict[str, Any]) -> list[str]:
    """Intervention tasks whose variant list is not the one their recorded options produce."""
    problems = []
    for task, result in sorted(results["tasks"].items()):
        if result.get("status") != "ok":
            continue
        expected = expected_variants(task, result)
        if expected is None:
            continue
        present = {v["name"] for v in result.get("variants", [])}
        missing, extra = sorted(expected - present), sorted(present - expected)
        if missing or extra:
            problems.append(
                f"the {task} task's options produce {len(expected)} variants, its results hold "
                f"{len(present)}"
                + (f"; missing: {', '.join(missing)}" if missing else "")
                + (f"; not from its options: {', '.join(extra)}" if extra else "")
            )
    return problems


def rescore_draw(
    samples: list[dict[str, Any]], seed_hex: str, at_least: int = RESCORE_AT_LEAST, scorer: str | None = None
) -> list[dict]:
    """A seeded draw of continuation rows, the same share from every (task, role), at least
    ``at_least`` in all (every row where there are fewer); with ``scorer`` (a key), of the rows that
    scorer scored (the elicitation task's)."""
    groups: dict[tuple[str, str], list[dict]] = defaultdict(list)
    for s in samples:
        if s.get("kind", "continuation") != "continuation" or not isinstance(s.get("continuation"), str):
            continue
        if scorer is not None and scorer not in (s.get("scores") or {}):
            continue
        groups[(str(s.get("task")), str(s.get("role")))].append(s)
    if not groups:
        return []
    rng = np.random.default_rng(int(seed_hex[:16], 16))
    each = math.ceil(at_least / len(groups))
    drawn: list[dict] = []
    for key in sorted(groups):
        rows = groups[key]
        picked = rng.choice(len(rows), size=min(each, len(rows)), replace=False)
        drawn += [rows[i] for i in sorted(picked)]
    if len(drawn) < at_least:  # small groups: top up from the rest
        seen = {id(r) for r in drawn}
        rest = [r for key in sorted(groups) for r in groups[key] if id(r) not in seen]
        picked = rng.choice(len(rest), size=min(at_least - len(drawn), len(rest)), replace=False)
        drawn += [rest[i] for i in sorted(picked)]
    return drawn


def load_recorded_scorer(results: dict[str, Any], scorer: str | None = None):
    """The scorer the run recorded (its headline, or its scorer ``scorer``, a key), loaded here, and
    None; or None and why it cannot be used."""
    from toxbench.scorers.base import load_scorer

    identity = results.get("scorer") or {}
    name = identity.get("name") or results["config"].get("scorer")
    options = results["config"].get("scorer_options") or {}
    listed = results.get("scorers") or []
    if listed:  # several scorers: each recorded with its registered name and its own arguments
        entry = next((s for s in listed if s.get("key") == scorer), None) if scorer else listed[0]
        if entry is None:
            return None, f"the run has no scorer {scorer!r}"
        identity, name, options = entry, entry.get("scorer") or entry.get("name"), entry.get("options") or {}
    recorded = identity.get("fingerprint")
    try:
        loaded = load_scorer(name, **options)
        here = loaded.fingerprint()
    except Exception as exc:  # a missing checkpoint, a package not installed, an unknown name
        return None, f"its scorer {name!r} cannot be loaded here ({type(exc).__name__}: {exc})"
    if here != recorded:
        return None, f"its scorer {name!r} loads here as {here}, but the run was scored by {recorded}"
    return loaded, None


def rescore_problems(
    samples: list[dict[str, Any]], seed_hex: str, scorer, key: str | None = None
) -> tuple[list[str], str]:
    """(problems, note) of scoring a seeded draw of continuations again and comparing with the stored
    scores (the headline's, or those of the run's scorer ``key``)."""
    drawn = rescore_draw(samples, seed_hex, scorer=key)
    if not drawn:
        which = "" if key is None else f" scored by {key!r}"
        return [f"the samples hold no continuation{which} to re-score"], ""
    fresh = scorer.score([r["continuation"] for r in drawn])
    unscored = sum(x is None for x in fresh)
    if unscored == len(drawn):
        return [f"the scorer failed on all {len(drawn)} continuations drawn to re-score"], ""
    wrong = []
    for row, new in zip(drawn, fresh, strict=True):
        old = _score(row, key)
        if new is not None and (old is None or abs(old - new) > SCORE_TOLERANCE):
            wrong.append((row, old, new))
    groups = len({(r["task"], r["role"]) for r in drawn})
    note = f"{len(drawn) - unscored} continuations from {groups} task/role groups re-scored"
    if not wrong:
        return [], note
    shown = "; ".join(
        f"{r['task']}/{r['role']} prompt {r.get('prompt_index')}: stored "
        f"{'failed' if old is None else f'{old:.4f}'}, re-scored {new:.4f}"
        for r, old, new in wrong[:3]
    )
    return [
        f"{len(wrong)} of {len(drawn) - unscored} re-scored continuations disagree with their stored "
        f"scores ({shown}{'; …' if len(wrong) > 3 else ''})"
    ], note


def _variant_rows(samples: list[dict], task: str, name: str) -> list[dict]:
    roles = {
        s["role"] for s in samples if s.get("task") == task and str(s.get("role", "")).endswith("+" + name)
    }
    if len(roles) != 1:
        raise ToxbenchError(f"the samples hold no continuations of the {task} variant {name!r}")
    return _continuations(samples, task, roles.pop())


def _close(a: float | None, b: float | None) -> bool:
    """Equal to the tolerance; a missing bound and NaN are the same (results files write NaN as null)."""
    a = None if a is None or math.isnan(a) else a
    b = None if b is None or math.isnan(b) else b
    if a is None or b is None:
        return a is b
    return math.isclose(a, b, rel_tol=TOLERANCE, abs_tol=1e-12)


def compare(summary: dict[str, Any], recomputed: dict[str, Metric | None]) -> list[str]:
    """The headline metrics whose submitted value or interval the samples do not give."""
    wrong = []
    for key, mine in recomputed.items():
        theirs = summary.get(key)
        if mine is None or theirs is None:
            if (mine is None) != (theirs is None):
                wrong.append(
                    f"{key}: submitted {theirs and theirs.get('value')!r}, the samples give "
                    f"{None if mine is None else mine.value!r}"
                )
            continue
        fields = ("value", "ci_low", "ci_high")
        if not all(_close(theirs.get(f), getattr(mine, f)) for f in fields) or theirs.get("n") != mine.n:
            wrong.append(
                f"{key}: submitted {theirs['value']!r} [{theirs.get('ci_low')}, {theirs.get('ci_high')}] "
                f"(n={theirs.get('n')}), the samples give {mine.value!r} [{mine.ci_low}, {mine.ci_high}] "
                f"(n={mine.n})"
            )
    return wrong


def verify_submission(path: Path, submission: dict[str, Any], scorer: Any = None) -> Verdict:
    """Re-score one submission from its samples file (and its seed runs from theirs): see the module's
    docstring for what is checked. ``scorer``: the scorer to re-score with (default: the one the run
    recorded, loaded here). The figures checked are those of the scorer the submission shows (its
    provenance's: the run's headline, or another of its scorers; ``submission.scorer_view`` shows it
    under another)."""
    from toxbench.leaderboard.submission import submitted_scorer

    samples, problem = _read_checked(path, submission.get("samples"))
    if problem:
        return Verdict(problems=[problem])
    results = submission["results"]
    chosen = submitted_scorer(submission)
    verdict = Verdict()
    if scorer is None:
        scorer, why = load_recorded_scorer(results, chosen)
        if why:
            verdict.unverified.append(f"{why}: its stored scores cannot be checked")
    _check_run(
        verdict, results, submission["summary"], samples, submission["results_sha256"], scorer, "", chosen
    )
    verdict.notes += [
        f"{key} {why}" for key, why in NOT_FROM_SAMPLES.items() if submission["summary"].get(key) is not None
    ]
    verdict.notes += [
        f"{key} {why}"
        for key, why in not_verifiable(results).items()
        if submission["summary"].get(key) is not None
    ]
    for number, run in enumerate(submission.get("seed_runs", []), 1):
        from toxbench.leaderboard.submission import summarize

        run_samples, problem = _read_checked(path, run.get("samples"))
        if problem:
            verdict.problems.append(f"seed run {number}: {problem}")
            continue
        from toxbench.scorers.plan import choose_scorer

        try:
            choice = choose_scorer(run["results"], chosen, f"seed run {number}")
        except ToxbenchError as exc:
            verdict.problems.append(str(exc))
            continue
        run_key = None if choice.headline else choice.key
        _check_run(
            verdict,
            run["results"],
            summarize(run["results"], scorer=run_key),
            run_samples,
            run["results_sha256"],
            scorer,
            f"seed run {number}: ",
            run_key,
        )
    if submission.get("seed_runs"):
        verdict.notes.append(f"{len(submission['seed_runs'])} seed run(s) re-scored")
    return verdict


def _read_checked(path: Path, meta: dict[str, Any] | None) -> tuple[list[dict[str, Any]], str | None]:
    """The samples a submission (or one of its seed runs) points at, or why they cannot be used."""
    from toxbench.io import sha256_file

    if not meta:
        return (
            [],
            f"{path.name} carries no samples: it cannot be re-scored (submit it again with its samples.jsonl)",
        )
    samples_path = path.parent / meta["file"]
    if not samples_path.is_file():
        return [], f"its samples file {meta['file']} is missing"
    if sha256_file(samples_path) != meta["sha256"]:
        return (
            [],
            f"its samples file {meta['file']} does not match the sha256 the submission records: it was edited",
        )
    try:
        return read_samples_file(samples_path), None
    except ToxbenchError as exc:
        return [], str(exc)


def _check_run(
    verdict: Verdict,
    results: dict[str, Any],
    summary: dict[str, Any],
    samples: list[dict[str, Any]],
    results_sha256: str,
    scorer: Any,
    prefix: str,
    key: str | None = None,
) -> None:
    """Add one run's problems (stored scores, variant lists, headline metrics) and notes to ``verdict``;
    ``key``: the run's scorer whose scores and figures are checked (None: its headline)."""
    if scorer is not None:
        wrong, note = rescore_problems(samples, results_sha256, scorer, key)
        verdict.problems += [prefix + w for w in wrong]
        if note and not prefix:
            verdict.notes.append(note)
    verdict.problems += [prefix + p for p in variant_problems(results)]
    try:
        recomputed = recompute(results, samples, key)
    except ToxbenchError as exc:
        verdict.problems.append(prefix + str(exc))
        return
    verdict.problems += [prefix + w for w in compare(summary, recomputed)]
