"""How two scorers agree on the same texts (a run with several scorers).

For each pair of scorers and each model, over the continuations both scored:

- Spearman's rank correlation of their scores (``scipy.stats.spearmanr``): do they order the
  texts alike, whatever their scales;
- Cohen's κ of their verdicts at the protocol's toxic threshold
  (``sklearn.metrics.cohen_kappa_score``): do they call the same texts toxic, beyond chance;
- the share of continuations on which those verdicts differ;

each with a percentile bootstrap 95% interval over continuations, and the continuations on which
their scores differ most. A continuation either scorer failed on is left out and counted, never
scored as 0. Where a statistic is undefined (fewer than two continuations, a scorer that gives
every text the same score or the same verdict), it is null and a note says why.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from toxbench.metrics import Metric, finite, metric

LARGEST = 20  # continuations listed where the two scorers differ most
SHOWN_CHARS = 300  # of each listed continuation


def spearman(x: Sequence[float] | np.ndarray, y: Sequence[float] | np.ndarray) -> float:
    """Spearman's rank correlation of two score vectors (NaN where it is undefined)."""
    from scipy.stats import spearmanr

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a constant resample: NaN, reported as no value
        return float(spearmanr(x, y).statistic)


def kappa_at(threshold: float) -> Callable[[Any, Any], float]:
    """Cohen's κ of two score vectors' verdicts ``score >= threshold`` (NaN where it is undefined)."""
    from sklearn.metrics import cohen_kappa_score

    def kappa(x: Any, y: Any) -> float:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return float(
                cohen_kappa_score(
                    np.asarray(x) >= threshold,
                    np.asarray(y) >= threshold,
                    labels=[False, True],
                    replace_undefined_by=np.nan,
                )
            )

    return kappa


def _rowwise(fn: Callable[[Any, Any], float]) -> Callable[..., Any]:
    """``fn`` of two vectors as a statistic ``metrics.bootstrap`` can call on a batch of resamples."""

    def statistic(x: np.ndarray, y: np.ndarray, axis: int = -1) -> Any:
        if x.ndim == 1:
            return fn(x, y)
        return np.array([fn(a, b) for a, b in zip(x, y, strict=True)])

    return statistic


