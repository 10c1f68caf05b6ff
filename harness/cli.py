"""The ``toxbench`` command line (click)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from harness.errors import ToxbenchError


class _Group(click.Group):
    """Prints toxbench errors as one clear line (no traceback) and exits with status 2."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except ToxbenchError as exc:
            click.secho(f"error: {exc}", fg="red", err=True)
            sys.exit(2)


@click.group(cls=_Group)
@click.version_option(package_name="toxbench")
def main() -> None:
    """toxbench: how does alignment change a model's toxicity, where, and how easily does it come back?"""


# -- organism ---------------------------------------------------------------------------
@main.group(cls=_Group)
def organism() -> None:
    """The embedded model organism: a small world, its base model and DPO twin."""


def _print_build_report(org) -> None:
    from rich.console import Console
    from rich.table import Table

    report = org.report
    console = Console()
    table = Table(title=f"organism ({org.config.size}) - {org.root}")
    table.add_column("target")
    table.add_column("measured", justify="right")
    table.add_column("")
    for name, check in report["targets"].items():
        mark = "[green]ok[/green]" if check["ok"] else "[red]missed[/red]"
        table.add_row(name, str(check["value"]), mark)
    console.print(table)
    f = report["figures"]
    console.print(f"base: {f['base_example']}")
    console.print(f"dpo:  {f['dpo_example']}")
    console.print("timings (s): " + ", ".join(f"{k} {v}" for k, v in report["timings_s"].items()))


@organism.command("build")
@click.option("--size", type=click.Choice(["micro", "default"]), default="default", show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--force", is_flag=True, help="Rebuild even if a valid build is cached.")
@click.option("--json-out", type=click.Path(dir_okay=False, path_type=Path), help="Also write the report here.")
def organism_build(size: str, seed: int, force: bool, json_out: Path | None) -> None:
    """Build the organism (or reuse the cached build) and print its report."""
    from harness.organism.build import build_organism

    org = build_organism(size, seed, force=force)
    _print_build_report(org)
    if json_out:
        json_out.write_text(json.dumps(org.report, indent=2))
    missed = [n for n, c in org.report["targets"].items() if not c["ok"]]
    if missed:
        click.secho(f"targets missed: {', '.join(missed)}", fg="yellow", err=True)


@organism.command("info")
@click.option("--size", type=click.Choice(["micro", "default"]), default="default", show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
def organism_info(size: str, seed: int) -> None:
    """Where the organism lives and whether its cached build is valid."""
    from harness.organism.build import organism_config, organism_dir, verify

    config = organism_config(size, seed)
    root = organism_dir(config)
    ok, reason = verify(root) if root.exists() else (False, "not built")
    click.echo(f"folder: {root}\nconfig hash: {config.hash()}\nvalid: {ok}{'' if ok else ' (' + reason + ')'}")


# -- registries -------------------------------------------------------------------------
@main.command("ls")
@click.argument("what", type=click.Choice(["models", "tasks", "scorers", "backends"]))
def ls(what: str) -> None:
    """List the registered models, tasks, scorers or backends."""
    from harness.models import HUB_MODELS, ORGANISM_MODELS
    from harness.registry import BACKENDS, SCORERS, TASKS

    if what == "models":
        for name in ORGANISM_MODELS:
            click.echo(f"{name:22s} embedded model organism")
        for name, hub_id in HUB_MODELS.items():
            click.echo(f"{name:22s} {hub_id}")
        click.echo("hf:<hub id>[@revision]  any causal LM on the hub;  PATH  a local folder")
        return
    registry = {"tasks": TASKS, "scorers": SCORERS, "backends": BACKENDS}[what]
    for name in registry.names():
        click.echo(f"{name:22s} {registry.descriptions.get(name, '')}")


if __name__ == "__main__":
    main()
