"""A run's entry in TensorBoard's HParams dashboard: its hyperparameters (the sweep's overrides and the main
algorithm, architecture and optimizer values), its final metrics (hparams/final, best, objective, pruned) and
its composed config as text. `tensorboard --logdir <sweep dir>` then sorts and filters the jobs by them.

Everything goes into one event file with a fixed name in the run's tensorboard/ directory, rewritten whole
at the start and at the end of training: a resumed run replaces its entry instead of adding a second one.
Its name sorts after the training logger's files, so the purge a resume writes there never drops it."""

from __future__ import annotations

import math
import os
import tempfile
from pathlib import Path
from typing import Any

import yaml
from omegaconf import DictConfig, OmegaConf
from torch.utils.tensorboard.summary import hparams, scalar, text
from torch.utils.tensorboard.writer import FileWriter

from sac_runner import trackers
from sac_runner.keys import NOT_HPARAMS
from sac_runner.rundir import read_evals

FILE_NAME = "events.out.tfevents.9999999999.sac_runner.hparams"
METRICS = ("hparams/final", "hparams/best", "hparams/objective", "hparams/pruned")


def _value(v: Any) -> Any:
    if isinstance(v, (bool, int, float, str)):
        return v
    if v is None:
        return "null"
    if isinstance(v, (list, tuple)):
        return "-".join(map(str, v))
    return str(v)


def _overrides(run_dir: Path) -> list[str]:
    """The run's own overrides (its first .hydra/overrides.yaml: a resume keeps it)."""
    try:
        return list(yaml.safe_load((run_dir / ".hydra" / "overrides.yaml").read_text()) or [])
    except (OSError, yaml.YAMLError):
        return []


def hyperparameters(cfg: DictConfig, run_dir: Path) -> dict[str, Any]:
    """The sweep's overrides (their values as composed) plus env, seed, algorithm, architecture and the
    three optimizers' scalar values."""
    c = OmegaConf.to_container(cfg, resolve=True)
    assert isinstance(c, dict)
    out: dict[str, Any] = {"env.id": c["env"]["id"], "seed": c["seed"]}
    for group in ("algorithm", "architecture", "actor_optimizer", "critic_optimizer", "entropy_coef_optimizer"):
        for k, v in (c.get(group) or {}).items():
            if k in ("_partial_",):
                continue
            if k == "_target_":
                v = str(v).rsplit(".", 1)[-1]
            out[f"{group}.{k}"] = _value(v)
    for line in _overrides(run_dir):
        key = line.split("=", 1)[0].lstrip("+~")
        if "=" not in line or key.startswith(NOT_HPARAMS):  # overrides that are not hyperparameters
            continue
        value = OmegaConf.select(cfg, key, default=line.split("=", 1)[1])
        out[key] = _value(OmegaConf.to_container(value) if OmegaConf.is_config(value) else value)
    if cfg.get("hparams_search") is not None and cfg.hparams_search.get("trial") is not None:
        out["trial"] = int(cfg.hparams_search.trial)
    return out


def write(cfg: DictConfig, run_dir: str | Path, summary: dict | None = None) -> Path | None:
    """(Re)write the run's HParams event file; with `summary` (the end of training) also its metrics.
    A failed write is not worth stopping a run for: it returns None."""
    if "tensorboard" not in trackers.selected(cfg):  # logger=[...] without tensorboard
        return None
    run_dir = Path(run_dir)
    tb = run_dir / "tensorboard"
    hp = hyperparameters(cfg, run_dir)
    metrics = {m: math.nan for m in METRICS}
    step = 0
    if summary is not None:
        evals = read_evals(summary.get("evals"))  # either form summary.json has held
        objective = summary.get("objective")
        metrics = {
            "hparams/final": evals[-1].mean if evals else math.nan,
            "hparams/best": float(summary.get("best_return", math.nan)) if evals else math.nan,
            "hparams/objective": math.nan if objective is None else float(objective),
            "hparams/pruned": 1.0 if summary.get("pruned") else 0.0,
        }
        step = int(summary.get("env_steps", 0))
    exp, ssi, sei = hparams(hp, metrics)
    config_text = "    " + OmegaConf.to_yaml(cfg, resolve=True).replace("\n", "\n    ")
    try:
        tb.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=tb, prefix=".hparams-") as tmp:
            w = FileWriter(tmp)
            w.add_summary(exp)
            w.add_summary(ssi)
            w.add_summary(text("config", config_text), 0)
            if summary is not None:
                for name, value in metrics.items():
                    w.add_summary(scalar(name, value), step)
                w.add_summary(sei)
            w.close()
            (written,) = [p for p in Path(tmp).iterdir() if "tfevents" in p.name]
            os.replace(written, tb / FILE_NAME)
    except (OSError, ValueError):
        return None
    return tb / FILE_NAME
