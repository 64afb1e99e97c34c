"""A run of sac-train in its directory: where it writes (the hydra.run.dir resolvers), the checks before Hydra
creates that directory (RunDirCallback), and the config and checkpoint a resume continues from."""

from __future__ import annotations

import logging
from pathlib import Path

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from sac_runner.config import migrate_legacy, validate, validate_env
from sac_runner.errors import ConfigError, fail
from sac_runner.keys import NOT_FROM_DEFAULTS, RESUME_OVERRIDABLE
from sac_runner.rundir import CHECKPOINT_DIR, CONFIG_FILE, check_run_dir, check_writable_dir, override_keys
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
    """Hydra callback (conf/config.yaml: hydra.callbacks.run_dir). Before Hydra creates the run directory,
    check it: a resume must name an existing run, a new directory must be creatable; and check the
    environment first (its id is part of the directory's name), so that a bad one leaves nothing behind.
    One line, exit 2."""

    def on_run_start(self, config: DictConfig, **kwargs) -> None:
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
        except ConfigError as e:  # inside Hydra an exception would print a traceback; SystemExit passes
            fail(str(e))


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


def prepare_resume(cfg: DictConfig, task_overrides=(), multirun: bool = False) -> tuple[Path, DictConfig, Checkpoint]:
    """For `sac-train resume=<run dir> [overrides]`: the run directory, its validated config and its last.pt.

    `cfg` is the config composed for this invocation, `task_overrides` its command-line overrides.
    """
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
