"""Where a run's records go besides its checkpoints: the trackers of the `logger` config group (TensorBoard by
default; W&B and MLflow with their extras), and the console. The training logger (training/logger.py) fans each
event out to them; a tracker module is imported only when the config asks for it."""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from sac_runner.trackers.base import IDS_FILE, Outcome, RunInfo, Tracker
from sac_runner.trackers.settings import check, selected

__all__ = ["IDS_FILE", "Outcome", "RunInfo", "Tracker", "build", "check", "run_info", "selected"]


def build(cfg: DictConfig | None) -> list[Tracker]:
    """The trackers `cfg.logger` names, in its order (TensorBoard alone without a config)."""
    names = selected(cfg) if cfg is not None else ["tensorboard"]
    logger = cfg.get("logger") if cfg is not None else None
    trackers: list[Tracker] = []
    for name in names:
        settings = OmegaConf.to_container(logger[name], resolve=True) if logger is not None else {}
        assert isinstance(settings, dict)
        if name == "tensorboard":
            from sac_runner.trackers.tensorboard import TensorBoardTracker

            trackers.append(TensorBoardTracker(settings))
        elif name == "wandb":
            from sac_runner.trackers.wandb import WandbTracker

            trackers.append(WandbTracker(settings))
        elif name == "mlflow":
            from sac_runner.trackers.mlflow import MlflowTracker

            trackers.append(MlflowTracker(settings))
    return trackers


def run_info(cfg: DictConfig | None, run_dir: Path, resumed: bool, start_step: int, total_steps: int) -> RunInfo:
    """The RunInfo of this process's run: the multirun it belongs to and its job and trial numbers come from
    Hydra's runtime config, when sac-train launched it."""
    config = OmegaConf.to_container(cfg, resolve=True) if cfg is not None else {"env": {"id": "?"}, "seed": 0}
    assert isinstance(config, dict)
    info = RunInfo(Path(run_dir), config, resumed=resumed, start_step=start_step, total_steps=total_steps)
    search = config.get("hparams_search")
    trial = search.get("trial") if isinstance(search, dict) else None
    info.trial = int(trial) if trial is not None else None
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    if HydraConfig.initialized():
        hc = HydraConfig.get()
        info.launch_dir = Path(hc.runtime.cwd)
        info.overrides = [str(o) for o in hc.overrides.task]
        if hc.mode == RunMode.MULTIRUN:
            info.sweep_dir = Path(str(hc.sweep.dir)).absolute()
            info.job = int(hc.job.num)
    return info