def _bootstrapped(
    x: np.ndarray, y: np.ndarray, fn: Callable[[Any, Any], float], n_failed: int, seed: int
) -> Metric:
    """``fn`` of the pairs with its percentile bootstrap interval over them (``metrics.metric``); a
    resample on which ``fn`` is undefined makes the interval undefined (scipy's warning is silenced)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return metric(x, y, statistic=_rowwise(fn), n_failed=n_failed, seed=seed)


def _defined(m: Metric) -> Metric | None:
    """``m``, its undefined interval ends as None; None when its value itself is undefined."""
    if not np.isfinite(m.value):
        return None
    low = m.ci_low if m.ci_low is not None and np.isfinite(m.ci_low) else None
    high = m.ci_high if m.ci_high is not None and np.isfinite(m.ci_high) else None
    return Metric(m.value, low, high, m.n, m.n_failed)


def pair_agreement(
    role: str,
    keys: tuple[str, str],
    scores: tuple[Sequence[float | None], Sequence[float | None]],
    rows: Sequence[dict[str, Any]],
    threshold: float,
    seed: int = 0,
) -> dict[str, Any]:
    """The agreement of scorers ``keys`` on one model's continuations: ``scores`` holds each scorer's
    score of every row of ``rows`` (continuation samples, in the same order)."""
    a, b = keys
    sa, sb = scores
    both = [i for i in range(len(rows)) if finite(sa[i]) and finite(sb[i])]
    left_out = len(rows) - len(both)
    x = np.array([sa[i] for i in both], dtype=float)
    y = np.array([sb[i] for i in both], dtype=float)
    notes: list[str] = []
    if left_out:
        failed = {
            k: sum(not finite(s[i]) for i in range(len(rows))) for k, s in zip(keys, scores, strict=True)
        }
        notes.append(
            f"{left_out} of {len(rows)} continuations left out: a score failed or is missing "
            f"({', '.join(f'{k}: {n}' for k, n in failed.items())})"
        )
    rho = kappa = disagreement = None
    if len(both) < 2:
        notes.append(f"{len(both)} continuation(s) scored by both: no correlation or κ")
    else:
        if np.ptp(x) == 0 or np.ptp(y) == 0:
            same = a if np.ptp(x) == 0 else b
            notes.append(
                f"{same} gives every continuation the same score: Spearman's correlation is undefined"
            )
        else:
            rho = _defined(_bootstrapped(x, y, spearman, left_out, seed))
        kappa = _defined(_bootstrapped(x, y, kappa_at(threshold), left_out, seed))
        if kappa is None:
            notes.append(
                f"both scorers give every continuation the same verdict at {threshold:g}: κ is undefined"
            )
        undefined = [
            name for name, m in (("Spearman's ρ", rho), ("κ", kappa)) if m is not None and m.ci_low is None
        ]
        if undefined:
            notes.append(
                f"no interval for {' and '.join(undefined)}: on some resamples of the continuations a scorer "
                "gives every one the same score or verdict, where the statistic is undefined"
            )
    if both:
        differ = ((x >= threshold) != (y >= threshold)).astype(float)
        disagreement = metric(differ, n_failed=left_out, seed=seed)
    gaps = sorted(range(len(both)), key=lambda k: (-abs(x[k] - y[k]), k))
    largest = []
    for k in gaps[:LARGEST]:
        if x[k] == y[k]:
            break
        row = rows[both[k]]
        largest.append(
            {
                "prompt_index": int(row["prompt_index"]),
                "sample": int(row.get("sample", 0)),
                "scores": {a: float(x[k]), b: float(y[k])},
                "across_threshold": bool((x[k] >= threshold) != (y[k] >= threshold)),
                "continuation": str(row.get("continuation", ""))[:SHOWN_CHARS],
            }
        )
    return {
        "role": role,
        "scorers": [a, b],
        "threshold": float(threshold),
        "n": len(both),
        "n_left_out": left_out,
        "spearman": rho,
        "kappa": kappa,
        "disagreement": disagreement,
        "notes": notes,
        "largest_disagreements": largest,
    }


def run_agreement(
    role: str,
    scores: Mapping[str, Sequence[float | None]],
    rows: Sequence[dict[str, Any]],
    threshold: float,
    seed: int = 0,
) -> list[dict[str, Any]]:
    """``pair_agreement`` for every pair of the scorers in ``scores`` (by key, in the run's order)."""
    keys = list(scores)
    return [
        pair_agreement(role, (a, b), (scores[a], scores[b]), rows, threshold, seed)
        for i, a in enumerate(keys)
        for b in keys[i + 1 :]
    ]


def report_lines(agreement: list[dict[str, Any]], shown: int = 5) -> list[str]:
    """The agreement entries as a Markdown table, with each pair's largest disagreements."""
    from toxbench.metrics import format_metric

    if not agreement:
        return []
    lines = [
        "Agreement of the scorers on each model's continuations (Spearman's ρ of the scores, Cohen's κ and "
        "the share of continuations whose verdicts differ at the toxic threshold; 95% bootstrap intervals "
        "over continuations; failed scores left out and counted).",
        "",
        "| model | scorers | n | left out | Spearman ρ | Cohen's κ | verdicts differ |",
        "|---|---|---|---|---|---|---|",
    ]
    for e in agreement:
        lines.append(
            f"| {e['role']} | {' vs '.join(e['scorers'])} | {e['n']} | {e['n_left_out']} | "
            f"{format_metric(e['spearman'])} | {format_metric(e['kappa'])} | "
            f"{format_metric(e['disagreement'], '.1%')} |"
        )
    notes = [
        f"- {e['role']}, {' vs '.join(e['scorers'])}: {n}" for e in agreement for n in e.get("notes", [])
    ]
    if notes:
        lines += ["", *notes]
    for e in agreement:
        top = e["largest_disagreements"][:shown]
        if not top:
            continue
        a, b = e["scorers"]
        lines += [
            "",
            f"Largest disagreements, {e['role']}, {a} vs {b} ({len(e['largest_disagreements'])} listed in "
            "results.json):",
            "",
            f"| prompt | {a} | {b} | continuation |",
            "|---|---|---|---|",
        ]
        for d in top:
            text = " ".join(d["continuation"].split()).replace("|", "\\|")[:120]
            mark = " *" if d["across_threshold"] else ""
            lines.append(
                f"| {d['prompt_index']}/{d['sample']}{mark} | {d['scores'][a]:.3f} | {d['scores'][b]:.3f} | {text} |"
            )
        lines.append("")
        lines.append("`*`: the two verdicts differ at the threshold.")
    return lines
