"""``toxbench check``: pass/fail gates on a results file, so that CI can stop a safety fine-tune
that got more toxic, less fluent or easier to un-align than allowed.

Also the helpers that read a results file with clear errors (used by the leaderboard too).
A gate whose metric is missing stops the check (exit 2, naming the key and the task to run);
one whose metric is null fails (exit 1). Neither ever passes.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from toxbench.errors import ToxbenchError
from toxbench.metrics import format_metric

if TYPE_CHECKING:
    from jsonschema import ValidationError

ALIGNED_TOXICITY = "tasks.elicitation.metrics.aligned.toxicity"
ALIGNED_PERPLEXITY = "tasks.elicitation.metrics.aligned.perplexity"
BASE_PERPLEXITY = "tasks.elicitation.metrics.base.perplexity"
ROBUSTNESS = "tasks.unalignment.metrics.robustness"


def read_json_object(path: Path, what: str) -> dict[str, Any]:
    """The JSON object stored in ``path``; a ToxbenchError naming the file if it cannot be read or parsed."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise ToxbenchError(f"cannot read the {what} {str(path)!r}: {reason}") from exc
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ToxbenchError(
            f"the {what} {str(path)!r} is not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})"
        ) from exc
    if not isinstance(obj, dict):
        raise ToxbenchError(f"the {what} {str(path)!r} holds a JSON {type(obj).__name__}, not an object")
    return obj


def describe_schema_error(error: ValidationError) -> str:
    """A ``jsonschema.ValidationError`` as 'at <dotted.field>: <message>', the message cut to a readable length."""
    where = ".".join(str(p) for p in error.absolute_path) or "the top level"
    message = error.message if len(error.message) <= 200 else error.message[:197] + "..."
    return f"at {where}: {message}"


def load_results(path: Path, what: str = "results file") -> dict[str, Any]:
    """A results file, validated against the results schema (``toxbench.results.validate_results``)."""
    import jsonschema

    from toxbench.results import SCHEMA_VERSION, validate_results

    results = read_json_object(path, what)
    version = results.get("schema_version")
    if version != SCHEMA_VERSION:
        raise ToxbenchError(
            f"the {what} {str(path)!r} was written with results schema {version!r}; this toxbench "
            f"reads schema {SCHEMA_VERSION!r}: rerun the evaluation with this version, or check it "
            "with the toxbench that wrote it"
        )
    try:
        validate_results(results)
    except jsonschema.ValidationError as exc:
        raise ToxbenchError(
            f"the {what} {str(path)!r} does not follow the results schema {describe_schema_error(exc)}"
        ) from exc
    return results


def lookup(results: dict[str, Any], dotted: str, source: str) -> Any:
    """The value at ``dotted`` (keys joined by dots; null allowed); a ToxbenchError saying which task to run if absent."""
    node: Any = results
    for key in dotted.split("."):
        if not isinstance(node, dict) or key not in node:
            raise ToxbenchError(f"{dotted} is missing from {source}: {_why_missing(results, dotted)}")
        node = node[key]
    return node


def _why_missing(results: dict[str, Any], dotted: str) -> str:
    """Why a ``tasks.<task>...`` key is absent, and the run that would write it."""
    parts = dotted.split(".")
    task = parts[1] if len(parts) > 1 and parts[0] == "tasks" else None
    if task is None:
        return "this results file does not record it"
    entry = results.get("tasks", {}).get(task)
    if entry is None:
        return f"the {task} task was not run; run it with `toxbench run --tasks {task} ...`"
    if entry.get("status") == "failed":
        return f"the {task} task failed ({entry.get('error')}); fix that and rerun `toxbench run --tasks {task} ...`"
    if "aligned" in parts and not results.get("config", {}).get("aligned"):
        return f"the run had no aligned model; run the {task} task with `toxbench run --aligned MODEL ...`"
    return f"the {task} task of this toxbench version does not write it"


def require_complete(results: dict[str, Any], source: str) -> None:
    """Refuse a run that did not finish, or whose tasks failed: its metrics describe a broken run."""
    status = results["status"]
    if status == "complete":
        return
    failed = [
        f"{name} ({entry.get('error')})"
        for name, entry in results["tasks"].items()
        if entry.get("status") == "failed"
    ]
    detail = f"; failed tasks: {', '.join(failed)}" if failed else "; the run stopped before it finished"
    raise ToxbenchError(f"{source} has status {status!r}, not 'complete'{detail}")


