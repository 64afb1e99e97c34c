"""How Hydra started this process: a lone run or a job of a multirun, and under which launcher and sweeper."""

from __future__ import annotations

from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode


def hydra_config() -> Any:
    """The running app's HydraConfig (hydra.*), or None outside a Hydra app (the tests, a script)."""
    return HydraConfig.get() if HydraConfig.initialized() else None


def is_multirun() -> bool:
    """Whether this process runs a job of `sac-train -m`."""
    hc = hydra_config()
    return hc is not None and hc.mode == RunMode.MULTIRUN


def uses_launcher(hc: Any, name: str) -> bool:
    """Whether hydra.launcher (of `hc`, a config's hydra node) is Hydra's `name` launcher: joblib, submitit."""
    return name in str(hc.launcher.get("_target_", ""))


def uses_optuna(hc: Any) -> bool:
    """Whether hydra.sweeper is sac_runner's Optuna sweeper (hparams_search=optuna)."""
    return "optuna" in str(hc.sweeper.get("_target_", ""))
