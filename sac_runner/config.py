"""The config as sac-train composes it (compose) and its validation: every problem is one line naming the key and
the fix, raised before anything is built."""

from __future__ import annotations

import importlib
import logging
import math
import numbers

import gymnasium as gym
import numpy as np
import torch
from hydra import compose as hydra_compose
from hydra import initialize_config_module
from hydra.utils import get_class
from omegaconf import DictConfig, ListConfig, OmegaConf, open_dict

from sac_runner import envs as _envs  # registers CartPoleContinuous-v1
from sac_runner.agent.networks import ACTIVATIONS
from sac_runner.errors import ConfigError
from sac_runner.objectives import OBJECTIVES
from sac_runner.presets import SUITES, register_env_configs, suite, unknown_env_message
from sac_runner.trackers import check as check_logger

__all__ = ["ConfigError", "compose", "hydra_overrides", "migrate_legacy", "validate", "validate_env"]

OPTIMIZERS = ("actor_optimizer", "critic_optimizer", "entropy_coef_optimizer")
CONFIG_MODULE = "sac_runner.conf"


def compose(*overrides: str) -> DictConfig:
    """The config `sac-train <overrides>` runs with, before validation and without Hydra's own keys: the env
    presets and every registered Gymnasium id are `env=` options, as for sac-train (presets.register_env_configs),
    and env.kwargs.<name>=<value> adds a keyword argument (hydra_overrides). For scripts and tests; validate() it
    before building anything from it."""
    register_env_configs()
    with initialize_config_module(CONFIG_MODULE, version_base="1.3"):
        return hydra_compose("config", overrides=hydra_overrides(list(overrides)))


ENV_KWARGS = "env.kwargs."


def hydra_overrides(overrides: list[str]) -> list[str]:
    """Overrides in the form Hydra takes them: `env.kwargs.<name>=<value>`, the form sac-train --help documents,
    becomes `++env.kwargs.<name>=<value>` (add or replace). env.kwargs holds gymnasium.make's keyword arguments,
    which no config file can list, and Hydra refuses a plain override of a key that is not there yet."""
    return [f"++{o}" if o.startswith(ENV_KWARGS) and "=" in o[len(ENV_KWARGS) :] else o for o in overrides]


def migrate_legacy(cfg: DictConfig) -> DictConfig:
    """Bring a config written by an older sac_runner (a run's config.yaml) to the current layout, in place:
    optimizer sections `{classname: torch.optim.Adam, lr: ...}` become `{_target_: ..., _partial_: true, lr: ...}`.
    Returns cfg."""
    for name in OPTIMIZERS:
        section = cfg.get(name)
        if isinstance(section, DictConfig) and "classname" in section:
            legacy = ("classname", "_target_", "_partial_")
            kwargs = {k: v for k, v in section.items_ex(resolve=False) if k not in legacy}
            with open_dict(cfg):
                cfg[name] = {"_target_": section.classname, "_partial_": True, **kwargs}
    return cfg


def _fail(key, value, expected, fix):
    raise ConfigError(f"{key}={value!r} {expected}; {fix}")


def _get(cfg, key):
    try:
        return OmegaConf.select(cfg, key, throw_on_missing=True)
    except Exception:  # missing mandatory value (???)
        raise ConfigError(f"{key} is required but not set; add {key}=<value> to the command line") from None


def _int(cfg, key, minimum, example):
    v = _get(cfg, key)
    if isinstance(v, bool) or not isinstance(v, numbers.Real) or (isinstance(v, float) and not v.is_integer()):
        _fail(key, v, "is not an integer", f"use e.g. {key}={example}")
    if v < minimum:
        bound = "positive" if minimum == 1 else f">= {minimum}"
        _fail(key, v, f"must be {bound}", f"use e.g. {key}={example}")
    OmegaConf.update(cfg, key, int(v))  # 1e6 on the command line arrives as a float
    return int(v)


def _float(cfg, key, lo, hi, example, lo_open=True, hi_open=False, optional=False):
    v = _get(cfg, key)
    if v is None and optional:
        return None
    if isinstance(v, bool) or not isinstance(v, numbers.Real) or not math.isfinite(v):
        _fail(key, v, "is not a finite number", f"use e.g. {key}={example}")
    low_ok = lo is None or (v > lo if lo_open else v >= lo)
    high_ok = hi is None or (v < hi if hi_open else v <= hi)
    if not (low_ok and high_ok):
        left, right = "(" if lo_open else "[", ")" if hi_open or hi is None else "]"
        interval = f"{left}{'-inf' if lo is None else lo}, {'inf' if hi is None else hi}{right}"
        _fail(key, v, f"is outside {interval}", f"use e.g. {key}={example}")
    OmegaConf.update(cfg, key, float(v))
    return float(v)


def _choice(cfg, key, choices):
    v = _get(cfg, key)
    if v not in choices:
        _fail(key, v, f"is not one of {', '.join(map(str, choices))}", f"use e.g. {key}={choices[0]}")
    return v


