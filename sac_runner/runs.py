"""A run of sac-train in its directory: where it writes (the hydra.run.dir resolvers), the checks before Hydra
creates that directory (RunDirCallback), and the config and checkpoint a resume continues from."""

from __future__ import annotations

import contextlib
import copy
import logging
from pathlib import Path
from typing import NamedTuple

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf, open_dict, read_write

from sac_runner import rundir_lock
from sac_runner.config import migrate_legacy, validate
from sac_runner.errors import CheckpointError, ConfigError, fail
from sac_runner.keys import NOT_FROM_DEFAULTS, RESUME_OVERRIDABLE
from sac_runner.rundir import CHECKPOINT_DIR, CONFIG_FILE, check_run_dir, check_writable_dir, override_keys
from sac_runner.rundir_lock import RunDirInUse
from sac_runner.training.checkpoint import Checkpoint, load_checkpoint, remove_stale_temporaries
from sac_runner.training.state import Resumed


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
    """Hydra callback (conf/config.yaml: hydra.callbacks.run_dir). A single run's every check happens here, before
    Hydra creates the run directory, so that a refused command leaves nothing behind: the whole validation of a
    new run (its environment too: its id is part of the directory's name), the run to resume with its config and
    checkpoint, and that the directory can be created. One line, exit 2. (A multirun's jobs are checked as they
    start: a refused job leaves its failed.json, the sweep's record of it.)"""

    def on_run_start(self, config: DictConfig, **kwargs) -> None:
        global _CREATED
        resume = OmegaConf.select(config, "resume")
        task = copy.deepcopy(config)  # what the task function will get: the config without Hydra's own node
        with read_write(task), open_dict(task):
            del task["hydra"]
        run_dir, lock = None, None
        try:
            if resume is not None:
                try:
                    check_run_dir(resume)
                except ConfigError as e:
                    raise ConfigError(f"resume={resume}: {e}") from None
                run_dir = Path(str(config.hydra.run.dir)).expanduser().absolute()  # the run's own
                lock = _lock(run_dir, resume)  # before anything there is read or tidied (stale temporaries)
                overrides = list(config.hydra.overrides.task)
                _PREPARED[_resume_key(resume, overrides)] = _prepare_resume(task, overrides)
            else:
                _job_logger_levels(config)
                search = OmegaConf.select(config, "hydra.runtime.choices.hparams_search")
                if task.get("hparams_search") is not None:
                    raise ConfigError(
                        f"hparams_search={search} runs a search only as a multirun; add -m: "
                        f"sac-train -m hparams_search={search} ..."
                    )
                validate(task)
                run_dir = Path(str(config.hydra.run.dir)).expanduser().absolute()  # its name needs env.id
            top = run_dir
            while not top.parent.exists() and top.parent != top.parent.parent:
                top = top.parent
            made = None if run_dir.exists() else top
            check_writable_dir(run_dir, create=True)
            if resume is None:
                lock = _lock(run_dir, resume)
            subdir = run_dir / str(config.hydra.output_subdir) if config.hydra.output_subdir is not None else None
            _CREATED = Created(run_dir, made, None if subdir is None or subdir.exists() else subdir, lock)
        except (ConfigError, CheckpointError) as e:  # inside Hydra an exception would print a traceback
            if run_dir is not None:
                _unlock(run_dir, lock)
            fail(str(e))


def _lock(run_dir: Path, resume) -> Path | None:
    """Lock the run directory for this process until it ends (one writer per run directory: rundir_lock.py);
    the lock file when this call created it, else None. RunDirInUse becomes one line (for a resume, led by
    resume=<dir>)."""
    lock_file = run_dir / rundir_lock.LOCK_FILE
    created = not lock_file.exists()
    try:
        rundir_lock.acquire(run_dir)
    except RunDirInUse as e:
        raise ConfigError(f"resume={resume}: {e}" if resume is not None else str(e)) from None
    return lock_file if created else None


def _unlock(run_dir: Path, lock_file: Path | None) -> None:
    """Release the lock taken by _lock (if it was), and remove its file when _lock created it."""
    if str(run_dir.resolve()) in rundir_lock.held():
        rundir_lock.release(run_dir)
    if lock_file is not None:
        with contextlib.suppress(OSError):
            lock_file.unlink()


