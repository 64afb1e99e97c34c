"""Environments: our own CartPoleContinuous-v1, and the training / evaluation vector envs.

Actions are exchanged with the agent in the normalised box [-1, 1]^|A|; `ActionScaler` maps
them to the environment's own bounds, so the replay buffer and the critics never see raw units.
"""

from __future__ import annotations

import math
import os
import sys
import warnings

# pygame (used for rgb_array rendering) must not look for a display or a sound card
os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
os.environ.setdefault("SDL_AUDIODRIVER", "dummy")


def _default_mujoco_gl() -> None:
    """Headless MuJoCo rendering: without a display, use EGL (GPU drivers) or else OSMesa (software),
    whichever library is installed. An explicit MUJOCO_GL always wins."""
    if "MUJOCO_GL" in os.environ or os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"):
        return
    if not sys.platform.startswith("linux"):
        return
    from ctypes.util import find_library

    for backend, lib in (("egl", "EGL"), ("osmesa", "OSMesa")):
        if find_library(lib):
            os.environ["MUJOCO_GL"] = backend
            if backend == "osmesa":
                os.environ.setdefault("PYOPENGL_PLATFORM", "osmesa")
            return


_default_mujoco_gl()

import gymnasium as gym
import numpy as np
import torch
from gymnasium.envs.classic_control.cartpole import CartPoleEnv
from gymnasium.envs.classic_control.continuous_mountain_car import Continuous_MountainCarEnv
from gymnasium.envs.classic_control.pendulum import PendulumEnv
from gymnasium.vector import AutoresetMode, SyncVectorEnv

CARTPOLE_CONTINUOUS_ID = "CartPoleContinuous-v1"


class CartPoleContinuousEnv(CartPoleEnv):
    """Classic cart-pole with a continuous force: action a in [-1, 1] pushes with 10 * a newtons.

    Dynamics, observation, reset distribution, termination and rendering are those of
    Gymnasium's CartPole-v1 (Euler integration, dt = 0.02); the reward is +1 on every step,
    the terminating one included, so a 500-step episode returns 500.
    """

    def __init__(self, render_mode: str | None = None):
        super().__init__(render_mode=render_mode)
        self.action_space = gym.spaces.Box(-1.0, 1.0, shape=(1,), dtype=np.float32)

    def step(self, action):
        assert self.state is not None, "call reset() before step()"
        a = float(np.clip(np.asarray(action, dtype=np.float64).reshape(-1)[0], -1.0, 1.0))
        force = self.force_mag * a
        x, x_dot, theta, theta_dot = self.state
        costheta, sintheta = math.cos(theta), math.sin(theta)
        temp = (force + self.polemass_length * theta_dot**2 * sintheta) / self.total_mass
        thetaacc = (self.gravity * sintheta - costheta * temp) / (
            self.length * (4.0 / 3.0 - self.masspole * costheta**2 / self.total_mass)
        )
        xacc = temp - self.polemass_length * thetaacc * costheta / self.total_mass
        x = x + self.tau * x_dot
        x_dot = x_dot + self.tau * xacc
        theta = theta + self.tau * theta_dot
        theta_dot = theta_dot + self.tau * thetaacc
        self.state = np.array((x, x_dot, theta, theta_dot), dtype=np.float64)
        terminated = bool(
            x < -self.x_threshold
            or x > self.x_threshold
            or theta < -self.theta_threshold_radians
            or theta > self.theta_threshold_radians
        )
        if self.render_mode == "human":
            self.render()
        return np.array(self.state, dtype=np.float32), 1.0, terminated, False, {}


def register_envs() -> None:
    """Register the environments sac_runner ships (idempotent)."""
    if CARTPOLE_CONTINUOUS_ID not in gym.registry:
        gym.register(
            id=CARTPOLE_CONTINUOUS_ID,
            entry_point="sac_runner.envs:CartPoleContinuousEnv",
            max_episode_steps=500,
            reward_threshold=475.0,
        )


register_envs()


class ActionScaler:
    """Maps normalised actions in [-1, 1] to a Box action space's [low, high]."""

    def __init__(self, space: gym.Space):
        if not isinstance(space, gym.spaces.Box):
            raise ValueError(f"SAC needs a Box action space, not {type(space).__name__}")
        low = np.asarray(space.low, dtype=np.float64)
        high = np.asarray(space.high, dtype=np.float64)
        if not (np.all(np.isfinite(low)) and np.all(np.isfinite(high))):
            raise ValueError("action space bounds must be finite for a squashed SAC policy")
        self.low, self.high = low, high
        self.dtype = space.dtype

    def to_env(self, action: np.ndarray) -> np.ndarray:
        a = np.clip(action, -1.0, 1.0)
        return (self.low + (a + 1.0) * 0.5 * (self.high - self.low)).astype(self.dtype)


_MUJOCO_WARNINGS_ROUTED = False


