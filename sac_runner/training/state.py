"""The run's live state, apart from the networks' weights: progress counters, the loop's generator, the
training environments' current observations and episodes, and the global generators; RunState turns it into
a checkpoint (checkpoint.py) and back."""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field, fields
from pathlib import Path

import numpy as np
import torch
from omegaconf import OmegaConf

from sac_runner.envs import get_env_states, set_env_states
from sac_runner.errors import CheckpointError
from sac_runner.training.checkpoint import Checkpoint, state_dict_mismatch


@dataclass
class Progress:
    """Counters and history that every checkpoint carries."""

    env_steps: int = 0
    updates: int = 0
    update_debt: float = 0.0
    episodes: int = 0
    best_return: float = -float("inf")
    best_step: int = -1
    last_return: float | None = None
    evals: list = field(default_factory=list)  # [env_steps, mean, std, min, max]
    next_eval: int = 0  # env steps of the next evaluation and of the next training log
    next_log: int = 0
    # seconds spent training over all sessions, from env step timed_from_step on (> 0: resumed from a
    # checkpoint written before runs were timed)
    train_seconds: float = 0.0
    timed_from_step: int = 0
    # the gradient step from which the update is the compiled one (training/steps.py; None: not chosen)
    compiled_from: int | None = None


@dataclass
class Resumed:
    """What `RunState.restore` could bring back: a resumed run reports it in one line."""

    env_steps: int
    env_restored: bool  # the training environments continue their episodes (else: fresh episodes)
    refill_until: int  # > 0: the buffer was saved empty, no gradient step before it holds this many


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def derived_seed(*entropy: int) -> int:
    """A seed in [0, 2**31) drawn from a SeedSequence over `entropy` (e.g. the run's seed and a step)."""
    return int(np.random.SeedSequence([int(e) for e in entropy]).generate_state(1)[0] >> 1)


def to_host(tree):
    """`tree` (dicts, lists, tuples of tensors and plain values) with every tensor on the CPU."""
    if isinstance(tree, torch.Tensor):
        return tree.cpu()
    if isinstance(tree, dict):
        return {k: to_host(v) for k, v in tree.items()}
    if isinstance(tree, (list, tuple)):
        return type(tree)(to_host(v) for v in tree)
    return tree


