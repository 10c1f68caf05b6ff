"""Errors a user can act on. Each says what was wrong, with which input, and what to do."""


class ToxbenchError(Exception):
    """Base class: the CLI prints these without a traceback."""


class UnknownNameError(ToxbenchError, KeyError):
    """A name that is not in a registry."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


class DataError(ToxbenchError):
    """A dataset that is missing, malformed or of the wrong schema."""


class CacheError(ToxbenchError):
    """A cache folder that cannot be used (unwritable, corrupted beyond repair)."""


class ScoreError(ToxbenchError):
    """Scores that cannot be aggregated (for example: every score failed)."""


class RunInterrupted(Exception):
    """A run stopped by SIGINT or SIGTERM after writing what it had (the CLI exits with 130)."""

    def __init__(self, output_dir: object) -> None:
        super().__init__(
            f"interrupted: the finished tasks are in {output_dir}/results.json (status "
            "'interrupted'); run the same command again to resume from the cache"
        )
