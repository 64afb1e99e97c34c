"""The checks of the logger.* keys, run with the rest of the config before anything is built: each problem is
one line naming the key and the fix (sac-train exits 2)."""

from __future__ import annotations

import importlib.util
import numbers
from collections.abc import Mapping
from typing import Any

from omegaconf import DictConfig, OmegaConf

from sac_runner.errors import ConfigError

# tracker -> the sac_runner extra that installs it (None: always there)
EXTRAS: dict[str, str | None] = {"tensorboard": None, "wandb": "wandb", "mlflow": "mlflow"}
WANDB_MODES = ("auto", "online", "offline")
# what logger.mlflow.tracking_uri may start with: a server, or a database MLflow can use as its store
MLFLOW_SCHEMES = ("http://", "https://", "sqlite:///", "postgresql", "mysql", "mssql", "databricks", "file:")
# characters W&B refuses in a project name
WANDB_PROJECT_FORBIDDEN = "/\\#?%:"


def selected(cfg: Mapping) -> list[str]:
    """The trackers a config asks for, in its order; a config from before the logger group: TensorBoard."""
    logger = cfg.get("logger")
    if logger is None:
        return ["tensorboard"]
    return [str(k) for k in logger]


def _fail(key: str, value: Any, problem: str, fix: str) -> None:
    raise ConfigError(f"{key}={value!r} {problem}; {fix}")


def _bool(section: Mapping, key: str) -> None:
    v = section.get(key.rsplit(".", 1)[1])
    if not isinstance(v, bool):
        _fail(key, v, "is not true or false", f"use e.g. {key}=true")


def _text(section: Mapping, key: str, example: str, optional: bool = False) -> None:
    v = section.get(key.rsplit(".", 1)[1])
    if v is None and optional:
        return
    if not isinstance(v, str) or not v.strip():
        _fail(key, v, "is not a name", f"use e.g. {key}={example}")


def check(cfg: DictConfig) -> None:
    """Raise a one-line ConfigError for the first bad logger.* setting, or a tracker whose extra is missing."""
    logger = cfg.get("logger")
    if logger is None:
        return
    if not isinstance(logger, DictConfig):
        _fail("logger", logger, "is not a list of trackers", "use e.g. logger=[tensorboard,wandb]")
    for name in logger:
        if name not in EXTRAS:
            raise ConfigError(
                f"logger.{name} is not a tracker; choose among {', '.join(EXTRAS)}, e.g. logger=[tensorboard,wandb]"
            )
        extra = EXTRAS[name]
        if extra is not None and importlib.util.find_spec(name) is None:
            raise ConfigError(
                f"logger={name} needs the {name} package, which is not installed; "
                f"install it with: pip install 'sac_runner[{extra}]'"
            )
    if "tensorboard" in logger:
        _bool(logger.tensorboard, "logger.tensorboard.video")
    if "wandb" in logger:
        w = logger.wandb
        _text(w, "logger.wandb.project", "sac_runner")
        bad = [c for c in str(w.project) if c in WANDB_PROJECT_FORBIDDEN]
        if bad:
            _fail("logger.wandb.project", w.project, f"contains {bad[0]!r}", "use letters, digits, '-', '_' and '.'")
        _text(w, "logger.wandb.entity", "my-team", optional=True)
        _text(w, "logger.wandb.group", "my-sweep", optional=True)
        if w.mode not in WANDB_MODES:
            _fail(
                "logger.wandb.mode",
                w.mode,
                f"is not one of {', '.join(WANDB_MODES)}",
                "use e.g. logger.wandb.mode=offline",
            )
        tags = OmegaConf.to_object(w.tags) if OmegaConf.is_config(w.tags) else w.tags
        if not isinstance(tags, list) or not all(isinstance(t, str) and 0 < len(t) <= 64 for t in tags):
            _fail("logger.wandb.tags", tags, "is not a list of short names", "use e.g. 'logger.wandb.tags=[baseline]'")
        _bool(w, "logger.wandb.log_checkpoint")
        timeout = w.init_timeout
        if isinstance(timeout, bool) or not isinstance(timeout, numbers.Real) or not float(timeout) > 0:
            _fail(
                "logger.wandb.init_timeout",
                timeout,
                "is not a positive number of seconds",
                "use e.g. logger.wandb.init_timeout=60",
            )
    if "mlflow" in logger:
        m = logger.mlflow
        uri = m.tracking_uri
        if uri is not None and (not isinstance(uri, str) or not uri.startswith(MLFLOW_SCHEMES)):
            _fail(
                "logger.mlflow.tracking_uri",
                uri,
                "is not an MLflow server or database URI",
                "use e.g. logger.mlflow.tracking_uri=http://localhost:5000 or sqlite:////abs/path/mlflow.db "
                "(null: the local store outputs/mlflow)",
            )
        _text(m, "logger.mlflow.experiment", "sac_runner")
        _bool(m, "logger.mlflow.log_checkpoint")
