"""The run directory's layout and checks, without torch (sac-report reads run directories too).

A run directory holds `config.yaml` (the resolved config) and `checkpoints/`. A multirun job
directory (`outputs/multirun/<date>/<time>/<n>/`) is one as well; the sweep directory above it is not.
"""

from __future__ import annotations

import os
from pathlib import Path

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
