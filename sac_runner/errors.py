"""The exceptions that end a run or a command with one line for the user, and `fail`, which prints that line.

Each exception's str() is a single line naming the problem and the fix. The entry points turn them into
"<prog>: error: <message>" and an exit status: 2 for bad input (ConfigError, CheckpointError, SearchError),
1 for a run that cannot go on (TrainingError).
"""

from __future__ import annotations

import sys
from typing import NoReturn


class ConfigError(Exception):
    """A user-facing configuration problem; str() is a single line."""


class CheckpointError(Exception):
    """A checkpoint that cannot be read or does not fit; the message is one line for the user."""


class TrainingError(Exception):
    """Training cannot go on (a non-finite value, a failed write); str() is one line for the user."""


class SearchError(Exception):
    """A bad search setting of hparams_search=optuna; sac-train prints it as one line and exits with status 2."""


class TrialFailed(RuntimeError):
    """Raised by a job of an Optuna search that failed or diverged, so the sweeper records its trial as FAIL."""


class TrialPruned(RuntimeError):
    """Raised by a job whose trial the search's pruner stopped: the sweeper records the trial as PRUNED.
    `record` says where and why."""

    def __init__(self, message: str, record: dict | None = None) -> None:
        super().__init__(message, record or {})
        self.message, self.record = message, record or {}

    def __str__(self) -> str:
        return self.message


def print_error(message: str, prog: str = "sac-train") -> None:
    """Print "<prog>: error: <message>" on stderr."""
    print(f"{prog}: error: {message}", file=sys.stderr, flush=True)


def fail(message: str, code: int = 2, prog: str = "sac-train") -> NoReturn:
    """Print "<prog>: error: <message>" on stderr and exit with `code`, without a traceback (also from inside
    Hydra, which would print one for an exception but lets SystemExit pass)."""
    print_error(message, prog)
    sys.exit(code)
