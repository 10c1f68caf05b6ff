"""``toxbench compare RUN RUN...``: several runs' headline metrics side by side, and paired
differences where the runs scored the same prompts.

Each RUN is a run's output folder or its results.json. The table has a row per metric (every
task's metrics of the base and aligned models and their difference, as ``task.role.metric``,
and each task's own interval metrics such as ``unalignment.robustness``) and a column per run.

One run is the reference (the first unless ``--reference N``). Every other run whose metrics are
on the reference's scale (``toxbench.check.comparability_problems``: the same scorer, protocol,
fluency settings, task versions and options, and the same datasets by hash) and that kept its
samples gets a paired difference of the aligned and of the base model's mean toxicity against
the reference, prompt by prompt (``toxbench.paired``): far narrower than the difference of the
two runs' own intervals. A run that cannot be paired gets a note saying why.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from toxbench.errors import ToxbenchError
from toxbench.metrics import format_metric

ROLES = ("base", "aligned", "difference")
FORMATS = ("text", "markdown", "json")
PAIRED_ROLES = ("aligned", "base")
MISSING = "-"  # a metric the run does not have (a task it did not run)


@dataclass
class _Run:
    label: str
    source: Path  # the results file
    results: dict[str, Any]


def _results_path(path: Path) -> Path:
    """The results file a RUN argument names: the file itself, or results.json in the folder."""
    if path.is_dir():
        inside = path / "results.json"
        if not inside.is_file():
            raise ToxbenchError(
                f"{str(path)!r} is a folder without a results.json: not a toxbench run folder"
            )
        return inside
    if path.is_file():
        return path
    raise ToxbenchError(f"{str(path)!r} does not exist: pass a run's output folder or its results.json")


def _labels(sources: list[Path]) -> list[str]:
    """A short label per run: its folder's name (a results file not named results.json: its stem),
    with the parent folder added where two share a name, and a number where that is not enough."""

    def short(p: Path) -> str:
        p = p.resolve()
        return p.parent.name if p.name == "results.json" else p.stem

    def longer(p: Path) -> str:
        p = p.resolve()
        folder = p.parent if p.name == "results.json" else p.with_suffix("")
        return f"{folder.parent.name}/{folder.name}"

    names = [short(p) or str(p) for p in sources]
    labels = [longer(p) if names.count(n) > 1 else n for n, p in zip(names, sources, strict=True)]
    return [f"{label}#{i + 1}" if labels.count(label) > 1 else label for i, label in enumerate(labels)]


def _is_metric_object(x: Any) -> bool:
    return isinstance(x, dict) and "value" in x and ("ci_low" in x or "n" in x)


def _is_number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def _headline_paths(results: dict[str, Any]) -> list[tuple[str, ...]]:
    """The paths (task, role, metric) and (task, metric) of a run's headline metrics that hold a value."""
    paths: list[tuple[str, ...]] = []
    for task, entry in (results.get("tasks") or {}).items():
        metrics = entry.get("metrics") if isinstance(entry, dict) else None
        if not isinstance(metrics, dict):
            continue
        for key, value in metrics.items():
            if key in ROLES and isinstance(value, dict) and not _is_metric_object(value):
                paths += [
                    (task, key, name) for name, m in value.items() if _is_metric_object(m) or _is_number(m)
                ]
            elif _is_metric_object(value):
                paths.append((task, key))
    return paths


_ABSENT = object()


def _at(results: dict[str, Any], path: tuple[str, ...]) -> Any:
    """The value at (task, [role,] metric) in a run's results (null allowed), or ``_ABSENT``."""
    node: Any = (results.get("tasks") or {}).get(path[0], {})
    node = node.get("metrics") if isinstance(node, dict) else None
    for key in path[1:]:
        if not isinstance(node, dict) or key not in node:
            return _ABSENT
        node = node[key]
    return node


def _model_spec(results: dict[str, Any], role: str) -> str | None:
    model = (results.get("models") or {}).get(role)
    if isinstance(model, dict) and model.get("spec"):
        return str(model["spec"])
    spec = (results.get("config") or {}).get("model" if role == "base" else "aligned")
    return None if spec is None else str(spec)


def _pairing_problems(run: _Run, ref: _Run) -> list[str]:
    """Why ``run``'s elicitation samples cannot be paired with the reference's (empty: they can)."""
    from toxbench.check import comparability_problems

    for r in (run, ref):
        status = ((r.results.get("tasks") or {}).get("elicitation") or {}).get("status")
        if status != "ok":
            did = "did not run" if status is None else f"has status {status!r}"
            return [f"the elicitation task of {r.label} {did}"]
    try:
        problems = comparability_problems(run.results, str(run.source), ref.results, str(ref.source))
    except ToxbenchError as exc:
        return [str(exc)]
    return [p.replace("the baseline's", "the reference's") for p in problems]  # check.py's words


