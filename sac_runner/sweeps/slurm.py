"""A SLURM sweep's terminal: submitit's "Bypassing sacct error" warning, said once in our words.

While a sweep waits for its SLURM jobs, submitit asks `sacct` for their states, at 2, 4, 8, 16 s ... and then
every minute or more. Where sacct fails, each call prints sacct's own complaint, and submitit logs "Call #<n> -
Bypassing sacct error ..., status may be inaccurate." to its logger, whose own handlers print it to stdout and to
stderr and Hydra's root handler once more: three copies per call, dozens per long job. The error is not harmless,
though: without sacct, submitit learns that a job ended only from the result file the job writes, so a job killed
before it writes one (scancel -9, out of memory, a lost node) leaves the sweep waiting. So, at a sweep's start
(sweeps/multirun.py's SweepCallback calls before_sweep):
- on a cluster that keeps no job accounting (sacct: "Slurm accounting storage is disabled", as on
  scripts/slurm_cluster.sh's), sacct can never answer: one line says so and what it means, and submitit's
  watcher stops asking it;
- everywhere, a filter on submitit's logger turns its sacct warnings into one line per kind of error (the job
  ids aside); every other submitit message passes unchanged.
"""

from __future__ import annotations

import logging
import re
import subprocess
import sys
from typing import Any

SUBMITIT_LOGGER = "submitit"  # submitit.core.logger.get_logger()
SACCT_ERROR = "Bypassing sacct error"  # in submitit.core.core.InfoWatcher.update's warning
_TAIL = ", status may be inaccurate."
NO_ACCOUNTING = "accounting storage is disabled"  # sacct's answer where slurm.conf has accounting_storage/none
CONSEQUENCE = (
    "the sweep learns that a job ended only from the result file the job writes, so one killed before that "
    "(scancel -9, out of memory, a lost node) leaves the sweep waiting: watch the jobs with squeue"
)


class SacctErrorOnce(logging.Filter):
    """A filter for submitit's logger: drops its "Bypassing sacct error" warnings, and prints one line to stderr
    for the first of each kind (the job ids in sacct's command line aside)."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a record that cannot be formatted is not ours to judge
            return True
        if SACCT_ERROR not in message:
            return True
        error = message.split(SACCT_ERROR, 1)[1].strip()
        error = error[: -len(_TAIL)] if error.endswith(_TAIL) else error
        kind = re.sub(r"'-j', '[0-9_]+'", "'-j', <job>", error)
        if kind not in self.seen:
            self.seen.add(kind)
            print(
                f"sac-train: sacct failed ({error}), so submitit cannot ask SLURM for the jobs' states; "
                f"{CONSEQUENCE}. Later sacct errors like this one are not shown.",
                file=sys.stderr,
                flush=True,
            )
        return False


def report_sacct_errors_once() -> SacctErrorOnce:
    """Install SacctErrorOnce on submitit's logger (once per process; submitit need not be imported yet: its
    logging set-up keeps a logger's filters). Returns the filter."""
    logger = logging.getLogger(SUBMITIT_LOGGER)
    for f in logger.filters:
        if isinstance(f, SacctErrorOnce):
            return f
    f = SacctErrorOnce()
    logger.addFilter(f)
    return f


def no_accounting() -> str | None:
    """sacct's own words where this cluster keeps no job accounting (sacct can never answer), else None (sacct
    works, fails otherwise, or is not there: the filter reports those)."""
    try:
        proc = subprocess.run(
            ["sacct", "--noheader", "--parsable2", "-o", "JobID", "-j", "1"],
            capture_output=True,
            text=True,
            timeout=30,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    text = (proc.stderr or proc.stdout or "").strip()
    if proc.returncode != 0 and NO_ACCOUNTING in text.lower():
        return text.splitlines()[0]
    return None


def stop_polling_sacct() -> bool:
    """Make submitit's SLURM watcher ask sacct nothing, by its own "no job to ask about" answer (a command of
    None). Its jobs' ends then come from their result files only, as they do when sacct fails. False where this
    submitit has no such hook (the filter still keeps its warnings to one line)."""
    try:
        from submitit.slurm.slurm import SlurmJob

        watcher = SlurmJob.watcher
        if not callable(getattr(watcher, "_make_command", None)):
            return False
    except (ImportError, AttributeError):
        return False
    setattr(watcher, "_make_command", lambda: None)  # noqa: B010 - an instance's method, replaced on purpose
    return True


def uses_slurm(hc: Any) -> bool:
    """Whether a config's hydra node submits to SLURM: hydra/launcher=slurm or population_slurm."""
    launcher = hc.launcher
    return "slurm" in str(launcher.get("_target_", "")).lower() or str(launcher.get("backend", "")) == "slurm"


def before_sweep(hc: Any) -> None:
    """At a sweep's start (its hydra node `hc`): the filter always; on SLURM without job accounting, one line
    and no more sacct calls."""
    report_sacct_errors_once()
    if not uses_slurm(hc):
        return
    reason = no_accounting()
    if reason is not None and stop_polling_sacct():
        print(
            f"sac-train: this SLURM cluster keeps no job accounting (sacct: {reason}): {CONSEQUENCE}.",
            file=sys.stderr,
            flush=True,
        )
