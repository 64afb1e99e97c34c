"""A trained agent in Python: `load_policy(run dir or checkpoint)` returns a Policy, a callable from observations to
environment actions. sac-visualize loads its agent through it.

    import sac_runner
    policy = sac_runner.load_policy("outputs/Pendulum-v1/2026-11-25/10-00-00-000000-1234")
    env = policy.make_env()
    obs, _ = env.reset(seed=0)
    obs, reward, terminated, truncated, _ = env.step(policy(obs))

The actor is rebuilt from the run's config.yaml (a lone checkpoint file: from the config it carries) and the
weights of checkpoints/best.pt (which="last": last.pt). Every problem with the path, the config or the checkpoint
is a ConfigError or CheckpointError (sac_runner.errors) whose message is one line naming the problem and the fix.
"""

from __future__ import annotations

import json
import zipfile
from os import PathLike
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf

from sac_runner.envs import ActionScaler, flat_size, make_env, make_vector_env
from sac_runner.errors import CheckpointError, ConfigError
from sac_runner.rundir import CHECKPOINT_DIR, CONFIG_FILE, FAILED_FILE, SUMMARY_FILE, check_run_dir, is_run_dir
from sac_runner.training.checkpoint import Checkpoint, load_checkpoint, state_dict_mismatch
from sac_runner.training.evaluation import evaluate, policy_action

WHICH = ("best", "last")


def _failure(job_dir: Path) -> dict | None:
    """The record of a sweep job that failed (its failed.json), or None; also None when the job was resumed
    after it failed (its summary.json is newer)."""
    path, summary = job_dir / FAILED_FILE, job_dir / SUMMARY_FILE
    if not path.is_file() or (summary.is_file() and summary.stat().st_mtime > path.stat().st_mtime):
        return None
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError):
        record = {}
    return record if isinstance(record, dict) else {}


def _failure_text(record: dict) -> str:
    message = " ".join(str(record.get("message", "")).split())
    return f"{record.get('error', 'an error')}: {message[:200]}" if message else str(record.get("error", "an error"))


def _owning_run(path: Path) -> Path | None:
    """The run directory a file inside it belongs to (<run>/x or <run>/.hydra/x), or None."""
    for d in (path.parent, path.parent.parent):
        if is_run_dir(d):
            return d.resolve()
    return None


def locate(path: str | PathLike, which: str = "best") -> tuple[Path | None, Path]:
    """(run directory or None, checkpoint file) for a run directory (also a sweep's job directory), a run's
    config.yaml (meaning its run) or a checkpoint file; a one-line ConfigError for anything else."""
    if which not in WHICH:
        raise ConfigError(f"which={which!r} is not a checkpoint of a run; use which='best' or which='last'")
    p = Path(path).expanduser()
    if p.is_file() and p.name == CONFIG_FILE:  # <run>/config.yaml or <run>/.hydra/config.yaml: that run
        p = p.parent.parent if p.parent.name == ".hydra" else p.parent
    if p.is_file():
        if p.suffix != ".pt" and not zipfile.is_zipfile(p):
            run = _owning_run(p)
            fix = f"pass its run directory: {run}" if run else "pass a run directory or a checkpoint file (.pt)"
            raise ConfigError(f"{p} is not a checkpoint; {fix}")
        if which != "best":
            raise ConfigError(
                f"{p} is already a checkpoint file; the last checkpoint (--last, which='last') is one of a run "
                f"directory's: pass the run directory, or the file alone"
            )
        run = p.parent.parent if p.parent.name == CHECKPOINT_DIR and is_run_dir(p.parent.parent) else None
        return run, p
    failed = _failure(p) if p.is_dir() else None
    name, other = f"{which}.pt", "last.pt" if which == "best" else "best.pt"
    if failed is not None and not (p / CHECKPOINT_DIR / name).is_file():
        raise ConfigError(
            f"{p} is a sweep job that failed ({_failure_text(failed)}) before writing {CHECKPOINT_DIR}/{name}; "
            f"see {p / FAILED_FILE}"
        )
    run = check_run_dir(p)
    ckpt = run / CHECKPOINT_DIR / name
    if not ckpt.is_file():
        hint = ""
        if (run / CHECKPOINT_DIR / other).is_file():
            switch = "drop --last; which='best'" if which == "last" else "add --last; which='last'"
            hint = f"; {other} exists ({switch} in Python)"
        raise ConfigError(f"{run} has no {CHECKPOINT_DIR}/{name} (the run stopped before its first evaluation){hint}")
    return run, ckpt


def _config(run: Path | None, ckpt: Checkpoint, ckpt_path: Path) -> tuple[DictConfig, str]:
    """The config the actor is built from and where it came from (for messages)."""
    if run is None:  # a lone checkpoint carries the config it was trained with
        cfg, source = OmegaConf.create(ckpt.config or {}), f"the config stored in {ckpt_path}"
    else:
        source = str(run / CONFIG_FILE)
        try:
            cfg = OmegaConf.load(run / CONFIG_FILE)  # type: ignore[assignment]  # checked below
        except Exception as e:  # unreadable or not YAML
            raise ConfigError(f"cannot read {source} ({type(e).__name__})") from None
    if not isinstance(cfg, DictConfig) or not all(k in cfg for k in ("env", "architecture", "algorithm")):
        raise ConfigError(f"{source} is not a sac-train config")
    return cfg, source


def _device(device: str | torch.device) -> torch.device:
    from sac_runner.agent.factory import resolve_device

    try:
        dev = resolve_device(device) if isinstance(device, str) else torch.device(device)
    except (RuntimeError, TypeError):
        raise ConfigError(f"device={device!r} is not a device; use 'cpu', 'cuda' or 'auto'") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device={str(device)!r} but no CUDA device is available; use device='cpu'")
    return dev


class Policy:
    """A trained SAC actor as a function from observations to environment actions (see load_policy).

    policy(obs) takes one observation (the env's observation shape) or a batch (a leading batch axis) and
    returns the action(s) in the env's own action bounds, as a NumPy array of the action space's dtype:
    tanh of the Gaussian mean when deterministic (the default), else a sample drawn with torch's generator.

    Attributes: env_id, config (the run's config, an OmegaConf DictConfig), checkpoint (its path), run_dir (None
    for a lone checkpoint file), env_steps (the training step the checkpoint was written at), device,
    deterministic, observation_space, action_space, actor (the torch module, in eval mode), failure (the
    failed.json record of a sweep job that failed after this checkpoint, else None).
    """

    def __init__(
        self,
        actor: torch.nn.Module,
        config: DictConfig,
        checkpoint: Path,
        run_dir: Path | None,
        env_steps: int | None,
        device: torch.device,
        deterministic: bool,
        observation_space: gym.spaces.Box,
        action_space: gym.spaces.Box,
        failure: dict | None = None,
    ) -> None:
        self.actor, self.config, self.checkpoint, self.run_dir = actor, config, checkpoint, run_dir
        self.env_id: str = str(config.env.id)
        self.env_steps, self.device, self.deterministic = env_steps, device, bool(deterministic)
        self.observation_space, self.action_space, self.failure = observation_space, action_space, failure
        self._scaler = ActionScaler(action_space)

    def __call__(self, obs: Any, deterministic: bool | None = None) -> np.ndarray:
        """The action for one observation, or the actions for a batch of them (see the class docstring)."""
        if isinstance(obs, torch.Tensor):
            obs = obs.detach().cpu().numpy()
        x = np.asarray(obs, dtype=np.float32)
        shape = tuple(self.observation_space.shape or ())
        if x.shape == shape:
            batch = None
        elif x.ndim == len(shape) + 1 and x.shape[1:] == shape:
            batch = x.shape[0]
        else:
            raise ValueError(
                f"an observation of shape {x.shape} does not fit {self.env_id}, whose observations have shape "
                f"{shape} (or {('N', *shape)} for a batch of N)"
            )
        det = self.deterministic if deterministic is None else bool(deterministic)
        actions = self._scaler.to_env(policy_action(self.actor, x.reshape(batch or 1, -1), self.device, det))
        act_shape = tuple(self.action_space.shape or ())
        return actions.reshape(act_shape if batch is None else (batch, *act_shape))

    def make_env(self, render_mode: str | None = None) -> gym.Env:
        """A new environment as the run trained on (its env.id, env.kwargs and env.max_episode_steps); its
        actions are in its own bounds, which is what the policy returns."""
        return make_env(self.config.env, render_mode=render_mode)

    def evaluate(self, episodes: int = 10, seed: int = 0) -> np.ndarray:
        """The return of each of `episodes` episodes, episode i seeded with seed + i, played with the
        deterministic actions (as sac-visualize and the run's evaluations play them)."""
        if episodes < 1 or seed < 0:
            raise ValueError(f"episodes={episodes}, seed={seed}: need episodes >= 1 and seed >= 0")
        envs = make_vector_env(self.config.env, episodes)
        try:
            return evaluate(self.actor, envs, [seed + i for i in range(episodes)], self.device)
        finally:
            envs.close()

    def __repr__(self) -> str:
        return f"Policy({self.env_id}, {self.checkpoint}, env step {self.env_steps}, device {self.device})"


