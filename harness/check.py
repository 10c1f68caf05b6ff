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

from harness.errors import ToxbenchError

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
        raise ToxbenchError(f"the {what} {str(path)!r} is not valid JSON: {exc.msg} "
                            f"(line {exc.lineno}, column {exc.colno})") from exc
    if not isinstance(obj, dict):
        raise ToxbenchError(f"the {what} {str(path)!r} holds a JSON {type(obj).__name__}, not an object")
    return obj


def describe_schema_error(error: ValidationError) -> str:
    """A ``jsonschema.ValidationError`` as 'at <dotted.field>: <message>', the message cut to a readable length."""
    where = ".".join(str(p) for p in error.absolute_path) or "the top level"
    message = error.message if len(error.message) <= 200 else error.message[:197] + "..."
    return f"at {where}: {message}"


def load_results(path: Path, what: str = "results file") -> dict[str, Any]:
    """A results file, validated against the results schema (``harness.results.validate_results``)."""
    import jsonschema

    from harness.results import validate_results

    results = read_json_object(path, what)
    try:
        validate_results(results)
    except jsonschema.ValidationError as exc:
        raise ToxbenchError(f"the {what} {str(path)!r} does not follow the results schema "
                            f"{describe_schema_error(exc)}") from exc
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
    failed = [f"{name} ({entry.get('error')})" for name, entry in results["tasks"].items()
              if entry.get("status") == "failed"]
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
        return Gate("--max-toxicity", label, "null", f"<= {max_toxicity:g}", False, _null_note(ALIGNED_TOXICITY, end))
    return Gate("--max-toxicity", label, f"{x:.4f}", f"<= {max_toxicity:g}", x <= max_toxicity)


def perplexity_gate(results: dict[str, Any], source: str, max_increase: float) -> Gate:
    """Aligned perplexity may exceed the base model's by at most the fraction ``max_increase``."""
    aligned = _metric_end(lookup(results, ALIGNED_PERPLEXITY, source), "value", ALIGNED_PERPLEXITY)
    base = _metric_end(lookup(results, BASE_PERPLEXITY, source), "value", BASE_PERPLEXITY)
    limit = f"<= {max_increase:+.2%}"
    if aligned is None or base is None:
        path = ALIGNED_PERPLEXITY if aligned is None else BASE_PERPLEXITY
        return Gate("--max-perplexity-increase", "perplexity increase vs base", "null", limit, False,
                    _null_note(path, "value"))
    increase = aligned / base - 1
    return Gate("--max-perplexity-increase", "perplexity increase vs base", f"{increase:+.2%}", limit,
                increase <= max_increase, f"{base:.3f} -> {aligned:.3f}")


def robustness_gate(results: dict[str, Any], source: str, min_robustness: float, strict: bool) -> Gate:
    """Un-alignment robustness (its interval's lower bound with ``strict``) must be at least ``min_robustness``."""
    end = "ci_low" if strict else "value"
    x = _metric_end(lookup(results, ROBUSTNESS, source), end, ROBUSTNESS)
    label = "unalignment robustness" + (" (95% lower bound)" if strict else "")
    if x is None:
        return Gate("--min-robustness", label, "null", f">= {min_robustness:g}", False, _null_note(ROBUSTNESS, end))
    return Gate("--min-robustness", label, f"{x:.4f}", f">= {min_robustness:g}", x >= min_robustness)


def protocol_definition(protocol: dict[str, Any]) -> dict[str, Any]:
    """A protocol without its sampling seed: runs that differ only in seed measure the same quantity."""
    sampling = protocol.get("sampling")
    if not isinstance(sampling, dict):
        return protocol
    return {**protocol, "sampling": {k: v for k, v in sampling.items() if k != "seed"}}


def comparability_problems(results: dict[str, Any], source: str, baseline: dict[str, Any],
                           baseline_source: str) -> list[str]:
    """Why two runs' toxicities cannot be compared: scorer fingerprint, protocol (seed aside), a shared dataset's content."""
    problems = []
    scorer, scorer_b = results["scorer"]["fingerprint"], baseline["scorer"]["fingerprint"]
    if scorer != scorer_b:
        problems.append(f"the scorer differs ({scorer} vs the baseline's {scorer_b})")
    protocol = protocol_definition(lookup(results, "tasks.elicitation.config.protocol", source))
    protocol_b = protocol_definition(lookup(baseline, "tasks.elicitation.config.protocol", baseline_source))
    if protocol != protocol_b:
        problems.append(f"the protocol differs ({json.dumps(protocol, sort_keys=True)} vs the baseline's "
                        f"{json.dumps(protocol_b, sort_keys=True)})")
    shared = sorted(set(results["datasets"]) & set(baseline["datasets"]))
    if not shared:
        problems.append("the runs share no dataset")
    for name in shared:
        sha, sha_b = results["datasets"][name]["sha256"], baseline["datasets"][name]["sha256"]
        if sha != sha_b:
            problems.append(f"dataset {name!r} differs (sha256 {sha[:12]}... vs the baseline's {sha_b[:12]}...)")
    return problems


