"""The command line's one grammar, shared by every command (``toxbench.cli``, the leaderboard's).

- Each setting has one flag. Its old spellings stay as hidden aliases (``deprecated``) that still
  work and print what to use instead; an alias and its flag given together are an error.
- Options that pass ``KEY=VALUE`` arguments to a component are ``--X-args`` (``--model-args``,
  ``--method-args`` ...; ``--gen-kwargs`` as lm-eval spells it), repeatable or comma-separated, and
  parsed alike (``toxbench.options.parse_pairs``).
- Outputs are ``--output-path`` (``-o``), and replacing them is ``--overwrite``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

# dest of an alias -> (old flag, new flag, the option it sets, how its value carries over)
ALIASES: dict[str, tuple[str, str, str, Callable[[Any], Any] | None]] = {}


def deprecated(
    old: str, new: str, target: str, carry: Callable[[Any], Any] | None = None, **kwargs: Any
) -> Callable[[Callable], Callable]:
    """A hidden ``old`` flag that sets ``target`` as ``new`` does, and says it is deprecated."""
    dest = "deprecated_" + old.lstrip("-").replace("-", "_")
    ALIASES[dest] = (old, new, target, carry)
    if kwargs.get("multiple"):
        kwargs.setdefault("default", ())
    return click.option(old, dest, hidden=True, **kwargs)


def warn(message: str) -> None:
    click.secho(f"warning: {message}", fg="yellow", err=True)


def given_options(ctx: click.Context, params: dict[str, Any]) -> dict[str, Any]:
    """The options given on the command line (not the flags' defaults), old spellings carried over
    to the new ones with a warning; ``params`` loses the aliases."""
    from click.core import ParameterSource

    given = {
        name: value
        for name, value in params.items()
        if not name.startswith("deprecated_")
        and ctx.get_parameter_source(name) in (ParameterSource.COMMANDLINE, ParameterSource.ENVIRONMENT)
    }
    for name in [n for n in params if n.startswith("deprecated_")]:
        value = params.pop(name)
        if ctx.get_parameter_source(name) is not ParameterSource.COMMANDLINE:
            continue
        old, new, target, carry = ALIASES[name]
        warn(f"{old} is deprecated and will be removed: use {new}")
        value = carry(value) if carry else value
        if target not in given:
            given[target] = value
        elif isinstance(given[target], tuple) and isinstance(value, tuple):
            given[target] = value + given[target]  # the new flag's pairs come last and win
        else:
            raise click.UsageError(f"{old} and {new} set the same thing: give {new} only")
    return given


def with_given(ctx: click.Context, params: dict[str, Any]) -> dict[str, Any]:
    """``params`` with the aliases folded into the options they set."""
    given = given_options(ctx, params)
    return {**params, **given}


def required(p: dict[str, Any], name: str, flag: str | None = None) -> Path:
    """A path option that must be given (by its flag or an old spelling of it)."""
    if p.get(name) is None:
        raise click.UsageError(f"Missing option '{flag or '--' + name.replace('_', '-')}'.")
    return Path(p[name])


def pair_option(flag: str, metavar: str, help: str) -> Callable[[Callable], Callable]:
    dest = flag.lstrip("-").replace("-", "_")
    return click.option(
        flag, dest, multiple=True, metavar=metavar, help=help + " Repeatable, or comma-separated."
    )
