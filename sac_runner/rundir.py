"""The run directory's layout and checks, without torch (sac-report reads run directories too).

A run directory holds `config.yaml` (the resolved config) and `checkpoints/`. A multirun job
directory (`outputs/multirun/<date>/<time>/<n>/`) is one as well; the sweep directory above it is not.
"""

from __future__ import annotations

import datetime
import os
import platform
import subprocess
from collections.abc import Mapping
from functools import cache
from importlib import metadata
from pathlib import Path
from typing import NamedTuple

from sac_runner.errors import ConfigError

CONFIG_FILE = "config.yaml"
CHECKPOINT_DIR = "checkpoints"
SUMMARY_FILE = "summary.json"
# a job of a sweep that failed or was pruned writes one of these into its directory (sweeps/multirun.py)
FAILED_FILE = "failed.json"
PRUNED_FILE = "pruned.json"


def is_run_dir(path: Path) -> bool:
    return (path / CONFIG_FILE).is_file() and (path / CHECKPOINT_DIR).is_dir()


def check_run_dir(path) -> Path:
    """Return `path` resolved if it is a run directory; raise a one-line ConfigError saying what it is otherwise."""
    p = Path(str(path)).expanduser()
    if not p.exists():
        raise ConfigError(f"{p} does not exist")
    if not p.is_dir():
        raise ConfigError(f"{p} is a file, not a run directory (the one holding {CONFIG_FILE} and {CHECKPOINT_DIR}/)")
    if not is_run_dir(p):
        try:
            jobs = sorted((c for c in p.iterdir() if c.is_dir() and is_run_dir(c)), key=lambda c: c.name)
        except OSError:
            jobs = []
        if jobs:
            names = ", ".join(str(j) for j in jobs[:3]) + (", ..." if len(jobs) > 3 else "")
            raise ConfigError(
                f"{p} is not a run directory but holds runs (a multirun sweep?); pass one of them ({names})"
            )
        raise ConfigError(f"{p} is not a sac_runner run directory (it has no {CONFIG_FILE} and {CHECKPOINT_DIR}/)")
    return p.resolve()


def check_writable_dir(
    path,
    what: str = "the run directory",
    fix: str = "choose another one with hydra.run.dir=<path>",
    create: bool = False,
) -> Path:
    """Raise ConfigError unless `path` exists as a writable directory or could be created; with `create`,
    create it (the only sure test: root passes every permission check, yet cannot write in /proc or on a
    read-only file system). Returns the absolute path."""
    p = Path(str(path)).expanduser().absolute()
    probe = p
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if not probe.is_dir():
        raise ConfigError(f"cannot create {what} {p}: {probe} is not a directory; {fix}")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise ConfigError(f"cannot create {what} {p}: {probe} is not writable; {fix}")
    if create:
        try:
            p.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise ConfigError(f"cannot create {what} {p} ({e.strerror or type(e).__name__}); {fix}") from None
    return p


def override_keys(task_overrides) -> list[str]:
    """The config keys named by Hydra command-line overrides ('+a.b=1' -> 'a.b', 'env=X' -> 'env')."""
    keys = []
    for o in task_overrides:
        key = str(o).split("=", 1)[0].lstrip("+~").strip()
        if key:
            keys.append(key)
    return keys


# ------------------------------------------------------------------------------------------ evaluations
class Evaluation(NamedTuple):
    """One evaluation of a run: its env step and the return statistics over `algorithm.nb_evals` episodes.
    A tuple, so e[0] and e[1] still mean the step and the mean return, as in the arrays of old summaries."""

    env_steps: int
    mean: float
    std: float
    min: float
    max: float


EVAL_FIELDS = Evaluation._fields  # summary.json's labels: ("env_steps", "mean", "std", "min", "max")


def read_evals(evals: object) -> list[Evaluation]:
    """A run's evaluation history (summary.json's `evals`, or the checkpoint's Progress.evals) as Evaluations,
    whichever form it was written in: labelled records {"env_steps": ..., "mean": ..., "std": ..., "min": ...,
    "max": ...} (what sac-train writes now; other keys are ignored) or unlabelled arrays [env_steps, mean, std,
    min, max] (summary.json as sac_runner 0.1.0 wrote it, and the checkpoint's form). None means no evaluation.
    The one reader of that history: sac-report, the sweeps, the objectives and scripts/results.py use it.
    Raises ValueError, naming the entry, on anything else."""
    if evals is None:
        return []
    if not isinstance(evals, list | tuple):
        raise ValueError(f"evals must be a list of evaluations, not {type(evals).__name__}")
    out = []
    for i, e in enumerate(evals):
        try:
            if isinstance(e, Mapping):
                values = [e[k] for k in EVAL_FIELDS]
            elif isinstance(e, list | tuple) and len(e) == len(EVAL_FIELDS):
                values = list(e)
            else:
                raise ValueError(f"expected {{{', '.join(EVAL_FIELDS)}}} or a list of those 5 values")
            if any(isinstance(v, bool) for v in values):
                raise ValueError("a boolean is not a number")
            out.append(Evaluation(int(values[0]), *(float(v) for v in values[1:])))
        except (KeyError, TypeError, ValueError, OverflowError) as err:
            what = f"no {err}" if isinstance(err, KeyError) else str(err)
            raise ValueError(f"evaluation {i} ({e!r:.80}) is not an evaluation record: {what}") from None
    return out


def eval_records(evals: object) -> list[dict]:
    """The evaluation history as summary.json holds it: one labelled record per evaluation
    ({"env_steps": ..., "mean": ..., "std": ..., "min": ..., "max": ...}), from either form read_evals reads."""
    return [e._asdict() for e in read_evals(evals)]


# ------------------------------------------------------------------------------------------ provenance
@cache
def source_commit() -> str | None:
    """The git commit of the sac_runner code that runs (12 hex digits), with "-dirty" when the package's
    tracked files differ from it; None when the package is not a git checkout (installed from a wheel). Cached:
    the first call (at a run's start) tells what was imported, whatever is committed while the run goes on."""
    package = Path(__file__).resolve().parent

    def git(*args: str) -> str:
        out = subprocess.run(["git", "-C", str(package.parent), *args], capture_output=True, text=True, timeout=10)
        return out.stdout.strip() if out.returncode == 0 else ""

    try:
        top = git("rev-parse", "--show-toplevel")
        if not top or Path(top).resolve() != package.parent:  # not a checkout, or another repository around it
            return None
        commit = git("rev-parse", "--short=12", "HEAD")
        dirty = git("status", "--porcelain", "--untracked-files=no", "--", package.name, "conf", "pyproject.toml")
    except (OSError, subprocess.SubprocessError):
        return None
    return (commit + ("-dirty" if dirty else "")) if commit else None


def cpu_model() -> str:
    """The CPU's model name (/proc/cpuinfo on Linux), else what the platform module says."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def provenance(device: str, accelerator: str | None = None) -> dict:
    """Where and with what a run ran, for its summary.json (and so the results store, scripts/results.py):
    the commit of sac_runner, the machine (the accelerator's name, else the CPU model), the device, the CPU
    cores the process may use, the versions of sac_runner, torch and Gymnasium, and the time (UTC)."""

    def version(dist: str) -> str | None:
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            return None

    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cpus = os.cpu_count() or 0
    return {
        "commit": source_commit(),
        "machine": accelerator or cpu_model(),
        "device": device,
        "cpus": cpus,
        "versions": {d: version(d) for d in ("sac_runner", "torch", "gymnasium")},
        "finished": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }
