"""The leaderboard pages, generated from the submissions (never edited by hand): ``leaderboard.md``,
a self-contained ``index.html``, the paired differences between rows (``differences.json``) and a
Pareto plot of toxicity against perplexity change per group.

Rows are grouped by evaluation setting: base model, scorer, protocol, and the prompts scored
(their dataset hash and count), because toxicities from different scorers, protocols or prompt
sets are not on the same scale and alignment methods are compared on the same base weights.
Within a group, rows are ordered by aligned toxicity (the mean over training seeds where a row
has several) and **ranked in bands**: a row's rank is 1 + the number of rows shown less toxic
than it (a paired 95% interval of the difference that excludes 0, or, without samples to pair,
two intervals that do not overlap), so rows that no interval separates share a rank.
"""

from __future__ import annotations

import html
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from toxbench.check import protocol_definition
from toxbench.io import atomic_write_text, sha256_json

# base model spec and fingerprint, scorer name and fingerprint, protocol name and hash, the prompts'
# dataset hash and count
Setting = tuple[str, str, str, str, str, str, str, int]
MISSING = "—"
PERPLEXITY_BOUND = 0.10  # rows whose aligned perplexity exceeds the base model's by more are marked
PAST_BOUND = "†"


@dataclass(frozen=True)
class Cell:
    """One table cell: its text, an optional link, and the key the HTML table sorts it by ('' sorts last)."""

    text: str
    sort: str = ""
    href: str | None = None


def _metric(m: dict[str, Any] | None, digits: int = 3) -> Cell:
    """A metric as 'value [low, high]' (without the interval when it has none), or a dash when null."""
    if m is None:
        return Cell(MISSING)
    text = f"{m['value']:.{digits}f}"
    if m["ci_low"] is not None and m["ci_high"] is not None:
        text += f" [{m['ci_low']:.{digits}f}, {m['ci_high']:.{digits}f}]"
    return Cell(text, repr(m["value"]))


def _fraction(x: float | None, signed: bool) -> Cell:
    """A fraction as a percentage (with its sign when ``signed``), or a dash when null."""
    if x is None:
        return Cell(MISSING)
    return Cell(f"{x:+.1%}" if signed else f"{x:.1%}", repr(x))


def _seeds(spread: dict[str, Any] | None) -> Cell:
    """Aligned toxicity over training seeds as 'mean ± sd (n seeds)', or a dash for one seed."""
    if spread is None:
        return Cell(MISSING)
    return Cell(f"{spread['mean']:.3f} ± {spread['sd']:.3f} ({spread['n']} seeds)", repr(spread["mean"]))


def _perplexity_change(x: float | None) -> Cell:
    cell = _fraction(x, signed=True)
    if x is not None and x > PERPLEXITY_BOUND:
        return Cell(f"{cell.text} {PAST_BOUND}", cell.sort, cell.href)
    return cell


def rank_value(submission: dict[str, Any]) -> float:
    """What a row is ranked by: its aligned toxicity, averaged over training seeds where it has several."""
    spread = submission["summary"].get("aligned_toxicity_seeds")
    return spread["mean"] if spread else submission["summary"]["aligned_toxicity"]["value"]


COLUMNS: list[tuple[str, Callable[[dict[str, Any]], Cell]]] = [
    ("submission", lambda s: Cell(s["name"], s["name"].lower(), s["url"])),
    ("method", lambda s: Cell(s["method"], s["method"].lower())),
    ("aligned toxicity [95% CI]", lambda s: _metric(s["summary"]["aligned_toxicity"])),
    ("over training seeds", lambda s: _seeds(s["summary"].get("aligned_toxicity_seeds"))),
    ("base toxicity", lambda s: _metric(s["summary"]["base_toxicity"])),
    ("perplexity change", lambda s: _perplexity_change(s["summary"]["perplexity_change"])),
    ("F1 (aligned)", lambda s: _metric(s["summary"]["aligned_f1"])),
    ("best emulation ratio", lambda s: _metric(s["summary"]["best_emulation_ratio"], 2)),
    ("robustness", lambda s: _metric(s["summary"]["robustness"])),
    ("TP- share", lambda s: _fraction(s["summary"]["tp_minus_share"], signed=False)),
    ("scorer", lambda s: Cell(s["provenance"]["scorer"]["name"], s["provenance"]["scorer"]["name"])),
    ("protocol", lambda s: Cell(s["provenance"]["protocol"]["name"], s["provenance"]["protocol"]["name"])),
]
LEGEND = (
    "Aligned and base toxicity: mean toxicity of the continuations of the protocol's prompts, with a bootstrap "
    "95% interval over prompts. Over training seeds: the aligned toxicity's mean and standard deviation over "
    "models of the same method trained with different seeds (the row's run is one of them), the noise of "
    "training itself; rows are ranked by that mean where a row has it. Perplexity change: the aligned model's perplexity relative to its base model's. "
    "F1 (aligned): the aligned model's token F1 against gold continuations. Best emulation ratio (ablation task): "
    "(base - edited toxicity) / (base - aligned toxicity) for the best surgery on the base model; 1 means the "
    "surgery does what alignment did. Robustness (unalignment task): 1 - the largest share of the toxicity "
    "reduction that an edit of the aligned model brings back while its perplexity stays in bounds; 1 means "
    "nothing comes back. TP- share (attribution task): the share of the gross drop in toxic writing from "
    "toxic-aligned neurons whose positive activation fell. "
    f"{MISSING}: the task was not run or produced no value. "
    f"{PAST_BOUND}: the aligned model's perplexity is more than {PERPLEXITY_BOUND:.0%} above its base model's. "
    "#: 1 + the number of rows shown less toxic (a paired 95% interval of the difference in aligned toxicity "
    "that excludes 0; without samples to pair, intervals that do not overlap): rows that no interval "
    "separates share a rank."
)


def prompts_scored(submission: dict[str, Any]) -> tuple[str, int]:
    """The elicitation prompts a submission's toxicity is a mean over: their dataset's hash and count."""
    results = submission.get("results", {})
    own = results.get("tasks", {}).get("elicitation", {}).get("datasets", {})  # results schema >= 1.1
    rtp = own.get("real-toxicity-prompts") or submission["provenance"]["datasets"].get(
        "real-toxicity-prompts", {}
    )
    return str(rtp.get("sha256", "")), int(submission["summary"]["aligned_toxicity"]["n"])


def setting(submission: dict[str, Any]) -> Setting:
    """The evaluation setting a submission's toxicity belongs to: rows compare only within one."""
    p = submission["provenance"]
    protocol_hash = sha256_json(protocol_definition(p["protocol"]))[:8]
    base = p["models"]["base"]
    prompts_sha, n_prompts = prompts_scored(submission)
    # The base model by its weights: an organism trained on another machine is another model.
    return (
        base["spec"],
        base["fingerprint"],
        p["scorer"]["name"],
        p["scorer"]["fingerprint"],
        p["protocol"]["name"],
        protocol_hash,
        prompts_sha[:12],
        n_prompts,
    )


def grouped(submissions: list[dict[str, Any]]) -> dict[Setting, list[dict[str, Any]]]:
    """Submissions by setting (settings in order), each group sorted by aligned toxicity ascending, then name."""
    groups: dict[Setting, list[dict[str, Any]]] = {}
    for s in submissions:
        groups.setdefault(setting(s), []).append(s)
    return {
        key: sorted(groups[key], key=lambda s: (rank_value(s), s["name"].lower())) for key in sorted(groups)
    }