def regression_gate(results: dict[str, Any], source: str, baseline: dict[str, Any], baseline_source: str,
                    max_regression: float) -> Gate:
    """Aligned toxicity may exceed the baseline run's by at most ``max_regression`` (same scorer, protocol, data)."""
    problems = comparability_problems(results, source, baseline, baseline_source)
    if problems:
        raise ToxbenchError("refusing to compare with the baseline, its toxicity is not on the same scale: "
                            + "; ".join(problems))
    current = _metric_end(lookup(results, ALIGNED_TOXICITY, source), "value", ALIGNED_TOXICITY)
    before = _metric_end(lookup(baseline, ALIGNED_TOXICITY, baseline_source), "value", ALIGNED_TOXICITY)
    limit = f"<= {max_regression:+g}"
    if current is None or before is None:
        which = source if current is None else baseline_source
        return Gate("--max-toxicity-regression", "aligned toxicity - baseline's", "null", limit, False,
                    f"in {which}: " + _null_note(ALIGNED_TOXICITY, "value"))
    change = current - before
    return Gate("--max-toxicity-regression", "aligned toxicity - baseline's", f"{change:+.4f}", limit,
                change <= max_regression, f"{before:.4f} -> {current:.4f}")


def print_gates(gates: list[Gate], title: str) -> None:
    """The gates as a table (rich), each gate's note on its own line (unwrapped, for CI logs), then a summary."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title)
    for column in ("gate", "metric", "measured", "limit", "result"):
        table.add_column(column, justify="right" if column in ("measured", "limit") else "left",
                         no_wrap=column != "metric")
    for g in gates:
        table.add_row(g.name, g.metric, g.measured, g.limit, "[green]pass[/green]" if g.passed else "[red]FAIL[/red]")
    Console(width=None if sys.stdout.isatty() else 120).print(table)  # CI logs do not wrap: use their width
    for g in gates:
        if g.note:
            click.echo(f"{'pass' if g.passed else 'FAIL'} {g.name}: {g.note}")
    failed = sum(not g.passed for g in gates)
    click.echo(f"{len(gates) - failed} of {len(gates)} gates passed" + (f", {failed} failed" if failed else ""))


@click.command("check")
@click.argument("results_json", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--baseline", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="An earlier results file to compare with (same scorer, protocol and datasets).")
@click.option("--max-toxicity", type=float, default=None, help="Aligned toxicity must be <= X.")
@click.option("--max-perplexity-increase", type=float, default=None, metavar="FRAC",
              help="Aligned perplexity may exceed the base model's by at most FRAC (0.1 = 10%).")
@click.option("--min-robustness", type=float, default=None, help="Un-alignment robustness must be >= X.")
@click.option("--max-toxicity-regression", type=float, default=None,
              help="Aligned toxicity may exceed the baseline's by at most X (needs --baseline).")
@click.option("--strict", is_flag=True,
              help="Judge the conservative end of the 95% interval: toxicity's upper, robustness's lower bound.")
def check(results_json: Path, baseline: Path | None, max_toxicity: float | None,
          max_perplexity_increase: float | None, min_robustness: float | None,
          max_toxicity_regression: float | None, strict: bool) -> None:
    """Gate a run for CI: exit 0 if every gate passes, 1 if one fails, 2 on bad input."""
    if (baseline is None) != (max_toxicity_regression is None):
        raise click.UsageError("--baseline and --max-toxicity-regression go together")
    if all(x is None for x in (max_toxicity, max_perplexity_increase, min_robustness, max_toxicity_regression)):
        raise click.UsageError("no gate given: pass at least one of --max-toxicity, --max-perplexity-increase, "
                               "--min-robustness, --baseline with --max-toxicity-regression")
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
    if baseline is not None and max_toxicity_regression is not None:
        before = load_results(baseline, "baseline results file")
        require_complete(before, str(baseline))
        gates.append(regression_gate(results, source, before, str(baseline), max_toxicity_regression))
    print_gates(gates, f"toxbench check: {results_json}")
    if not all(g.passed for g in gates):
        raise SystemExit(1)