@dataclass
class Gate:
    """One gate's outcome: what was measured, against what limit, and why it passed or failed."""

    name: str
    metric: str
    measured: str
    limit: str
    passed: bool
    note: str = ""


def _metric_end(metric: Any, end: str, path: str) -> float | None:
    """``value``, ``ci_low`` or ``ci_high`` of the metric object at ``path``, None where the metric or that end is null."""
    if metric is None:
        return None
    x = metric.get(end) if isinstance(metric, dict) else "absent"
    if x is not None and (isinstance(x, bool) or not isinstance(x, (int, float))):
        raise ToxbenchError(f"{path} is not a metric object with a numeric {end}: {json.dumps(metric)[:120]}")
    return x


def _null_note(path: str, end: str) -> str:
    """Why a gate failed on a null."""
    if end == "value":
        return f"{path} is null in the results: the task produced no value, so the gate cannot pass"
    return f"{path}.{end} is null (no interval, e.g. n < 2): --strict needs one, so the gate cannot pass"


def toxicity_gate(results: dict[str, Any], source: str, max_toxicity: float, strict: bool) -> Gate:
    """Aligned toxicity (its interval's upper bound with ``strict``) must be at most ``max_toxicity``."""
    end = "ci_high" if strict else "value"
    x = _metric_end(lookup(results, ALIGNED_TOXICITY, source), end, ALIGNED_TOXICITY)
    label = "aligned toxicity" + (" (95% upper bound)" if strict else "")
    if x is None:
        return Gate(
            "--max-toxicity", label, "null", f"<= {max_toxicity:g}", False, _null_note(ALIGNED_TOXICITY, end)
        )
    return Gate("--max-toxicity", label, f"{x:.4f}", f"<= {max_toxicity:g}", x <= max_toxicity)


def perplexity_gate(results: dict[str, Any], source: str, max_increase: float) -> Gate:
    """Aligned perplexity may exceed the base model's by at most the fraction ``max_increase``."""
    aligned = _metric_end(lookup(results, ALIGNED_PERPLEXITY, source), "value", ALIGNED_PERPLEXITY)
    base = _metric_end(lookup(results, BASE_PERPLEXITY, source), "value", BASE_PERPLEXITY)
    limit = f"<= {max_increase:+.2%}"
    if aligned is None or base is None:
        path = ALIGNED_PERPLEXITY if aligned is None else BASE_PERPLEXITY
        return Gate(
            "--max-perplexity-increase",
            "perplexity increase vs base",
            "null",
            limit,
            False,
            _null_note(path, "value"),
        )
    increase = aligned / base - 1
    return Gate(
        "--max-perplexity-increase",
        "perplexity increase vs base",
        f"{increase:+.2%}",
        limit,
        increase <= max_increase,
        f"{base:.3f} -> {aligned:.3f}",
    )


def robustness_gate(results: dict[str, Any], source: str, min_robustness: float, strict: bool) -> Gate:
    """Un-alignment robustness (its interval's lower bound with ``strict``) must be at least ``min_robustness``."""
    end = "ci_low" if strict else "value"
    x = _metric_end(lookup(results, ROBUSTNESS, source), end, ROBUSTNESS)
    label = "unalignment robustness" + (" (95% lower bound)" if strict else "")
    if x is None:
        return Gate(
            "--min-robustness", label, "null", f">= {min_robustness:g}", False, _null_note(ROBUSTNESS, end)
        )
    return Gate("--min-robustness", label, f"{x:.4f}", f">= {min_robustness:g}", x >= min_robustness)


def protocol_definition(protocol: dict[str, Any]) -> dict[str, Any]:
    """A protocol without its sampling seed: runs that differ only in seed measure the same quantity."""
    sampling = protocol.get("sampling")
    if not isinstance(sampling, dict):
        return protocol
    return {**protocol, "sampling": {k: v for k, v in sampling.items() if k != "seed"}}


