import os
import shutil
import subprocess
import sys

from hydra import compose, initialize_config_module
from omegaconf import OmegaConf

os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
os.environ.setdefault("SDL_AUDIODRIVER", "dummy")

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


def make_cfg(*overrides):
    """The composed config as `sac-train <overrides>` would see it (without Hydra's run-time keys)."""
    from sac_runner.presets import register_env_configs

    register_env_configs()  # env=<any registered id>, as sac-train does before composing
    with initialize_config_module("sac_runner.conf", version_base="1.3"):
        return compose("config", overrides=list(overrides))


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


def make_trainer(run_dir, *overrides, hooks=()):
    """A Trainer on the TINY budget (no video), its config.yaml written first as `sac-train` does."""
    from sac_runner.config import validate
    from sac_runner.trainer import Trainer

    cfg = validate(make_cfg(*TINY, "save_video=false", *overrides))
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "config.yaml").write_text(OmegaConf.to_yaml(cfg, resolve=True))
    return Trainer(cfg, run_dir, hooks=hooks)


def train(trainer) -> dict:
    try:
        return trainer.train()
    finally:
        trainer.close()


def step_hook(fn):
    """A trainer Hook calling `fn(trainer)` after every environment step."""
    from sac_runner.trainer import Hook

    class StepHook(Hook):
        def on_step(self, trainer):
            fn(trainer)

    return StepHook()