def load_policy(
    path: str | PathLike, device: str | torch.device = "cpu", deterministic: bool = True, which: str = "best"
) -> Policy:
    """The trained actor of a run directory (also a sweep's job directory, or the run's config.yaml) or of a
    checkpoint file, as a Policy on `device` ('cpu', 'cuda', 'auto': cuda when available, or a torch.device).
    which: 'best' (checkpoints/best.pt, the best evaluation) or 'last' (last.pt) of a run directory.
    Raises a one-line ConfigError or CheckpointError (sac_runner.errors) for anything that cannot be loaded."""
    from sac_runner.agent.factory import make_actor

    run, ckpt_path = locate(path, which)
    dev = _device(device)
    ckpt = load_checkpoint(ckpt_path, map_location=dev)
    cfg, source = _config(run, ckpt, ckpt_path)
    env_id = cfg.env.id
    if ckpt.env_id != env_id:
        raise CheckpointError(
            f"checkpoint {ckpt_path} was trained on {ckpt.env_id}, but {source} is for {env_id}; pass the "
            f"checkpoint file on its own, or the run it belongs to"
        )
    try:
        probe = make_env(cfg.env)
    except Exception as e:  # a missing extra (MuJoCo, Box2D), bad kwargs, ...
        msg = " ".join(str(e).split())[:200]
        raise ConfigError(
            f"cannot create {env_id} ({type(e).__name__}: {msg}); install its extra, e.g. pip install "
            f"'sac_runner[mujoco]'"
        ) from None
    try:
        obs_space, act_space = probe.observation_space, probe.action_space
    finally:
        probe.close()
    obs_dim, act_dim = flat_size(obs_space), flat_size(act_space)
    if (ckpt.obs_dim, ckpt.act_dim) != (obs_dim, act_dim):
        raise CheckpointError(
            f"checkpoint {ckpt_path} expects observations of size {ckpt.obs_dim} and actions of size "
            f"{ckpt.act_dim}, but {env_id} as configured in {source} has {obs_dim} and {act_dim}"
        )
    try:
        actor = make_actor(cfg, obs_dim, act_dim, dev)
    except Exception as e:  # an edited or incomplete config
        raise ConfigError(f"cannot build the actor from {source} ({type(e).__name__}: {str(e)[:200]})") from None
    try:
        actor.load_state_dict(ckpt.agent["actor"])
    except (RuntimeError, TypeError, AttributeError) as e:
        sizes = list(cfg.architecture.actor_hidden_sizes)
        raise CheckpointError(
            f"checkpoint {ckpt_path} does not fit the actor of {source} "
            f"(architecture.actor_hidden_sizes={sizes}): {state_dict_mismatch(e)}"
        ) from None
    actor.eval()
    failure = _failure(run) if run is not None else None
    return Policy(
        actor,
        cfg,
        ckpt_path,
        run,
        ckpt.progress.get("env_steps"),
        dev,
        deterministic,
        obs_space,  # type: ignore[arg-type]  # validate_env admits Box spaces only
        act_space,  # type: ignore[arg-type]
        failure,
    )