def _sizes(cfg, key):
    v = _get(cfg, key)
    if not isinstance(v, (list, ListConfig)) or not all(
        isinstance(h, int) and not isinstance(h, bool) and h > 0 for h in v
    ):
        _fail(
            key,
            OmegaConf.to_object(v) if isinstance(v, ListConfig) else v,
            "must be a list of positive integers",
            f"use e.g. '{key}=[256,256]'",
        )


def _optimizer(cfg, name):
    key, fix = f"{name}._target_", f"use e.g. {name}._target_=torch.optim.Adam"
    target = _get(cfg, key)
    hydra_log = logging.getLogger("hydra.utils")  # get_class logs its (multi-line) error before raising it
    was_disabled, hydra_log.disabled = hydra_log.disabled, True
    try:
        cls = get_class(target) if isinstance(target, str) else None
    except (ImportError, ValueError):  # no such module or attribute; not a class
        cls = None
    finally:
        hydra_log.disabled = was_disabled
    if cls is None:
        _fail(key, target, "is not an importable class", fix)
    if not issubclass(cls, torch.optim.Optimizer):
        _fail(key, target, "is not a torch.optim.Optimizer", fix)
    partial = _get(cfg, f"{name}._partial_")
    if partial is not True:
        _fail(
            f"{name}._partial_",
            partial,
            "must be true (the parameters are passed when the agent is built)",
            f"add {name}._partial_=true",
        )
    _float(cfg, f"{name}.lr", 0.0, None, 3e-4)


def _is_image(space: gym.Space) -> bool:
    """Pixels: a Box of bytes with two or three axes (height, width[, channels])."""
    return isinstance(space, gym.spaces.Box) and space.dtype == np.uint8 and len(space.shape) in (2, 3)


def _extra_for(env_id: str) -> str:
    """The sac_runner extra that installs an environment's dependencies, for the fix of a failed make."""
    extra = SUITES.get(suite(env_id), (None, None))[1]
    return f"pip install 'sac_runner[{extra}]'" if extra else "install the environment's dependencies"


# env configs (as YAML) already probed in this process: sac-train checks the env before it creates the
# run directory (runs.RunDirCallback) and again in validate(); the probe makes the environment once
_CHECKED_ENVS: set[str] = set()


def validate_env(cfg: DictConfig) -> None:
    """Check that cfg.env names an environment SAC can train on: registered (an id written `module:id`
    imports its module first), creatable, with a bounded Box action space and flat Box observations."""
    try:
        env_id = OmegaConf.select(cfg, "env.id", throw_on_missing=True)
    except Exception:  # ??? (env=generic without env.id)
        raise ConfigError(
            "env.id is not set; choose the environment with env=<Gymnasium id>, e.g. env=Hopper-v5 "
            "(sac-train --help lists the presets)"
        ) from None
    if not isinstance(env_id, str) or not env_id:
        _fail("env.id", env_id, "is not a Gymnasium id", "use e.g. env=Pendulum-v1 or env=MountainCarContinuous-v0")
    key = OmegaConf.to_yaml(cfg.env, resolve=True)
    if key in _CHECKED_ENVS:
        return
    module, _, name = env_id.rpartition(":")
    if module:  # gymnasium's `module:id`: the module registers the environment when imported
        try:
            importlib.import_module(module)
        except Exception as e:  # noqa: BLE001 - whatever the import raised, it is the user's module
            raise ConfigError(
                f"env.id={env_id!r}: importing {module} failed ({type(e).__name__}: {e}); "
                f"check that {module} is importable and registers {name}"
            ) from None
    if name not in gym.registry:
        raise ConfigError(unknown_env_message(env_id if not module else name, key="env.id"))
    try:
        probe = _envs.make_env(cfg.env)
    except gym.error.DependencyNotInstalled as e:
        msg = " ".join(str(e).split())[:200]
        raise ConfigError(
            f"env.id={env_id!r} needs a package that is not installed ({msg}); {_extra_for(name)}"
        ) from None
    except Exception as e:  # bad kwargs, ...
        msg = " ".join(str(e).split())[:300]
        raise ConfigError(
            f"env.id={env_id!r} could not be created ({type(e).__name__}: {msg}); "
            f"check env.kwargs and the environment's extra dependencies ({_extra_for(name)})"
        ) from None
    try:
        act, obs = probe.action_space, probe.observation_space
    finally:
        probe.close()
    if not isinstance(act, gym.spaces.Box):
        raise ConfigError(
            f"env.id={env_id!r} has a {type(act).__name__} action space; SAC here needs a "
            f"continuous Box action space (e.g. env=CartPoleContinuous-v1 instead of CartPole-v1)"
        )
    if not (act.is_bounded("both")):
        raise ConfigError(
            f"env.id={env_id!r} has an unbounded action space; SAC's tanh policy needs finite "
            f"bounds (wrap it with gymnasium.wrappers.ClipAction in a registered env)"
        )
    if _is_image(obs):
        raise ConfigError(
            f"env.id={env_id!r} has image observations (Box{obs.shape} of uint8); sac_runner's "
            f"networks take state vectors: use a state-based task, or register a wrapper that turns the "
            f"images into features"
        )
    if not isinstance(obs, gym.spaces.Box):
        raise ConfigError(
            f"env.id={env_id!r} has a {type(obs).__name__} observation space; only Box "
            f"observations are supported (flatten it in a registered wrapper)"
        )
    _CHECKED_ENVS.add(key)