def rank_bands(
    group: list[dict[str, Any]], differences: list[Difference]
) -> list[tuple[int, dict[str, Any]]]:
    """The group's rows with their ranks (``rank_bands`` in the module's docstring), ordered by rank,
    then by aligned toxicity."""
    paired = {(d.row, d.column): d for d in differences}

    def shown_less_toxic(a: dict[str, Any], b: dict[str, Any]) -> bool:
        """Whether row ``a`` is shown less toxic than row ``b``."""
        d = paired.get((b["name"], a["name"]))
        if d is not None:
            return d.separated and d.value > 0
        d = paired.get((a["name"], b["name"]))
        if d is not None:
            return d.separated and d.value < 0
        x, y = a["summary"]["aligned_toxicity"], b["summary"]["aligned_toxicity"]
        return x.get("ci_high") is not None and y.get("ci_low") is not None and x["ci_high"] < y["ci_low"]

    ranks = {s["name"]: 1 + sum(shown_less_toxic(o, s) for o in group if o is not s) for s in group}
    order = {s["name"]: i for i, s in enumerate(group)}
    rows = sorted(group, key=lambda s: (ranks[s["name"]], order[s["name"]]))
    return [(ranks[s["name"]], s) for s in rows]


def dataset_notes(group: list[dict[str, Any]]) -> list[str]:
    """A warning for each dataset whose content differs between the rows of one group."""
    versions: dict[str, set[str]] = {}
    for s in group:
        for name, d in s["provenance"]["datasets"].items():
            versions.setdefault(name, set()).add(d["sha256"])
    return [
        f"dataset `{name}` differs between rows ({len(shas)} versions): those rows are not strictly comparable"
        for name, shas in sorted(versions.items())
        if len(shas) > 1
    ]


@dataclass(frozen=True)
class Difference:
    """Aligned toxicity of one row minus another's, paired over the prompts both scored."""

    row: str
    column: str
    value: float
    ci_low: float | None
    ci_high: float | None
    n: int

    @property
    def separated(self) -> bool:
        """The 95% interval excludes 0: the two rows differ beyond the prompts' noise."""
        return self.ci_low is not None and self.ci_high is not None and (self.ci_low > 0 or self.ci_high < 0)


def _aligned_scores(submission: dict[str, Any], directory: Path) -> dict[int, float] | None:
    """Each prompt's aligned-model score by the scorer the row shows, from the submission's samples file
    (None without one)."""
    from toxbench.leaderboard.submission import submitted_scorer
    from toxbench.leaderboard.verify import read_samples_file
    from toxbench.paired import per_prompt_scores

    meta = submission.get("samples")
    if not meta or not (directory / meta["file"]).is_file():
        return None
    samples = read_samples_file(directory / meta["file"])
    return per_prompt_scores(samples, "aligned", scorer=submitted_scorer(submission))


def paired_differences(group: list[dict[str, Any]], directory: Path, seed: int = 0) -> list[Difference]:
    """Every pair of rows in one group (later row minus earlier) whose samples score the same prompts of
    the same data: the paired bootstrap 95% interval of their aligned toxicity's difference."""
    from toxbench.metrics import metric

    scores = {s["name"]: _aligned_scores(s, directory) for s in group}
    prompts = {
        s["name"]: s["provenance"]["datasets"].get("real-toxicity-prompts", {}).get("sha256") for s in group
    }
    out = []
    for i, a in enumerate(group):
        for b in group[:i]:
            x, y = scores[a["name"]], scores[b["name"]]
            if x is None or y is None or prompts[a["name"]] != prompts[b["name"]]:
                continue
            keys = sorted(x.keys() & y.keys())
            if len(keys) < 2:
                continue
            m = metric([x[k] - y[k] for k in keys], seed=seed)
            out.append(Difference(a["name"], b["name"], m.value, m.ci_low, m.ci_high, m.n))
    return out


def _difference_lines(group: list[dict[str, Any]], differences: list[Difference]) -> list[str]:
    """The paired differences of one group as a Markdown matrix (row minus column), or nothing."""
    if not differences:
        return []
    cell = {(d.row, d.column): d for d in differences}
    names = [s["name"] for s in group]
    lines = [
        "Paired differences in aligned toxicity (row minus column, over the prompts both scored); "
        "`*`: the 95% interval excludes 0.",
        "",
        "| row − column | " + " | ".join(_md_escape(n) for n in names[:-1]) + " |",
        "|---|" + "---:|" * (len(names) - 1),
    ]
    for i, row in enumerate(names[1:], 1):
        cells = []
        for column in names[:-1]:
            d = cell.get((row, column)) if names.index(column) < i else None
            cells.append("" if d is None else f"{d.value:+.3f}{' *' if d.separated else ''}")
        lines.append(f"| {_md_escape(row)} | " + " | ".join(cells) + " |")
    n_sep = sum(d.separated for d in differences)
    lines += ["", f"{n_sep} of {len(differences)} pairs differ with a 95% interval that excludes 0.", ""]
    return lines