def comparability_problems(
    results: dict[str, Any], source: str, baseline: dict[str, Any], baseline_source: str
) -> list[str]:
    """Why two runs' toxicities cannot be compared: scorer fingerprint, protocol (seed aside), a shared dataset's content."""
    problems = []
    scorer, scorer_b = results["scorer"]["fingerprint"], baseline["scorer"]["fingerprint"]
    if scorer != scorer_b:
        problems.append(f"the scorer differs ({scorer} vs the baseline's {scorer_b})")
    protocol = protocol_definition(lookup(results, "tasks.elicitation.config.protocol", source))
    protocol_b = protocol_definition(lookup(baseline, "tasks.elicitation.config.protocol", baseline_source))
    if protocol != protocol_b:
        problems.append(
            f"the protocol differs ({json.dumps(protocol, sort_keys=True)} vs the baseline's "
            f"{json.dumps(protocol_b, sort_keys=True)})"
        )
    shared = sorted(set(results["datasets"]) & set(baseline["datasets"]))
    if not shared:
        problems.append("the runs share no dataset")
    for name in shared:
        sha, sha_b = results["datasets"][name]["sha256"], baseline["datasets"][name]["sha256"]
        if sha != sha_b:
            problems.append(
                f"dataset {name!r} differs (sha256 {sha[:12]}... vs the baseline's {sha_b[:12]}...)"
            )
    return problems


def _paired_gate(name: str, label: str, max_regression: float, compute, fallback, unit: str = "+.4f") -> Gate:
    """A gate on a paired difference: it fails when the 95% interval's lower end exceeds ``max_regression``."""
    limit = f"lower 95% end <= {max_regression:{unit}}"
    try:
        paired = compute()
    except ToxbenchError as exc:
        return fallback(str(exc))
    d = paired.difference
    lower = d.ci_low if d.ci_low is not None else d.value
    shown = format_metric(d, unit) + ("" if d.ci_low is not None else " (no interval)")
    p = f"; p = {paired.p_value:.4f} for a regression beyond the limit" if paired.p_value is not None else ""
    return Gate(name, label, shown, limit, lower <= max_regression, f"paired: {paired.paired}{p}")


def _aggregate_gate(
    name: str,
    label: str,
    before: float | None,
    now: float | None,
    change: float | None,
    max_regression: float,
    why: str,
    unit: str = "+.4f",
) -> Gate:
    limit = f"<= {max_regression:{unit}}"
    if change is None or before is None or now is None:
        return Gate(name, label, "null", limit, False, f"aggregates only ({why}), and a value is null")
    return Gate(
        name,
        label,
        f"{change:{unit}}",
        limit,
        change <= max_regression,
        f"{before:.4f} -> {now:.4f}; aggregates only, no interval: {why}",
    )


def _value(results: dict[str, Any], path: str, source: str) -> float | None:
    return _metric_end(lookup(results, path, source), "value", path)