def _route_mujoco_warnings(env_id: str) -> None:
    """MuJoCo prints each warning of a model's compiler to stderr for every copy of the model (a run
    makes one per training and evaluation environment: a dozen identical deprecation notices for
    Gymnasium's own XML files with MuJoCo 4). Route them through Python's `warnings`, once each."""
    global _MUJOCO_WARNINGS_ROUTED
    if _MUJOCO_WARNINGS_ROUTED:
        return
    try:
        if "mujoco" not in str(gym.spec(env_id).entry_point):
            return
        import mujoco
    except (gym.error.Error, ImportError):
        return
    seen: set[str] = set()

    def warn_once(message: str) -> None:
        if message not in seen:
            seen.add(message)
            warnings.warn(f"MuJoCo: {message}", RuntimeWarning, stacklevel=2)

    mujoco.set_mju_user_warning(warn_once)
    _MUJOCO_WARNINGS_ROUTED = True


def _env_fn(env_cfg, render_mode: str | None = None):
    kwargs = dict(env_cfg.get("kwargs") or {})
    max_steps = env_cfg.get("max_episode_steps")

    def make():
        register_envs()  # worker processes of async vector envs import us afresh
        _route_mujoco_warnings(env_cfg.id)
        extra = {"max_episode_steps": int(max_steps)} if max_steps else {}
        return gym.make(env_cfg.id, render_mode=render_mode, **extra, **kwargs)

    return make


def make_env(env_cfg, render_mode: str | None = None) -> gym.Env:
    """One environment, as configured in `cfg.env`."""
    return _env_fn(env_cfg, render_mode)()


def make_vector_env(env_cfg, n_envs: int) -> gym.vector.VectorEnv:
    """`n_envs` copies in one synchronous vector env with SAME_STEP autoreset.

    With SAME_STEP, the observation returned for a finished sub-environment is already the
    first observation of its next episode, and the true last observation of the finished
    episode is in ``infos["final_obs"]``; no step is ever a "reset step" to be dropped.
    """
    return SyncVectorEnv([_env_fn(env_cfg) for _ in range(n_envs)], autoreset_mode=AutoresetMode.SAME_STEP)


def transition_next_obs(next_obs: np.ndarray, infos: dict, done: np.ndarray) -> np.ndarray:
    """The s' to store for each sub-env: the true last observation where an episode ended."""
    if not np.any(done):
        return next_obs
    real = np.array(next_obs, copy=True)
    final = infos["final_obs"]
    mask = infos.get("_final_obs", done)
    for i in np.flatnonzero(mask):
        real[i] = final[i]
    return real


# ---------------------------------------------------------------------------- saving environment state
# Environments whose whole dynamic state is `unwrapped.state` (a NumPy array) plus their generator, so
# that a checkpoint can restore them exactly. Others (MuJoCo, Box2D, ...) hold state in simulators that
# Gymnasium gives no access to; a resumed run starts fresh episodes there.
RESTORABLE_ENVS = (CartPoleEnv, PendulumEnv, Continuous_MountainCarEnv)


def flat_size(space: gym.Space) -> int:
    """The number of values in one (flattened) element of a Box space."""
    return int(np.prod(space.shape or ()))


def _time_limit(env):
    while env is not None:
        if isinstance(env, gym.wrappers.TimeLimit):
            return env
        env = getattr(env, "env", None)
    return None


def get_env_states(vec_env) -> list[dict] | None:
    """The state of each sub-environment of a SyncVectorEnv as tensors and plain values, or None when
    one of them is not a RESTORABLE_ENVS environment."""
    envs = getattr(vec_env, "envs", None)
    if envs is None:
        return None
    states = []
    for env in envs:
        u = env.unwrapped
        if not isinstance(u, RESTORABLE_ENVS) or not isinstance(getattr(u, "state", None), np.ndarray):
            return None
        limit = _time_limit(env)
        states.append(
            {
                "state": torch.from_numpy(np.array(u.state)),
                "np_random": u.np_random.bit_generator.state,
                "elapsed_steps": None if limit is None else limit._elapsed_steps,
                "steps_beyond_terminated": getattr(u, "steps_beyond_terminated", None),
            }
        )
    return states


def set_env_states(vec_env, states: list[dict]) -> bool:
    """Put back what get_env_states saved, into a `vec_env` that has been reset. False (nothing changed)
    if its sub-environments are not the restorable kind or not as many as the saved ones."""
    envs = getattr(vec_env, "envs", None)
    if envs is None or len(envs) != len(states) or get_env_states(vec_env) is None:
        return False
    for env, s in zip(envs, states):
        u = env.unwrapped
        u.state = s["state"].numpy().copy()
        u.np_random.bit_generator.state = s["np_random"]
        limit = _time_limit(env)
        if limit is not None and s["elapsed_steps"] is not None:
            limit._elapsed_steps = int(s["elapsed_steps"])
        if hasattr(u, "steps_beyond_terminated"):
            u.steps_beyond_terminated = s["steps_beyond_terminated"]
    return True
