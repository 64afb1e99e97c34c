"""`sac-train`: a Hydra app over the config tree in conf/ that trains one run, or each job of a sweep."""

from __future__ import annotations

import json
import math
import os
import signal
import sys
from pathlib import Path

import hydra
import torch
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf, open_dict

from sac_runner import overrides, presets, runs
from sac_runner.config import validate
from sac_runner.errors import CheckpointError, ConfigError, TrainingError, TrialPruned, fail
from sac_runner.hydra_mode import is_multirun
from sac_runner.objectives import objective
from sac_runner.rundir import CONFIG_FILE, SUMMARY_FILE, eval_records, provenance, source_commit
from sac_runner.sweeps import hparams
from sac_runner.sweeps.multirun import run_job
from sac_runner.sweeps.optuna_sweeper import register_sweeper
from sac_runner.sweeps.optuna_trial import train_trial, trial_hooks
from sac_runner.sweeps.population_launcher import register_launcher
from sac_runner.threads import job_threads, limit_threads
from sac_runner.training.population import current_member
from sac_runner.training.trainer import Trainer

# cached, so that a multirun's jobs (run in other processes by the joblib and submitit launchers)
# resolve hydra.sweep.dir to the launching process's directory, not to one of their own
OmegaConf.register_new_resolver("pid", lambda: os.getpid(), replace=True, use_cache=True)
# hydra.run.dir and hydra.output_subdir: the run's own directory when resuming (sac_runner/runs.py)
runs.register_resolvers()
# the generated parts of `sac-train --help` (conf/hydra/help/sac-train.yaml)
presets.register_resolvers()

CONFIG_PATH = "pkg://sac_runner.conf"


def print_summary(s: dict) -> None:
    """The end-of-run summary: the whole run, then (resumed) this session, and where each tracker's records are."""
    session = s.get("session") or {}
    timed = f" since step {s['timed_from_step']} (earlier sessions were not timed)" if s.get("timed_from_step") else ""
    lines = [
        "",
        f"SAC on {s['env_id']}: {s['env_steps']} env steps, {s['updates']} gradient steps "
        f"in {s['wall_time_s']:.1f} s ({s['steps_per_second']:.0f} steps/s){timed}",
    ]
    if session.get("first_step"):
        lines.append(
            f"  this session      steps {session['first_step']}-{s['env_steps']}: {session['env_steps']} env steps "
            f"in {session['wall_time_s']:.1f} s ({session['steps_per_second']:.0f} steps/s)"
        )
    if s.get("update") == "compiled":  # the compiled SAC update (sac_runner/agent/compiled.py) and its build time
        built = "" if s.get("compile_s") is None else f", built in {s['compile_s']:.1f} s"
        waited = f", the loop waited {s['compile_wait_s']:.1f} s for it" if s.get("compile_wait_s") else ""
        lines.append(f"  SAC update        compiled from gradient step {s.get('compiled_from')}{built}{waited}")
    lines += [
        f"  best eval return  {s['best_return']:.2f} at step {s['best_step']}   (last {s['last_return']:.2f})",
        f"  run directory     {s['run_dir']}",
        f"  config            {s['run_dir']}/config.yaml",
        f"  checkpoints       {s['run_dir']}/checkpoints/{{best,last}}.pt",
    ]
    trackers = s.get("trackers", {"tensorboard": f"tensorboard --logdir {s['run_dir']}/tensorboard"})
    lines += [f"  {name:<17} {where}" for name, where in trackers.items()]
    if s.get("video"):
        lines.append(f"  best-agent video  {s['video']}")
    print("\n".join(lines), flush=True)