class Created(NamedTuple):
    """What this invocation created for a single run: the run directory (`top`: the outermost directory it made
    on the way, None when the run directory existed already) and Hydra's .hydra/ subdirectory when it is new."""

    run_dir: Path
    top: Path | None
    hydra_subdir: Path | None
    lock_file: Path | None = None  # the run directory's lock file, when this invocation created it


_CREATED: Created | None = None
# a resume prepared by RunDirCallback before Hydra created anything, for run() to take
_PREPARED: dict[tuple, tuple[Path, DictConfig, Checkpoint]] = {}
# what Hydra writes into a run directory before the task starts, and the run's own config.yaml
HYDRA_FILES = ("config.yaml", "hydra.yaml", "overrides.yaml")


def remove_refused_run(log_name: str | None = None) -> None:
    """After a single run was refused once Hydra had made its directory: remove exactly what this invocation
    created there (Hydra's files in its new .hydra/ subdirectory, the lock file it made, the run's config.yaml
    and `log_name` in a directory it created, and then those directories if nothing else is in them). Anything
    else stays."""
    made = _CREATED
    if made is None:
        return
    _unlock(made.run_dir, made.lock_file)
    files = []
    if made.hydra_subdir is not None:
        files += [made.hydra_subdir / f for f in HYDRA_FILES]
    if made.top is not None:
        files += [made.run_dir / CONFIG_FILE] + ([made.run_dir / log_name] if log_name else [])
    for f in files:
        with contextlib.suppress(OSError):
            f.unlink()
    dirs = [made.hydra_subdir] if made.hydra_subdir is not None else []
    if made.top is not None:  # the run directory and the new directories above it, innermost first
        d = made.run_dir
        while True:
            dirs.append(d)
            if d == made.top or d == d.parent:
                break
            d = d.parent
    for d in dirs:
        with contextlib.suppress(OSError):
            d.rmdir()  # only if empty


def register_resolvers() -> None:
    OmegaConf.register_new_resolver("sac_run_dir", _run_dir_resolver, replace=True)
    OmegaConf.register_new_resolver("sac_hydra_subdir", _hydra_subdir_resolver, replace=True)


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
    # keys added to sac-train after the run was started take their current defaults (not those that describe
    # the default env's preset)
    for key in composed:
        if key not in saved and key not in NOT_FROM_DEFAULTS:
            OmegaConf.update(saved, str(key), composed[key], force_add=True)
    if "checkpoint" in composed:
        saved.checkpoint = OmegaConf.merge(composed.checkpoint, saved.checkpoint)
    for key in keys:
        OmegaConf.update(saved, key, OmegaConf.select(composed, key), force_add=True)
    saved.resume = str(run_dir)
    return saved


def _resume_key(resume, task_overrides) -> tuple:
    return str(resume), tuple(str(o) for o in task_overrides)


def prepare_resume(cfg: DictConfig, task_overrides=(), multirun: bool = False) -> tuple[Path, DictConfig, Checkpoint]:
    """For `sac-train resume=<run dir> [overrides]`: the run directory, its validated config and its last.pt.

    `cfg` is the config composed for this invocation, `task_overrides` its command-line overrides. A single run's
    resume was prepared already, before Hydra wrote anything (RunDirCallback): that one is returned.
    """
    if multirun:
        raise ConfigError("resume cannot be combined with --multirun; resume each job directory on its own")
    prepared = _PREPARED.pop(_resume_key(cfg.resume, task_overrides), None)
    return prepared if prepared is not None else _prepare_resume(cfg, task_overrides)


def _prepare_resume(cfg: DictConfig, task_overrides) -> tuple[Path, DictConfig, Checkpoint]:
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


def resume_message(run_dir: Path, resumed: Resumed, total_steps: int) -> str:
    """One line saying where a resumed run continues and what it could not restore."""
    line = f"sac-train: resuming {run_dir} at step {resumed.env_steps} of {total_steps}"
    if not resumed.env_restored:
        line += "; the training environments start fresh episodes (their state cannot be saved)"
    if resumed.refill_until:
        line += (
            f"; the replay buffer was not saved: no gradient step until it holds {resumed.refill_until} "
            f"transitions again"
        )
    return line
