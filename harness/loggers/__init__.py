"""Experiment trackers a finished run is sent to (``--log-to wandb|mlflow``).

Loggers are a registry (``toxbench.registry.LOGGERS``, ``register_logger``, the entry-point group
``toxbench.loggers``): each is a ``toxbench.loggers.base.Logger`` subclass taking its options as
keyword arguments. ``check_loggers`` refuses unknown names and options before a run starts, without
importing the trackers' libraries; ``log_run`` sends a run's output folder to each logger once the
run has written it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from toxbench.errors import ToxbenchError
from toxbench.loggers.base import LoggedRun, Logger

__all__ = ["LoggedRun", "Logger", "check_loggers", "log_run"]


def _unique(names: list[str]) -> list[str]:
    return list(dict.fromkeys(names))


def check_loggers(names: list[str], options: dict[str, dict[str, Any]]) -> None:
    """Refuse, before any model loads: an unknown logger (with the closest names), options for a
    logger not in ``names``, options a logger does not take, and a logger whose library is missing."""
    from toxbench.registry import LOGGERS, check_options

    names = _unique(list(names))
    for name in names:
        LOGGERS.check(name)
    for name in options:
        if name not in names:
            known = "" if name in LOGGERS else f" (and {name!r} is not a known logger either)"
            raise ToxbenchError(
                f"options are given for the logger {name!r}, which this run does not log to: add "
                f"`--log-to {name}`, or drop its options{known}"
            )
    for name in names:
        target = LOGGERS.get(name)
        given = options.get(name) or {}
        if not isinstance(given, dict):
            raise ToxbenchError(
                f"the options of logger {name!r} must be a mapping of KEY=VALUE, not {type(given).__name__}"
            )
        check_options(target, given, f"logger {name!r}")
        available = getattr(target, "check_available", None)
        if callable(available):
            available()


def log_run(names: list[str], options: dict[str, dict[str, Any]], output_dir: Path) -> dict[str, str]:
    """Send the run in ``output_dir`` to each logger in ``names``; return {name: where it went}.

    Every logger is tried even if one fails; the failures are then raised together (the run's
    files are untouched whatever happens here).
    """
    from toxbench.registry import LOGGERS

    names = _unique(list(names))
    check_loggers(names, options)
    run = LoggedRun.from_output(output_dir)
    logged: dict[str, str] = {}
    failed: list[str] = []
    for name in names:
        try:
            logger = LOGGERS.get(name)(**(options.get(name) or {}))
            logged[name] = str(logger.log(run))
        except Exception as exc:  # a tracker can fail in any way (network, auth, quota)
            reason = str(exc) if isinstance(exc, ToxbenchError) else f"{type(exc).__name__}: {exc}"
            failed.append(f"{name}: {reason}")
    if failed:
        done = "; ".join(f"{n} -> {w}" for n, w in logged.items())
        raise ToxbenchError(
            f"logging the run in {str(run.output_dir)!r} failed for {'; '.join(failed)}"
            + (f" (logged: {done})" if done else "")
            + "; the run's own files are untouched"
        )
    return logged