def run(cfg: DictConfig) -> float:
    """Validate, train, and return the objective (objective.metric of the evaluation history: the
    value a sweeper maximises; NaN for a diverged run)."""
    resume_ckpt = None
    source_commit()  # the code's commit as imported now, not as committed by the end (rundir.provenance)
    if cfg.get("resume") is not None:  # continue a run in its own directory, with its own config
        # a population's member may resume in a multirun: hydra.launcher.resume=true (sweeps/population_launcher.py)
        multirun = is_multirun() and current_member() is None
        run_dir, cfg, resume_ckpt = runs.prepare_resume(cfg, HydraConfig.get().overrides.task, multirun)
    else:
        run_dir = Path(HydraConfig.get().runtime.output_dir)
    validate(cfg)
    with open_dict(cfg):
        cfg.threads = job_threads(cfg)  # "auto": 1 for small networks, else this job's share of the cores
    limit_threads(cfg.threads)
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / CONFIG_FILE).write_text(OmegaConf.to_yaml(cfg, resolve=True))
    except OSError as e:
        raise ConfigError(
            f"cannot write to the output directory {run_dir} ({e.strerror}); "
            f"choose a writable one with hydra.run.dir=<path>"
        ) from None
    trainer = Trainer(cfg, run_dir, hooks=trial_hooks(cfg))  # an Optuna trial reports to its study
    hparams.write(cfg, run_dir)  # TensorBoard's HParams dashboard (sweeps/hparams.py)
    try:
        if resume_ckpt is not None:
            resumed = trainer.resume(resume_ckpt)
            print(runs.resume_message(run_dir, resumed, cfg.algorithm.total_steps), flush=True)
        summary = train_trial(trainer)  # trainer.train(); a trial stopped by the search's pruner: "pruned"
    finally:
        trainer.close()
    summary["evals"] = eval_records(trainer.progress.evals)  # labelled: {"env_steps": ..., "mean": ..., ...}
    gpu = torch.cuda.get_device_name(trainer.device) if trainer.device.type == "cuda" else None
    summary.update(provenance(str(trainer.device), gpu))  # commit, machine, versions: scripts/results.py
    value = objective(summary["evals"], cfg.objective.metric, cfg.objective.last)
    summary["objective"] = value if math.isfinite(value) else None
    try:
        (run_dir / SUMMARY_FILE).write_text(json.dumps(summary, indent=1))
    except OSError as e:
        raise TrainingError(
            f"cannot write {run_dir / SUMMARY_FILE} ({e.strerror}); the checkpoints are complete"
        ) from None
    hparams.write(cfg, run_dir, summary)
    if summary.get("pruned"):
        raise TrialPruned(summary["pruned"]["message"], summary["pruned"])
    if summary.get("interrupted"):  # SIGINT / SIGTERM: last.pt is written; exit with 128 + the signal number
        print(
            f"sac-train: {summary['interrupted']} received: stopped at step {summary['env_steps']}, checkpoint "
            f"{run_dir / 'checkpoints' / 'last.pt'}; resume with: sac-train resume={run_dir}",
            file=sys.stderr,
            flush=True,
        )
        sys.exit(128 + signal.Signals[summary["interrupted"]].value)
    print_summary(summary)
    return value


@hydra.main(version_base="1.3", config_path=CONFIG_PATH, config_name="config")
def _hydra_main(cfg: DictConfig) -> float:
    if is_multirun():  # a failed job is recorded in its directory and the sweep goes on
        return run_job(cfg, run)
    try:
        return run(cfg)
    except (ConfigError, CheckpointError) as e:
        runs.remove_refused_run(f"{HydraConfig.get().job.name}.log")  # what this command made before the refusal
        fail(str(e))
    except TrainingError as e:
        fail(str(e), code=1)
    except KeyboardInterrupt:  # a second Ctrl-C, or one before training started: checkpoints on disk are complete
        fail("interrupted; checkpoints already written are complete", code=128 + signal.SIGINT)


def train() -> None:
    """`sac-train` console script. Every registered Gymnasium id becomes an `env` option first (a script
    that registers its own environments and then calls train() gets them too; see sac_runner/presets.py).
    The overrides are checked before Hydra runs (sac_runner/overrides.py): Hydra would print several lines,
    and a sweep would already have made its directory."""
    if overrides.asks_version(sys.argv[1:]):  # ours, not Hydra's
        print(overrides.version_text())
        return
    presets.register_env_configs()
    register_sweeper()  # hparams_search=optuna's sweeper (sweeps/optuna_sweeper.py)
    register_launcher()  # hydra/launcher=population (sweeps/population_launcher.py)
    # env.kwargs.<name>=<value> as --help documents it; Hydra itself needs ++ (config.hydra_overrides)
    sys.argv[1:] = overrides.documented_argv(sys.argv[1:])
    problem = overrides.check_overrides(sys.argv[1:])
    if problem is not None:
        fail(problem)
    _hydra_main()


if __name__ == "__main__":
    train()