def gradient_steps(total_steps: int, learning_starts: int, n_envs: int, utd_ratio: float) -> int:
    """How many gradient steps a run makes: algorithm.utd_ratio per env step collected from learning_starts
    on, counted in steps of n_envs (as training/trainer.py's learn() owes them)."""
    first = -(-learning_starts // n_envs)  # the first collection (in steps of n_envs) that is learnt from
    last = -(-total_steps // n_envs) - 1
    return int(max(0, last - first + 1) * n_envs * utd_ratio)


def _check_gradient_steps(algo: DictConfig) -> None:
    total, starts = algo.total_steps, algo.learning_starts
    if gradient_steps(total, starts, algo.n_envs, algo.utd_ratio) == 0:
        raise ConfigError(
            f"algorithm.total_steps={total} leaves no gradient step after the algorithm.learning_starts={starts} "
            f"random warm-up steps (algorithm.utd_ratio={algo.utd_ratio:g}); raise algorithm.total_steps or lower "
            f"algorithm.learning_starts, e.g. algorithm.learning_starts={total // 2}"
        )


def validate(cfg: DictConfig) -> DictConfig:
    """Check types and ranges of every key we use, normalising numbers in place (after migrate_legacy). Returns cfg."""
    migrate_legacy(cfg)
    with open_dict(cfg):
        _int(cfg, "seed", 0, 1)
        _choice(cfg, "device", ["cpu", "cuda", "auto"])
        if cfg.device == "cuda" and not torch.cuda.is_available():
            raise ConfigError("device='cuda' but no CUDA device is available; use device=cpu or device=auto")
        if _get(cfg, "threads") != "auto":
            _int(cfg, "threads", 1, "1 (or threads=auto)")
        if _get(cfg, "compile") is not None:  # None: a run config from before the key existed
            _choice(cfg, "compile", ["auto", False, True])
        if _get(cfg, "cuda_graph") is not None:
            _choice(cfg, "cuda_graph", [False, True])
        _choice(cfg, "objective.metric", list(OBJECTIVES))
        _int(cfg, "objective.last", 1, 3)

        a = "algorithm"
        total = _int(cfg, f"{a}.total_steps", 1, 100000)
        _int(cfg, f"{a}.n_envs", 1, 1)
        _int(cfg, f"{a}.learning_starts", 0, 5000)
        buffer = _int(cfg, f"{a}.buffer_size", 1, 1000000)
        batch = _int(cfg, f"{a}.batch_size", 1, 256)
        if batch > buffer:
            raise ConfigError(
                f"{a}.batch_size={batch} is larger than {a}.buffer_size={buffer}; "
                f"lower the batch size or raise the buffer size"
            )
        _float(cfg, f"{a}.discount", 0.0, 1.0, 0.99)
        _float(cfg, f"{a}.tau", 0.0, 1.0, 0.005)
        _float(cfg, f"{a}.utd_ratio", 0.0, None, 1.0)
        _choice(cfg, f"{a}.entropy_mode", ["auto", "fixed"])
        _float(cfg, f"{a}.init_entropy_coef", 0.0, None, 0.1)
        _float(cfg, f"{a}.target_entropy", None, None, -1.0, optional=True)
        _float(cfg, f"{a}.max_grad_norm", 0.0, None, 1.0, optional=True)
        _int(cfg, f"{a}.eval_interval", 1, min(5000, total))
        _int(cfg, f"{a}.nb_evals", 1, 10)
        _int(cfg, f"{a}.log_interval", 1, 1000)
        _check_gradient_steps(cfg.algorithm)

        _sizes(cfg, "architecture.actor_hidden_sizes")
        _sizes(cfg, "architecture.critic_hidden_sizes")
        _choice(cfg, "architecture.activation", list(ACTIVATIONS))
        lo = _float(cfg, "architecture.log_std_min", None, None, -5.0)
        _float(cfg, "architecture.log_std_max", lo, None, 2.0)
        _int(cfg, "architecture.n_critics", 1, 2)

        for name in OPTIMIZERS:
            _optimizer(cfg, name)

        check_logger(cfg)  # the logger.* keys (sac_runner/trackers/settings.py)
        validate_env(cfg)
    return cfg
