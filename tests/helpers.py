"""What several test modules use: the tiny budget, running the console scripts, building and training a tiny run,
and synthetic run directories for sac-report. Fixtures over these are in conftest.py."""

import csv
import json
import os
import shutil
import subprocess
import sys

import yaml
from omegaconf import OmegaConf
from torch.utils.tensorboard import SummaryWriter

from sac_runner.config import compose, validate
from sac_runner.training.trainer import Hook, Trainer

# a budget that exercises every phase (warm-up, updates, evaluation, checkpoints) in seconds
TINY = [
    "algorithm.total_steps=300",
    "algorithm.learning_starts=100",
    "algorithm.eval_interval=150",
    "algorithm.nb_evals=2",
    "algorithm.log_interval=50",
    "algorithm.batch_size=32",
    "architecture=small",
    "env.max_episode_steps=60",
    "progress=false",
]

MODULES = {"sac-train": "sac_runner.cli", "sac-visualize": "sac_runner.visualize", "sac-report": "sac_runner.report"}


def cli_command(tool: str) -> list[str]:
    """The installed console script, or `python -m <its module>` where it is not on PATH."""
    exe = shutil.which(tool)
    return [exe] if exe else [sys.executable, "-m", MODULES[tool]]


def run_cli(tool: str, *args, cwd=None, timeout=300, env=None, drop_env=()) -> subprocess.CompletedProcess:
    """Run a console script as a user would, with Hydra's short errors; `drop_env` names variables to unset."""
    environ = {k: v for k, v in os.environ.items() if k not in drop_env}
    environ.update({"HYDRA_FULL_ERROR": "0", **(env or {})})
    return subprocess.run(
        [*cli_command(tool), *map(str, args)], cwd=cwd, capture_output=True, text=True, timeout=timeout, env=environ
    )


def sac_train(*args, cwd, timeout=300) -> subprocess.CompletedProcess:
    return run_cli("sac-train", *args, cwd=cwd, timeout=timeout)


def tiny_config(*overrides):
    """The validated config of a run on the TINY budget without a video, with `overrides` on top."""
    return validate(compose(*TINY, "save_video=false", *overrides))


def new_trainer(run_dir, *overrides, hooks=()) -> Trainer:
    """A Trainer on tiny_config(*overrides), its config.yaml written first as `sac-train` does."""
    cfg = tiny_config(*overrides)
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "config.yaml").write_text(OmegaConf.to_yaml(cfg, resolve=True))
    return Trainer(cfg, run_dir, hooks=hooks)


def train(trainer: Trainer) -> dict:
    """trainer.train(), then trainer.close() whatever happened."""
    try:
        return trainer.train()
    finally:
        trainer.close()


def step_hook(fn) -> Hook:
    """A trainer Hook calling `fn(trainer)` after every environment step."""

    class StepHook(Hook):
        def on_step(self, trainer):
            fn(trainer)

    return StepHook()


def make_run(
    path,
    overrides,
    seed,
    returns,
    steps=None,
    summary=True,
    env_id="Pendulum-v1",
    sps=500.0,
    interrupted=None,
    config=None,
):
    """A run directory as sac-train leaves it, written directly (no training): .hydra/overrides.yaml, config.yaml
    (`config`, by default the dotted overrides' values), tensorboard/ with the evaluation curve, summary.json."""
    steps = steps or [1000 * (i + 1) for i in range(len(returns))]
    (path / ".hydra").mkdir(parents=True)
    (path / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump([f"seed={seed}", *overrides]))
    if config is None:  # what the dotted overrides set
        tree = OmegaConf.create()
        for key, value in (o.split("=", 1) for o in overrides):
            if "." in key:
                OmegaConf.update(tree, key, yaml.safe_load(value))
        config = OmegaConf.to_container(tree)
    config = {**config, "seed": seed, "env": {**config.get("env", {}), "id": env_id}}
    (path / "config.yaml").write_text(yaml.safe_dump(config))
    (path / "checkpoints").mkdir()
    w = SummaryWriter(str(path / "tensorboard"))
    for s, r in zip(steps, returns):
        w.add_scalar("eval/return_mean", r, s)
        w.add_scalar("time/steps_per_second", sps, s)
    w.close()
    if summary:
        s = {
            "env_steps": steps[-1],
            "wall_time_s": steps[-1] / sps,
            "steps_per_second": sps,
            "evals": [[st, r, 0, r, r] for st, r in zip(steps, returns)],
        }
        if interrupted:
            s["interrupted"] = interrupted
        (path / "summary.json").write_text(json.dumps(s))
    return path


def read_csv(path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))