def _heading(key: Setting) -> str:
    """A group's heading, in Markdown."""
    base, base_fingerprint, scorer, fingerprint, protocol, protocol_hash, prompts, n_prompts = key
    return (
        f"Base model `{base}` (`{base_fingerprint}`), scorer `{scorer}` (`{fingerprint}`), "
        f"protocol `{protocol}` (`{protocol_hash}`), {n_prompts} prompts (`{prompts or 'unrecorded'}`)"
    )


def _comparability_note(n_settings: int) -> str | None:
    """The warning shown when submissions span several settings."""
    if n_settings < 2:
        return None
    return (
        f"**Not comparable across tables.** These submissions use {n_settings} different (base model, scorer, "
        "protocol, prompts) settings. Toxicity from different scorers, protocols or prompt sets is on different "
        "scales, and methods "
        "applied to different base weights start from different models, so each setting has "
        "its own table and rows are ranked only within it."
    )


def _md_escape(text: str) -> str:
    """Text safe inside a Markdown table cell."""
    return html.escape(" ".join(text.split()), quote=False).replace("|", "\\|")


def _md_cell(cell: Cell) -> str:
    """A cell in Markdown, linked when it has a link."""
    text = _md_escape(cell.text)
    if cell.href is None:
        return text
    return f"[{text}]({cell.href.replace('(', '%28').replace(')', '%29')})"


def render_markdown(
    submissions: list[dict[str, Any]],
    source: str,
    differences: dict[Setting, list[Difference]] | None = None,
    plots: dict[Setting, str] | None = None,
) -> str:
    """``leaderboard.md``: one table per setting, with a note when there are several, and each setting's
    paired differences and Pareto plot when given."""
    groups = grouped(submissions)
    differences = differences or {}
    plots = plots or {}
    lines = [
        "# toxbench leaderboard",
        "",
        f"<!-- generated by `toxbench leaderboard render {source}`; do not edit by hand -->",
        "",
        f"{len(submissions)} submission{'s' if len(submissions) != 1 else ''} from `{source}`, ranked by "
        "aligned toxicity (lowest first) within each evaluation setting, in bands: rows that no 95% interval "
        "separates share a rank.",
        "",
    ]
    note = _comparability_note(len(groups))
    if note:
        lines += [f"> {note}", ""]
    if not groups:
        lines += ["No submissions yet.", ""]
    for key, group in groups.items():
        lines += [f"## {_heading(key)}", ""]
        for n in dataset_notes(group):
            lines += [f"> {n}", ""]
        lines.append("| # | " + " | ".join(name for name, _ in COLUMNS) + " |")
        lines.append("|---:|" + "---|" * len(COLUMNS))
        for rank, s in rank_bands(group, differences.get(key, [])):
            lines.append(f"| {rank} | " + " | ".join(_md_cell(cell(s)) for _, cell in COLUMNS) + " |")
        lines.append("")
        lines += _difference_lines(group, differences.get(key, []))
        if key in plots:
            lines += [f"![Aligned toxicity against perplexity change]({plots[key]})", ""]
    lines += [LEGEND, ""]
    return "\n".join(lines)


