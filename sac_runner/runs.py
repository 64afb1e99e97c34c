"""Run directories: recognise one, choose where a run writes, and rebuild the config that resumes it.

A run directory holds `config.yaml` (the resolved config) and `checkpoints/`. A multirun job
directory (`outputs/multirun/<date>/<time>/<n>/`) is one as well; the sweep directory above it is not.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from sac_runner.config import ConfigError, migrate_legacy

if TYPE_CHECKING:
    from sac_runner.checkpoint import Checkpoint

CONFIG_FILE = "config.yaml"
CHECKPOINT_DIR = "checkpoints"

# the only keys `sac-train resume=<run dir> ...` may change; everything else comes from the run's config.yaml
RESUME_OVERRIDABLE = (
    "algorithm.total_steps",
    "checkpoint.save_replay_buffer",
    "progress",
    "save_video",
    "device",
    "threads",
    "compile",
    "cuda_graph",
)


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


def _run_dir_resolver(resume, default: str) -> str:
    """hydra.run.dir: the run being resumed, or else the fresh timestamped default."""
    return default if resume is None else str(Path(str(resume)).expanduser().absolute())


def _hydra_subdir_resolver(resume, stamp: str) -> str:
    """hydra.output_subdir: a resumed run keeps its original .hydra/ files and gets its own beside them."""
    return ".hydra" if resume is None else f".hydra/resume-{stamp}"


def _job_logger_levels(config: DictConfig) -> None:
    """Give the loggers named in hydra.job_logging their levels now: Hydra applies them only when the job
    starts, and the environment checked before that may already log (PyOpenGL's INFO line on import)."""
    loggers = OmegaConf.select(config, "hydra.job_logging.loggers") or {}
    for name, spec in loggers.items():
        level = spec.get("level") if isinstance(spec, DictConfig) else None
        if level is not None:
            logging.getLogger(str(name)).setLevel(level)


class RunDirCallback(Callback):
    """Hydra callback (conf/config.yaml: hydra.callbacks.run_dir). Before Hydra creates the run directory,
    check it: a resume must name an existing run, a new directory must be creatable; and check the
    environment first (its id is part of the directory's name), so that a bad one leaves nothing behind.
    One line, exit 2."""

    def on_run_start(self, config: DictConfig, **kwargs) -> None:
        from sac_runner.config import validate_env

        resume = OmegaConf.select(config, "resume")
        try:
            if resume is not None:
                try:
                    check_run_dir(resume)
                except ConfigError as e:
                    raise ConfigError(f"resume={resume}: {e}") from None
            else:  # a resume's environment is the run's own, checked with its config
                _job_logger_levels(config)
                validate_env(config)
            check_writable_dir(config.hydra.run.dir, create=True)
        except ConfigError as e:
            # callbacks run inside Hydra, which would print a traceback for an exception; SystemExit passes
            print(f"sac-train: error: {e}", file=sys.stderr)
            sys.exit(2)


def register_resolvers() -> None:
    OmegaConf.register_new_resolver("sac_run_dir", _run_dir_resolver, replace=True)
    OmegaConf.register_new_resolver("sac_hydra_subdir", _hydra_subdir_resolver, replace=True)


def override_keys(task_overrides) -> list[str]:
    """The config keys named by Hydra command-line overrides ('+a.b=1' -> 'a.b', 'env=X' -> 'env')."""
    keys = []
    for o in task_overrides:
        key = str(o).split("=", 1)[0].lstrip("+~").strip()
        if key:
            keys.append(key)
    return keys


def resume_config(run_dir: Path, composed: DictConfig, task_overrides) -> DictConfig:
    """The config of a resumed run: the run's own config.yaml, plus the few overrides a resume may carry."""
    keys = [k for k in override_keys(task_overrides) if k != "resume"]
    bad = [k for k in keys if k not in RESUME_OVERRIDABLE]
    if bad:
        raise ConfigError(
            f"{bad[0]} cannot be changed when resuming (the run's settings come from "
            f"{run_dir / CONFIG_FILE}); a resume accepts only {', '.join(RESUME_OVERRIDABLE)}"
        )
    try:
        saved = OmegaConf.load(run_dir / CONFIG_FILE)
    except Exception as e:  # unreadable or not YAML
        raise ConfigError(
            f"cannot read {run_dir / CONFIG_FILE} ({type(e).__name__}); the run cannot be resumed"
        ) from None
    if not isinstance(saved, DictConfig) or "env" not in saved or "algorithm" not in saved:
        raise ConfigError(f"{run_dir / CONFIG_FILE} is not a sac-train config; the run cannot be resumed")
    migrate_legacy(saved)  # a run started by an older sac_runner (optimizer `classname` instead of `_target_`)
    # keys added to sac-train after the run was started take their current defaults
    for key in composed:
        if key not in saved:
            OmegaConf.update(saved, str(key), composed[key], force_add=True)
    if "checkpoint" in composed:
        saved.checkpoint = OmegaConf.merge(composed.checkpoint, saved.checkpoint)
    for key in keys:
        OmegaConf.update(saved, key, OmegaConf.select(composed, key), force_add=True)
    saved.resume = str(run_dir)
    return saved


def prepare_resume(cfg: DictConfig, task_overrides=(), multirun: bool = False) -> tuple[Path, DictConfig, Checkpoint]:
    """For `sac-train resume=<run dir> [overrides]`: the run directory, its validated config and its last.pt.

    `cfg` is the config composed for this invocation, `task_overrides` its command-line overrides.
    """
    from sac_runner.checkpoint import load_checkpoint, remove_stale_temporaries
    from sac_runner.config import validate

    if multirun:
        raise ConfigError("resume cannot be combined with --multirun; resume each job directory on its own")
    try:
        run_dir = check_run_dir(cfg.resume)
    except ConfigError as e:
        raise ConfigError(f"resume={cfg.resume}: {e}") from None
    new = validate(resume_config(run_dir, cfg, list(task_overrides)))
    last = run_dir / CHECKPOINT_DIR / "last.pt"
    if not last.is_file():
        raise ConfigError(
            f"resume={run_dir}: there is no {CHECKPOINT_DIR}/last.pt (the run stopped before its "
            f"first checkpoint); start it again instead"
        )
    ckpt = load_checkpoint(last)
    steps, total = int(ckpt.progress.get("env_steps", 0)), int(new.algorithm.total_steps)
    if steps >= total:
        raise ConfigError(
            f"resume={run_dir}: the run already reached its budget (step {steps}, "
            f"algorithm.total_steps={total}); to train longer add "
            f"algorithm.total_steps=<more than {steps}>"
        )
    remove_stale_temporaries(run_dir / CHECKPOINT_DIR)  # left by a writer killed mid-write
    return run_dir, new, ckpt


def resume_message(run_dir: Path, resumed, total_steps: int) -> str:
    """One line saying where a resumed run continues and what it could not restore (a checkpoint.Resumed)."""
    line = f"sac-train: resuming {run_dir} at step {resumed.env_steps} of {total_steps}"
    if not resumed.env_restored:
        line += "; the training environments start fresh episodes (their state cannot be saved)"
    if resumed.refill_until:
        line += (
            f"; the replay buffer was not saved: no gradient step until it holds {resumed.refill_until} "
            f"transitions again"
        )
    return line