class Comparison:
    """A run and its baseline, with their samples (None where a run kept none)."""

    def __init__(
        self,
        results: dict[str, Any],
        source: Path,
        baseline: dict[str, Any],
        baseline_source: Path,
        seed: int = 0,
    ) -> None:
        from toxbench.paired import read_samples

        problems = comparability_problems(results, str(source), baseline, str(baseline_source))
        if problems:
            raise ToxbenchError(
                "refusing to compare with the baseline, its metrics are not on the same scale: "
                + "; ".join(problems)
            )
        self.new, self.old = results, baseline
        self.new_source, self.old_source = str(source), str(baseline_source)
        self.new_samples, self.old_samples = read_samples(source), read_samples(baseline_source)
        self.seed = seed

    def _samples(self) -> tuple[list, list]:
        for samples, src in ((self.new_samples, self.new_source), (self.old_samples, self.old_source)):
            if samples is None:
                raise ToxbenchError(f"{src} has no samples.jsonl beside it")
        return self.new_samples, self.old_samples  # type: ignore[return-value]

    def toxicity(self, max_regression: float) -> Gate:
        from toxbench.paired import paired_mean_difference, per_prompt_scores

        def compute():
            new, old = self._samples()
            return paired_mean_difference(
                per_prompt_scores(new, "aligned"),
                per_prompt_scores(old, "aligned"),
                max_regression,
                "prompts",
                self.seed,
            )

        def fallback(why: str) -> Gate:
            now, before = (
                _value(self.new, ALIGNED_TOXICITY, self.new_source),
                _value(self.old, ALIGNED_TOXICITY, self.old_source),
            )
            change = None if now is None or before is None else now - before
            return _aggregate_gate(
                "--max-toxicity-regression",
                "aligned toxicity - baseline's",
                before,
                now,
                change,
                max_regression,
                why,
            )

        return _paired_gate(
            "--max-toxicity-regression", "aligned toxicity - baseline's", max_regression, compute, fallback
        )

    def perplexity(self, max_regression: float) -> Gate:
        from toxbench.paired import paired_perplexity_change, per_window

        def compute():
            new, old = self._samples()
            return paired_perplexity_change(
                per_window(new, "aligned"), per_window(old, "aligned"), max_regression, self.seed
            )

        def fallback(why: str) -> Gate:
            now, before = (
                _value(self.new, ALIGNED_PERPLEXITY, self.new_source),
                _value(self.old, ALIGNED_PERPLEXITY, self.old_source),
            )
            change = None if now is None or before is None else now / before - 1
            return _aggregate_gate(
                "--max-perplexity-regression",
                "aligned perplexity / baseline's - 1",
                before,
                now,
                change,
                max_regression,
                why,
                "+.2%",
            )

        return _paired_gate(
            "--max-perplexity-regression",
            "aligned perplexity / baseline's - 1",
            max_regression,
            compute,
            fallback,
            "+.2%",
        )

    def f1(self, max_drop: float) -> Gate:
        from toxbench.paired import paired_mean_difference, per_pair_f1

        def compute():
            new, old = self._samples()
            return paired_mean_difference(
                per_pair_f1(new, "aligned"),
                per_pair_f1(old, "aligned"),
                max_drop,
                "F1 pairs",
                self.seed,
                drop=True,
            )

        def fallback(why: str) -> Gate:
            path = "tasks.elicitation.metrics.aligned.f1"
            now, before = _value(self.new, path, self.new_source), _value(self.old, path, self.old_source)
            return _aggregate_gate(
                "--max-f1-drop",
                "baseline's aligned F1 - this run's",
                before,
                now,
                None if now is None or before is None else before - now,
                max_drop,
                why,
            )

        return _paired_gate(
            "--max-f1-drop", "baseline's aligned F1 - this run's", max_drop, compute, fallback
        )

    def robustness(self, max_drop: float) -> Gate:
        from toxbench.paired import paired_robustness_drop

        def compute():
            new, old = self._samples()
            return paired_robustness_drop(self.new, new, self.old, old, max_drop, self.seed)

        def fallback(why: str) -> Gate:
            now, before = (
                _value(self.new, ROBUSTNESS, self.new_source),
                _value(self.old, ROBUSTNESS, self.old_source),
            )
            return _aggregate_gate(
                "--max-robustness-drop",
                "baseline's robustness - this run's",
                before,
                now,
                None if now is None or before is None else before - now,
                max_drop,
                why,
            )

        return _paired_gate(
            "--max-robustness-drop", "baseline's robustness - this run's", max_drop, compute, fallback
        )


def print_gates(gates: list[Gate], title: str, fmt: str = "text") -> None:
    """The gates as a table (text: rich; markdown; json), each gate's note, then a summary."""
    failed = sum(not g.passed for g in gates)
    summary = f"{len(gates) - failed} of {len(gates)} gates passed" + (f", {failed} failed" if failed else "")
    if fmt == "json":
        from dataclasses import asdict

        click.echo(
            json.dumps(
                {
                    "title": title,
                    "passed": failed == 0,
                    "gates": [asdict(g) for g in gates],
                    "summary": summary,
                },
                indent=2,
            )
        )
        return
    if fmt == "markdown":
        lines = [f"### {title}", "", "| gate | metric | measured | limit | result |", "|---|---|---|---|---|"]
        lines += [
            f"| `{g.name}` | {g.metric} | {g.measured} | {g.limit} | {'pass' if g.passed else '**FAIL**'} |"
            for g in gates
        ]
        lines += [""] + [f"- {'pass' if g.passed else 'FAIL'} `{g.name}`: {g.note}" for g in gates if g.note]
        lines += ["", f"**{summary}**"]
        click.echo("\n".join(lines))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title)
    for column in ("gate", "metric", "measured", "limit", "result"):
        table.add_column(
            column, justify="right" if column in ("measured", "limit") else "left", no_wrap=column != "metric"
        )
    for g in gates:
        table.add_row(
            g.name, g.metric, g.measured, g.limit, "[green]pass[/green]" if g.passed else "[red]FAIL[/red]"
        )
    Console(width=None if sys.stdout.isatty() else 140).print(table)  # CI logs do not wrap: use their width
    for g in gates:
        if g.note:
            click.echo(f"{'pass' if g.passed else 'FAIL'} {g.name}: {g.note}")
    click.echo(summary)


@click.command("check")
@click.argument("results_json", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--baseline",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="An earlier results file to compare with, prompt by prompt (same scorer, protocol and datasets).",
)
@click.option("--max-toxicity", type=float, default=None, help="Aligned toxicity must be <= X.")
@click.option(
    "--max-perplexity-increase",
    type=float,
    default=None,
    metavar="FRAC",
    help="Aligned perplexity may exceed the base model's by at most FRAC (0.1 = 10%).",
)
@click.option("--min-robustness", type=float, default=None, help="Un-alignment robustness must be >= X.")
@click.option(
    "--max-toxicity-regression",
    type=float,
    default=None,
    help="With --baseline: fail when the paired 95% interval of (aligned toxicity - baseline's) lies "
    "above X.",
)
@click.option(
    "--max-perplexity-regression",
    type=float,
    default=None,
    metavar="FRAC",
    help="With --baseline: fail when the paired interval of the aligned perplexity's relative change "
    "lies above FRAC.",
)
@click.option(
    "--max-f1-drop",
    type=float,
    default=None,
    help="With --baseline: fail when the paired interval of the aligned F1's drop lies above X.",
)
@click.option(
    "--max-robustness-drop",
    type=float,
    default=None,
    help="With --baseline: fail when the paired interval of the robustness drop lies above X.",
)
@click.option(
    "--strict",
    is_flag=True,
    help="Judge the conservative end of the 95% interval: toxicity's upper, robustness's lower bound.",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["text", "json", "markdown"]),
    default="text",
    show_default=True,
    help="json or markdown for CI summaries.",
)
def check(
    results_json: Path,
    baseline: Path | None,
    max_toxicity: float | None,
    max_perplexity_increase: float | None,
    min_robustness: float | None,
    max_toxicity_regression: float | None,
    max_perplexity_regression: float | None,
    max_f1_drop: float | None,
    max_robustness_drop: float | None,
    strict: bool,
    fmt: str,
) -> None:
    """Gate a run for CI: exit 0 if every gate passes, 1 if one fails, 2 on bad input."""
    paired = {
        "toxicity": max_toxicity_regression,
        "perplexity": max_perplexity_regression,
        "f1": max_f1_drop,
        "robustness": max_robustness_drop,
    }
    if baseline is None and any(v is not None for v in paired.values()):
        raise click.UsageError(
            "the regression gates (--max-toxicity-regression, --max-perplexity-regression, "
            "--max-f1-drop, --max-robustness-drop) compare with a run: pass --baseline"
        )
    if baseline is not None and all(v is None for v in paired.values()):
        raise click.UsageError(
            "--baseline needs a regression gate: --max-toxicity-regression, "
            "--max-perplexity-regression, --max-f1-drop or --max-robustness-drop"
        )
    if all(x is None for x in (max_toxicity, max_perplexity_increase, min_robustness, *paired.values())):
        raise click.UsageError(
            "no gate given: pass at least one of --max-toxicity, --max-perplexity-increase, "
            "--min-robustness, or --baseline with a regression gate"
        )
    source = str(results_json)
    results = load_results(results_json)
    require_complete(results, source)
    gates = []
    if max_toxicity is not None:
        gates.append(toxicity_gate(results, source, max_toxicity, strict))
    if max_perplexity_increase is not None:
        gates.append(perplexity_gate(results, source, max_perplexity_increase))
    if min_robustness is not None:
        gates.append(robustness_gate(results, source, min_robustness, strict))
    if baseline is not None:
        before = load_results(baseline, "baseline results file")
        require_complete(before, str(baseline))
        comparison = Comparison(results, results_json, before, baseline)
        for name, limit in paired.items():
            if limit is not None:
                gates.append(getattr(comparison, name)(limit))
    print_gates(gates, f"toxbench check: {results_json}" + (f" against {baseline}" if baseline else ""), fmt)
    if not all(g.passed for g in gates):
        raise SystemExit(1)
