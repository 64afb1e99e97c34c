"""Console entry points. `sac-train` is a Hydra app over the config tree in conf/."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from sac_runner.checkpoint import CheckpointError
from sac_runner.config import ConfigError, validate

OmegaConf.register_new_resolver("pid", lambda: os.getpid(), replace=True)

CONFIG_PATH = "pkg://sac_runner.conf"


def fail(message: str, code: int = 2):
    """Print one line to stderr and exit without a traceback."""
    print(f"sac-train: error: {message}", file=sys.stderr)
    sys.exit(code)


def print_summary(s: dict) -> None:
    lines = [
        "",
        f"SAC on {s['env_id']}: {s['env_steps']} env steps, {s['updates']} gradient steps "
        f"in {s['wall_time_s']:.1f} s ({s['steps_per_second']:.0f} steps/s)",
        f"  best eval return  {s['best_return']:.2f} at step {s['best_step']}"
        f"   (last {s['last_return']:.2f})",
        f"  run directory     {s['run_dir']}",
        f"  config            {s['run_dir']}/config.yaml",
        f"  checkpoints       {s['run_dir']}/checkpoints/{{best,last}}.pt",
        f"  tensorboard       tensorboard --logdir {s['run_dir']}/tensorboard",
    ]
    if s.get("video"):
        lines.append(f"  best-agent video  {s['video']}")
    print("\n".join(lines), flush=True)


def run(cfg: DictConfig) -> float:
    """Validate, train, and return the best evaluation return (the value a sweeper maximises)."""
    from sac_runner.trainer import Trainer

    validate(cfg)
    run_dir = Path(HydraConfig.get().runtime.output_dir)
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "config.yaml").write_text(OmegaConf.to_yaml(cfg, resolve=True))
    except OSError as e:
        raise ConfigError(f"cannot write to the output directory {run_dir} ({e.strerror}); "
                          f"choose a writable one with hydra.run.dir=<path>") from None
    trainer = Trainer(cfg, run_dir)
    try:
        summary = trainer.train()
    finally:
        trainer.close()
    summary["evals"] = trainer.progress.evals
    (run_dir / "summary.json").write_text(json.dumps(summary, indent=1))
    print_summary(summary)
    return float(summary["best_return"])


@hydra.main(version_base="1.3", config_path=CONFIG_PATH, config_name="config")
def _hydra_main(cfg: DictConfig) -> float:
    try:
        return run(cfg)
    except (ConfigError, CheckpointError) as e:
        fail(str(e))


def train() -> None:
    """`sac-train` console script."""
    _hydra_main()


if __name__ == "__main__":
    train()
