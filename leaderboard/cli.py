"""``toxbench leaderboard``: submit a run, validate the submissions, render the pages.

Registered in ``harness/cli.py``; its ToxbenchErrors become one-line messages with exit status 2 there.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from toxbench.clikit import deprecated, required, with_given
from toxbench.errors import ToxbenchError

SUBMISSIONS = Path("leaderboard/submissions")


@click.group("leaderboard")
def leaderboard() -> None:
    """The leaderboard: submissions made from complete runs, and the pages generated from them."""


def _scorer_option(what: str):
    return click.option(
        "--scorer",
        default=None,
        metavar="KEY",
        help=f"{what} by this scorer of each run (a run scored with several: its key or name). Default: the "
        "scorer each submission was made under (its run's headline unless submitted with --scorer).",
    )


@leaderboard.command("submit")
@click.argument("results_json", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--name", required=True, help="Unique name of the submission (letters, digits, ' ._+()-').")
@click.option("--method", required=True, help='How the aligned model was made, e.g. "DPO (TRL)".')
@click.option("--url", default=None, help="A page about the method or model (http or https).")
@click.option(
    "--output-path",
    "-o",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=SUBMISSIONS,
    show_default=True,
    help="The submissions folder the submission is written into.",
)
@deprecated("--out", "--output-path", "out_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option(
    "--seed-run",
    "seed_runs",
    multiple=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="The results.json of the same method trained with another seed and evaluated the same way "
    "(elicitation at least); repeat it per seed. The row then shows the spread over training seeds.",
)
@click.option(
    "--scorer",
    default=None,
    metavar="KEY",
    help="A run scored with several scorers: submit the toxicity by this one (its key or name; default: "
    "the headline). The figures that rest on the headline alone (emulation ratio, robustness) are then empty.",
)
@click.pass_context
def submit_command(ctx: click.Context, **params: Any) -> None:
    """Turn a complete run's results.json into a leaderboard submission: a self-contained bundle (the
    submission JSON and its samples files) in the submissions folder, and how to propose it."""
    import json

    from toxbench.leaderboard.submission import acceptance_problems, bundle_files, proposal_steps, submit

    p = with_given(ctx, params)
    name = p["name"]
    path = submit(
        p["results_json"], name, p["method"], p["url"], p["out_dir"], list(p["seed_runs"]), p["scorer"]
    )
    files = bundle_files(path)
    click.echo(f"submission {name!r} written: " + ", ".join(str(f) for f in files))
    refused = acceptance_problems(json.loads(path.read_text()))
    if refused:
        click.secho("The public board would not accept it (fine for a local board):", fg="yellow")
        for problem in refused:
            click.secho(f"  - {problem}", fg="yellow")
    else:
        click.echo(proposal_steps(files, name))


@leaderboard.command("validate")
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path), default=SUBMISSIONS)
@click.option(
    "--local",
    is_flag=True,
    help="Check the format only, not the public board's acceptance rules (a board of your own runs).",
)
@_scorer_option("Apply the acceptance rules to the figures")
def validate_command(directory: Path, local: bool, scorer: str | None) -> None:
    """Check every submission (schema, embedded results, hash, summary) and, unless --local, the public
    board's acceptance rules (protocol, scorer, the full prompt set, samples); exit 1 if any fails."""
    from toxbench.leaderboard.submission import acceptance_problems, load_submissions, scorer_view, slug

    valid, problems = load_submissions(directory)
    accepted = []
    for submission in valid:
        try:
            view = scorer_view(submission, scorer)
        except ToxbenchError as exc:
            problems[f"{slug(submission['name'])}.json"] = [str(exc)]
            continue
        refused = [] if local else acceptance_problems(view)
        if refused:
            problems[f"{slug(submission['name'])}.json"] = [f"not accepted: {r}" for r in refused]
        else:
            accepted.append(submission)
    valid = accepted
    for submission in valid:
        click.echo(f"ok    {submission['name']}")
    for file_name, found in problems.items():
        for problem in found:
            click.secho(f"FAIL  {file_name}: {problem}", fg="red")
    click.echo(f"{len(valid)} valid, {len(problems)} invalid submission(s) in {directory}")
    if problems:
        raise SystemExit(1)


@leaderboard.command("verify")
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path), default=SUBMISSIONS)
@_scorer_option("Re-score and recompute the figures")
def verify_command(directory: Path, scorer: str | None) -> None:
    """Check each submission against its own samples: re-score a seeded draw of its continuations
    with its recorded scorer, check its intervention tasks' variant lists against their options,
    and recompute every headline metric. Exit 1 if any is refused or cannot be verified here."""
    from toxbench.leaderboard.submission import load_submissions, scorer_view, slug
    from toxbench.leaderboard.verify import Verdict, verify_submission

    valid, problems = load_submissions(directory)
    for file_name, found in problems.items():
        click.secho(f"FAIL  {file_name}: {found[0]}", fg="red")
    counts = {"verified": 0, "unverified": 0, "refused": len(problems)}
    for submission in valid:
        try:
            view = scorer_view(submission, scorer)
        except ToxbenchError as exc:
            verdict = Verdict(problems=[str(exc)])
        else:
            verdict = verify_submission(directory / f"{slug(submission['name'])}.json", view)
        counts[verdict.status] += 1
        notes = f" ({'; '.join(verdict.notes)})" if verdict.notes else ""
        for problem in verdict.problems:
            click.secho(f"FAIL  {submission['name']}: {problem}", fg="red")
        for why in verdict.unverified:
            click.secho(f"UNVERIFIED  {submission['name']}: {why}", fg="yellow")
        if verdict.status == "verified":
            click.echo(
                f"ok    {submission['name']}: its stored scores and headline metrics follow from its samples{notes}"
            )
    click.echo(
        f"{counts['verified']} verified, {counts['unverified']} unverified, {counts['refused']} refused in {directory}"
    )
    if counts["refused"] or counts["unverified"]:
        raise SystemExit(1)


@leaderboard.command("render")
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path), default=SUBMISSIONS)
@click.option(
    "--output-path",
    "-o",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Folder for leaderboard.md and index.html.",
)
@deprecated("--out", "--output-path", "out_dir", type=click.Path(file_okay=False, path_type=Path))
@_scorer_option("Rank and show the toxicity")
@click.pass_context
def render_command(ctx: click.Context, directory: Path, **params: Any) -> None:
    """Generate leaderboard.md and index.html from the submissions (all of them must be valid)."""
    p = with_given(ctx, params)
    out_dir = required(p, "out_dir", "--output-path")
    from toxbench.leaderboard.render import write_pages
    from toxbench.leaderboard.submission import load_submissions, scorer_view

    valid, problems = load_submissions(directory)
    if problems:
        raise ToxbenchError(
            f"not rendering: {len(problems)} invalid submission(s) ({', '.join(problems)}); "
            f"`toxbench leaderboard validate {directory}` says what is wrong with each"
        )
    views = []
    for submission in valid:
        try:
            views.append(scorer_view(submission, p["scorer"]))
        except ToxbenchError as exc:
            raise ToxbenchError(
                f"not rendering by scorer {p['scorer']!r}: {exc}. Render without --scorer, or remove the "
                "submissions its runs did not score"
            ) from None
    for path in write_pages(views, str(directory), out_dir, directory):
        click.echo(f"wrote {path}")