def global_rng_states() -> dict:
    """Python's, NumPy's and torch's global generator states, as plain containers and tensors."""
    version, internal, gauss = random.getstate()
    _, keys, pos, has_gauss, cached = np.random.get_state(legacy=True)  # type: ignore[misc]
    return {
        "python": [version, list(internal), gauss],
        "numpy": {
            "keys": torch.from_numpy(np.asarray(keys).astype(np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached_gaussian": float(cached),
        },
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
    }


def set_global_rng_states(state: dict) -> None:
    version, internal, gauss = state["python"]
    random.setstate((int(version), tuple(int(x) for x in internal), gauss))
    n = state["numpy"]
    np.random.set_state(
        ("MT19937", n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached_gaussian"])
    )
    torch.set_rng_state(state["torch"])
    cuda = state.get("cuda")
    if cuda is not None and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(cuda)


class RunState:
    """Everything a run changes as it goes, apart from the networks' weights: progress, the generator of
    warm-up actions and evaluation seeds, the current observation and episode counters of each training
    environment, and the last gradient step's statistics. It turns the whole run into a checkpoint and back.

    Args:
        cfg: the run's resolved config.
        agent: the SAC agent; buffer: its ReplayBuffer; envs: the training vector env.
        obs_dim, act_dim: the flattened observation and action sizes.
    """

    def __init__(self, cfg, agent, buffer, envs, obs_dim: int, act_dim: int):
        self.cfg, self.agent, self.buffer, self.envs = cfg, agent, buffer, envs
        self.obs_dim, self.act_dim = obs_dim, act_dim
        self.save_replay_buffer = bool(OmegaConf.select(cfg, "checkpoint.save_replay_buffer", default=True))
        self.progress = Progress()
        # one generator for everything random outside torch: warm-up actions and evaluation seeds
        self.rng = np.random.default_rng(int(cfg.seed))
        n = envs.num_envs
        self.obs = np.zeros((n, obs_dim), np.float32)  # the training envs' observations, set at their reset
        self.ep_return = np.zeros(n)
        self.ep_length = np.zeros(n, dtype=np.int64)
        self.stats: dict | None = None  # the last gradient step's statistics (logged at each log interval)
        self.session = (time.perf_counter(), 0.0)  # this session's start and the run's seconds before it

    def start_session(self, start: float) -> None:
        """Training (re)starts at time `start` (time.perf_counter()): the run's clock goes on from there."""
        self.session = (start, self.progress.train_seconds)

    def summary(self, run_dir: Path, wall: float, steps: int) -> dict:
        """The run's summary (what `sac-train` prints and writes to summary.json) after this session's `steps`
        env steps in `wall` seconds: env_steps, updates, wall_time_s and steps_per_second cover the whole run
        (its seconds from step timed_from_step on), `session` this session alone."""
        p = self.progress
        p.train_seconds = self.session[1] + wall
        return dict(
            run_dir=str(run_dir),
            env_id=self.cfg.env.id,
            env_steps=p.env_steps,
            updates=p.updates,
            wall_time_s=p.train_seconds,
            steps_per_second=(p.env_steps - p.timed_from_step) / max(p.train_seconds, 1e-9),
            timed_from_step=p.timed_from_step,
            session=dict(
                first_step=p.env_steps - steps,
                env_steps=steps,
                wall_time_s=wall,
                steps_per_second=steps / max(wall, 1e-9),
            ),
            best_return=p.best_return,
            best_step=p.best_step,
            last_return=p.last_return,
            video=None,
            interrupted=None,
        )

    def checkpoint(self, resumable: bool = False) -> Checkpoint:
        """The agent and progress; with `resumable`, also what an exact resume needs."""
        resume = None
        if resumable:
            resume = {
                "buffer": self.buffer.state_dict(with_data=self.save_replay_buffer),
                "rng": global_rng_states(),
                "trainer_rng": self.rng.bit_generator.state,
                "envs": get_env_states(self.envs),  # None where the environments cannot be restored exactly
                "obs": torch.as_tensor(np.array(self.obs)),
                "ep_return": torch.as_tensor(self.ep_return),
                "ep_length": torch.as_tensor(self.ep_length),
                "stats": None if self.stats is None else {k: float(v) for k, v in self.stats.items()},
            }
        return Checkpoint(
            env_id=self.cfg.env.id,
            obs_dim=self.obs_dim,
            act_dim=self.act_dim,
            config=dict(OmegaConf.to_container(self.cfg, resolve=True)),  # type: ignore[arg-type]
            agent=self.agent.state_dict(),
            progress={**vars(self.progress), "train_seconds": self.session[1] + time.perf_counter() - self.session[0]},
            resume=resume,
        )

    def restore(self, ckpt: Checkpoint, source: str) -> Resumed:
        """Continue from a checkpoint written with `resumable` (read from `source`): the run's state then."""
        expected = (self.cfg.env.id, self.obs_dim, self.act_dim)
        if (ckpt.env_id, ckpt.obs_dim, ckpt.act_dim) != expected:
            raise CheckpointError(
                f"{source} is for {ckpt.env_id} (observation size {ckpt.obs_dim}, action size "
                f"{ckpt.act_dim}), not for the run's {self.cfg.env.id} "
                f"({self.obs_dim}, {self.act_dim})"
            )
        if ckpt.resume is None:
            raise CheckpointError(
                f"{source} has no resume state (a best.pt, or a last.pt written by an older "
                f"sac_runner); resume needs a checkpoints/last.pt written by this version"
            )
        try:
            self.agent.load_state_dict(ckpt.agent)
        except (RuntimeError, KeyError, ValueError, TypeError, AttributeError) as e:
            raise CheckpointError(
                f"{source} does not fit the run's architecture or optimizers ({state_dict_mismatch(e)})"
            ) from None
        p, known = self.progress, {f.name for f in fields(Progress)}
        for k, v in ckpt.progress.items():
            if k in known:  # keys a later version may add are left alone
                setattr(p, k, v)
        if "train_seconds" not in ckpt.progress:  # written before runs were timed: time from here on
            p.timed_from_step = p.env_steps
        # host state (RNG states must be CPU byte tensors), also from a checkpoint loaded with map_location="cuda"
        r = to_host(ckpt.resume)
        try:
            self.buffer.load_state_dict(r["buffer"])
        except (ValueError, KeyError, RuntimeError) as e:
            raise CheckpointError(f"the replay buffer in {source} does not fit ({e})") from None
        refill_until = 0
        if "data" not in r["buffer"]:  # saved without its contents: fill it again before learning
            algo = self.cfg.algorithm
            refill_until = min(self.buffer.capacity, max(int(algo.learning_starts), int(algo.batch_size)))
        set_global_rng_states(r["rng"])
        self.rng.bit_generator.state = r["trainer_rng"]
        # fresh episodes seeded from the run's seed and the step, then, where possible, the saved states
        self.obs, _ = self.envs.reset(seed=derived_seed(int(self.cfg.seed), p.env_steps))
        restored = r["envs"] is not None and set_env_states(self.envs, r["envs"])
        if restored:
            self.obs = r["obs"].numpy().copy()
            self.ep_return = r["ep_return"].numpy().astype(np.float64)
            self.ep_length = r["ep_length"].numpy().astype(np.int64)
        self.stats = r.get("stats")
        return Resumed(env_steps=p.env_steps, env_restored=restored, refill_until=refill_until)