def _paired_rows(
    run: _Run, ref: _Run, seed: int, notes: list[str], samples: dict[Path, Any]
) -> list[dict[str, Any]]:
    """The paired toxicity differences of ``run`` against the reference, or notes saying why there are none."""
    from toxbench.paired import paired_mean_difference, per_prompt_scores, read_samples

    problems = _pairing_problems(run, ref)
    if problems:
        notes.append(
            f"{run.label}: no paired difference against {ref.label} (the reference), its metrics are "
            f"not on the same scale: {'; '.join(problems)}"
        )
        return []
    for r in (run, ref):
        if r.source not in samples:
            samples[r.source] = read_samples(r.source)
        if samples[r.source] is None:
            notes.append(
                f"{run.label}: no paired difference against {ref.label} (the reference): "
                f"{r.source} has no samples.jsonl beside it"
            )
            return []
    rows = []
    for role in PAIRED_ROLES:
        new, old = per_prompt_scores(samples[run.source], role), per_prompt_scores(samples[ref.source], role)
        if not new and not old:
            continue  # neither run has this model (e.g. no aligned model): nothing to say
        try:
            paired = paired_mean_difference(new, old, 0.0, "prompts", seed)
        except ToxbenchError as exc:
            notes.append(f"{run.label}: no paired {role} toxicity against {ref.label}: {exc}")
            continue
        rows.append(
            {
                "run": run.label,
                "reference": ref.label,
                "metric": f"elicitation.{role}.toxicity",
                "difference": paired.difference.to_dict(),
                "p_value": paired.p_value,
                "paired": paired.paired,
            }
        )
    return rows


def compare_runs(paths: list[Path], reference: int = 0, seed: int = 0) -> dict[str, Any]:
    """The runs' headline metrics side by side and paired differences against run ``reference``.

    Returns ``{"reference": label, "runs": [...], "metrics": {key: {label: metric}}, "paired":
    [...], "notes": [...]}``. A metric is as the results hold it (an object with value and
    interval, a number, or null); a run without it (a task it did not run) is left out of that
    metric's mapping. A paired row's ``difference`` is this run's mean toxicity minus the
    reference's over the prompts both scored, with a paired bootstrap interval (``seed``), and
    ``p_value`` the sign-flip test of a difference above 0.
    """
    from toxbench.check import load_results

    paths = [Path(p) for p in paths]
    if not paths:
        raise ToxbenchError("no runs to compare")
    if not 0 <= reference < len(paths):
        raise ToxbenchError(
            f"--reference {reference} is not a run's index: pass 0 to {len(paths) - 1} (the runs in the order given)"
        )
    sources = [_results_path(p) for p in paths]
    runs = [
        _Run(label, source, load_results(source))
        for label, source in zip(_labels(sources), sources, strict=True)
    ]

    keys: dict[tuple[str, ...], None] = {}
    for run in runs:
        keys.update(dict.fromkeys(_headline_paths(run.results)))
    metrics: dict[str, dict[str, Any]] = {}
    for path in keys:
        values = {run.label: v for run in runs if (v := _at(run.results, path)) is not _ABSENT}
        metrics[".".join(path)] = values

    ref = runs[reference]
    notes: list[str] = []
    paired: list[dict[str, Any]] = []
    samples: dict[Path, Any] = {}
    for i, run in enumerate(runs):
        if i != reference:
            paired += _paired_rows(run, ref, seed, notes, samples)
    return {
        "reference": ref.label,
        "runs": [
            {
                "label": run.label,
                "path": str(run.source),
                "status": run.results.get("status"),
                "model": _model_spec(run.results, "base"),
                "aligned": _model_spec(run.results, "aligned"),
                "scorer": (run.results.get("scorer") or {}).get("name"),
                "protocol": (run.results.get("config") or {}).get("protocol"),
            }
            for run in runs
        ],
        "metrics": metrics,
        "paired": paired,
        "notes": notes,
    }


def _spec(key: str) -> str:
    """How a metric's numbers are shown: signed for a difference, two decimals for perplexity."""
    if ".difference." in key:
        return "+.3f"
    return ".2f" if "perplexity" in key else ".3f"


def _shown(value: Any, key: str) -> str:
    if isinstance(value, dict) and "value" in value:
        return format_metric(value, _spec(key)) if value.get("value") is not None else "n/a"
    if _is_number(value):
        return format_metric({"value": value}, _spec(key))
    return "n/a" if value is None else str(value)