_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2rem; color: #222; }
table { border-collapse: collapse; margin-bottom: 2rem; font-size: 0.9rem; }
th, td { border: 1px solid #ccc; padding: 0.3rem 0.6rem; text-align: left; }
th { background: #f2f2f2; cursor: pointer; user-select: none; }
th[data-dir="asc"]::after { content: " \\25B2"; }
th[data-dir="desc"]::after { content: " \\25BC"; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
.note { background: #fff4e0; border-left: 4px solid #e0a030; padding: 0.5rem 1rem; }
code { background: #f4f4f4; padding: 0 0.2rem; }
img.pareto { max-width: 48rem; width: 100%; }
"""

# Click a header to sort its table by that column (again to reverse); empty cells stay last.
_SCRIPT = """
document.querySelectorAll("table.board th").forEach((th, i) => th.addEventListener("click", () => {
  const table = th.closest("table"), body = table.tBodies[0];
  const asc = th.dataset.dir !== "asc";
  table.querySelectorAll("th").forEach(h => delete h.dataset.dir);
  th.dataset.dir = asc ? "asc" : "desc";
  const key = tr => tr.children[i].dataset.sort;
  [...body.rows].sort((a, b) => {
    const x = key(a), y = key(b);
    if (x === "" || y === "") return (x === "") - (y === "");
    const nx = Number(x), ny = Number(y);
    const c = Number.isNaN(nx) || Number.isNaN(ny) ? x.localeCompare(y) : nx - ny;
    return asc ? c : -c;
  }).forEach(tr => body.appendChild(tr));
}));
"""


def _code_to_html(text: str) -> str:
    """Markdown `code` spans and **bold** (as written by this module) as escaped HTML."""
    parts = html.escape(text).split("`")
    out = "".join(f"<code>{p}</code>" if i % 2 else p for i, p in enumerate(parts))
    bold = out.split("**")
    return "".join(f"<strong>{p}</strong>" if i % 2 else p for i, p in enumerate(bold))


def _html_cell(cell: Cell, numeric: bool) -> str:
    """A table cell in HTML, with its sort key and link."""
    text = html.escape(cell.text)
    if cell.href is not None:
        text = f'<a href="{html.escape(cell.href)}">{text}</a>'
    cls = ' class="num"' if numeric else ""
    return f'<td{cls} data-sort="{html.escape(cell.sort)}">{text}</td>'


def render_html(
    submissions: list[dict[str, Any]],
    source: str,
    differences: dict[Setting, list[Difference]] | None = None,
    plots: dict[Setting, str] | None = None,
) -> str:
    """``index.html``: the same tables as the Markdown, sortable by a few lines of inline script, with each
    setting's Pareto plot beside its file; no network."""
    groups = grouped(submissions)
    differences = differences or {}
    plots = plots or {}
    body = [
        "<h1>toxbench leaderboard</h1>",
        f"<p>{len(submissions)} submission{'s' if len(submissions) != 1 else ''} from "
        f"<code>{html.escape(source)}</code>, ranked by aligned toxicity (lowest first) within each evaluation "
        "setting, in bands: rows that no 95% interval separates share a rank. Click a column header to sort.</p>",
    ]
    note = _comparability_note(len(groups))
    if note:
        body.append(f'<p class="note">{_code_to_html(note)}</p>')
    if not groups:
        body.append("<p>No submissions yet.</p>")
    text_columns = {"submission", "method", "scorer", "protocol"}
    for key, group in groups.items():
        body.append(f"<h2>{_code_to_html(_heading(key))}</h2>")
        body += [f'<p class="note">{_code_to_html(n)}</p>' for n in dataset_notes(group)]
        header = "".join(f"<th>{html.escape(name)}</th>" for name in ["#", *(n for n, _ in COLUMNS)])
        rows = [
            f'<tr><td class="num" data-sort="{rank}">{rank}</td>'
            + "".join(_html_cell(cell(s), name not in text_columns) for name, cell in COLUMNS)
            + "</tr>"
            for rank, s in rank_bands(group, differences.get(key, []))
        ]
        body.append(
            f'<table class="board"><thead><tr>{header}</tr></thead><tbody>\n'
            + "\n".join(rows)
            + "\n</tbody></table>"
        )
        if key in plots:
            body.append(
                f'<p><img class="pareto" src="{html.escape(plots[key])}" '
                'alt="Aligned toxicity against perplexity change"></p>'
            )
    body.append(f"<p>{html.escape(LEGEND)}</p>")
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<!-- generated by `toxbench leaderboard render {html.escape(source)}`; do not edit by hand -->\n"
        "<title>toxbench leaderboard</title>\n"
        f"<style>{_STYLE}</style>\n</head>\n<body>\n"
        + "\n".join(body)
        + f"\n<script>{_SCRIPT}</script>\n</body>\n</html>\n"
    )


def pareto_plot(group: list[dict[str, Any]], path: Path) -> Path | None:
    """Aligned toxicity (with its 95% interval) against perplexity change, one point per row, the rows
    no other row beats on both marked as the Pareto front, and the perplexity bound drawn. None when
    fewer than two rows have both numbers."""
    points = [
        (s["summary"]["perplexity_change"], s["summary"]["aligned_toxicity"], s["name"])
        for s in group
        if s["summary"].get("perplexity_change") is not None
    ]
    if len(points) < 2:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import PercentFormatter

    def beaten(x: float, y: float) -> bool:
        return any((px <= x and t["value"] <= y) and (px < x or t["value"] < y) for px, t, _ in points)

    fig, ax = plt.subplots(figsize=(7, 4.2))
    front = sorted((x, t["value"]) for x, t, _ in points if not beaten(x, t["value"]))
    ax.step(
        [x for x, _ in front], [y for _, y in front], where="post", color="#48c", lw=1, label="Pareto front"
    )
    for x, t, _ in points:
        past = x > PERPLEXITY_BOUND
        low, high = t.get("ci_low"), t.get("ci_high")
        yerr = None if low is None or high is None else [[t["value"] - low], [high - t["value"]]]
        ax.errorbar(
            [x],
            [t["value"]],
            yerr=yerr,
            fmt="x" if past else "o",
            color="#c55" if past else "#333",
            capsize=3,
        )
    labels: dict[tuple[float, float], list[str]] = {}  # rows at one point share one label
    for x, t, name in points:
        labels.setdefault((round(x, 4), round(t["value"], 4)), []).append(name)
    for (x, y), names in labels.items():
        ax.annotate(", ".join(names), (x, y), textcoords="offset points", xytext=(5, 4), fontsize=7)
    ax.axvline(
        PERPLEXITY_BOUND, color="#c55", ls=":", lw=1, label=f"perplexity bound (+{PERPLEXITY_BOUND:.0%})"
    )
    ax.xaxis.set_major_formatter(PercentFormatter(1.0))
    ax.set_xlabel("perplexity change vs the base model")
    ax.set_ylabel("aligned toxicity (95% CI)")
    ax.set_title("Less toxic for how much fluency? (lower left is better)")
    ax.legend(fontsize=7, loc="upper right")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def write_pages(
    submissions: list[dict[str, Any]], source: str, out_dir: Path, directory: Path | None = None
) -> list[Path]:
    """Write ``leaderboard.md``, ``index.html``, ``differences.json`` (the paired differences
    between rows, from the samples files in ``directory``) and a Pareto plot per setting
    (``pareto-N.png``) into ``out_dir``, each atomically."""
    import json
    from dataclasses import asdict

    groups = grouped(submissions)
    differences = (
        {key: paired_differences(group, directory) for key, group in groups.items()} if directory else {}
    )
    plots: dict[Setting, str] = {}
    written: list[Path] = []
    for number, (key, group) in enumerate(groups.items(), 1):
        name = f"pareto-{number}.png"
        tmp = out_dir / f".{name}.tmp.png"
        if pareto_plot(group, tmp) is not None:
            tmp.replace(out_dir / name)
            plots[key] = name
            written.append(out_dir / name)
    table = [
        {**asdict(d), "separated": d.separated, "setting": list(key)}
        for key, found in differences.items()
        for d in found
    ]
    pages = {
        "leaderboard.md": render_markdown(submissions, source, differences, plots),
        "index.html": render_html(submissions, source, differences, plots),
        "differences.json": json.dumps(table, indent=1) + "\n",
    }
    for name, text in pages.items():
        atomic_write_text(out_dir / name, text)
    return [*(out_dir / name for name in pages), *written]