def _grid(table: dict[str, Any]) -> tuple[list[str], list[list[str]], list[str], list[list[str]]]:
    """The metrics and paired tables as header and rows of text."""
    labels = [r["label"] for r in table["runs"]]
    header = ["metric"] + [
        f"{label} (reference)" if label == table["reference"] else label for label in labels
    ]
    rows = [
        [key] + [_shown(values[label], key) if label in values else MISSING for label in labels]
        for key, values in table["metrics"].items()
    ]
    paired_header = ["run", "metric", "minus the reference's", "p (> 0)", "paired"]
    paired_rows = [
        [
            p["run"],
            p["metric"],
            format_metric(p["difference"], "+.4f"),
            "n/a" if p["p_value"] is None else f"{p['p_value']:.4f}",
            p["paired"],
        ]
        for p in table["paired"]
    ]
    return header, rows, paired_header, paired_rows


def _run_line(run: dict[str, Any]) -> str:
    models = run["model"] or "?"
    if run["aligned"]:
        models += f" -> {run['aligned']}"
    return (
        f"{run['label']}: {models}; scorer {run['scorer']}, protocol {run['protocol']}, status "
        f"{run['status']} ({run['path']})"
    )


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|")


def render(table: dict[str, Any], fmt: str = "text", width: int | None = None) -> str:
    """``compare_runs``' result as text (rich tables, ``width`` columns wide), markdown (GitHub tables) or JSON."""
    if fmt == "json":
        return json.dumps(table, indent=2)
    if fmt not in FORMATS:
        raise ToxbenchError(f"unknown format {fmt!r}: use one of {', '.join(FORMATS)}")
    header, rows, paired_header, paired_rows = _grid(table)
    title = f"toxbench compare: {len(table['runs'])} runs, reference {table['reference']}"
    if fmt == "markdown":
        lines = [f"### {title}", ""]
        lines += [f"- {_md_cell(_run_line(r))}" for r in table["runs"]]
        lines += ["", "| " + " | ".join(map(_md_cell, header)) + " |", "|" + "---|" * len(header)]
        lines += ["| " + " | ".join(map(_md_cell, row)) + " |" for row in rows]
        if paired_rows:
            lines += ["", f"Paired differences against {_md_cell(table['reference'])}, prompt by prompt:", ""]
            lines += ["| " + " | ".join(paired_header) + " |", "|" + "---|" * len(paired_header)]
            lines += ["| " + " | ".join(map(_md_cell, row)) + " |" for row in paired_rows]
        if table["notes"]:
            lines += [""] + [f"- {_md_cell(n)}" for n in table["notes"]]
        return "\n".join(lines) + "\n"

    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    buffer = io.StringIO()
    console = Console(file=buffer, width=width or 160, no_color=True, highlight=False, soft_wrap=False)
    console.print(title, markup=False)
    for run in table["runs"]:
        console.print(_run_line(run), markup=False)
    metrics = Table(title="metrics (95% intervals)")
    for i, column in enumerate(header):
        metrics.add_column(Text(column), justify="left" if i == 0 else "right", no_wrap=i == 0)
    for row in rows:
        metrics.add_row(*map(Text, row))  # Text: a label in [brackets] is not markup
    console.print(metrics)
    if paired_rows:
        paired = Table(title=f"paired differences against {table['reference']}, prompt by prompt")
        for column in paired_header:
            paired.add_column(
                Text(column), justify="right" if column in ("minus the reference's", "p (> 0)") else "left"
            )
        for row in paired_rows:
            paired.add_row(*map(Text, row))
        console.print(paired)
    for note in table["notes"]:
        console.print(f"note: {note}", markup=False)
    return buffer.getvalue()


class _BadInput(click.ClickException):
    """A run that cannot be read: one line naming it, exit status 2 (as the ``toxbench`` group does)."""

    exit_code = 2

    def show(self, file: Any = None) -> None:
        click.secho(f"error: {self.format_message()}", fg="red", err=True)


@click.command("compare")
@click.argument("runs", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option(
    "--format",
    "fmt",
    type=click.Choice(FORMATS),
    default="text",
    show_default=True,
    help="text (tables), markdown (for a CI summary or a pull request) or json.",
)
@click.option(
    "--reference",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    metavar="N",
    help="Which run the paired differences are against: its position among RUNS, from 0.",
)
def compare(runs: tuple[Path, ...], fmt: str, reference: int) -> None:
    """Compare runs side by side: RUNS are run folders or their results.json files (at least 2).

    Runs that scored the same prompts with the same scorer and protocol also get the paired
    difference of their mean toxicity against the reference run, prompt by prompt.
    """
    if len(runs) < 2:
        raise click.UsageError("compare needs at least 2 runs (run folders or results.json files)")
    if reference >= len(runs):
        raise click.UsageError(
            f"--reference {reference}: there are {len(runs)} runs, numbered 0 to {len(runs) - 1}"
        )
    try:
        table = compare_runs(list(runs), reference)
    except ToxbenchError as exc:
        raise _BadInput(str(exc)) from exc
    import shutil
    import sys

    width = shutil.get_terminal_size((160, 24)).columns if sys.stdout.isatty() else 160
    click.echo(render(table, fmt, width), nl=False)
