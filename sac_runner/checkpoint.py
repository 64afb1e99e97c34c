"""The run's state and its checkpoint format: what a run carries from step to step, how it is written
(atomically) and the single read path that training, resume and sac-visualize all use.

A checkpoint file (checkpoints/best.pt, checkpoints/last.pt) holds, in format 3:

    format         FORMAT_VERSION
    env_id         the Gymnasium id, and obs_dim / act_dim: the flattened sizes the networks were built for
    config         the resolved config of the run
    agent          SAC.state_dict(): actor, critic, target_critic, log_alpha, optimizers
    progress       the Progress counters and evaluation history
    resume         last.pt only: replay buffer, generator states, environment states, the loop's current
                   observation and episode counters

Everything is tensors and plain containers, read back with torch.load(weights_only=True). Format 1
(before the agent's entries were grouped under `agent`) is migrated when read; format 2 kept one optimizer
state per network, by name, which SAC.load_state_dict regroups into the optimizers of format 3 (a list).
"""

from __future__ import annotations

import os
import pickle
import random
import re
import zipfile
from dataclasses import dataclass, field, fields
from pathlib import Path

import numpy as np
import torch
from omegaconf import OmegaConf

from sac_runner.envs import get_env_states, set_env_states

FORMAT_VERSION = 3
AGENT_KEYS = ("actor", "critic", "target_critic", "log_alpha", "optimizers")


class CheckpointError(Exception):
    """A checkpoint that cannot be read or does not fit; the message is one line for the user."""


# ---------------------------------------------------------------------------------------------- run state
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
            progress=vars(self.progress).copy(),
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


# ----------------------------------------------------------------------------------------- the file format
@dataclass
class Checkpoint:
    """One checkpoint file's contents (see the module docstring)."""

    env_id: str
    obs_dim: int
    act_dim: int
    config: dict
    agent: dict
    progress: dict
    resume: dict | None = None

    def to_dict(self) -> dict:
        d = {"format": FORMAT_VERSION, **{f.name: getattr(self, f.name) for f in fields(self)}}
        if d["resume"] is None:
            del d["resume"]
        return d

    @classmethod
    def from_dict(cls, d: dict, path: Path) -> Checkpoint:
        """Check the format (migrating format 1) and the entries every checkpoint must have."""
        fmt = d.get("format") if isinstance(d, dict) else None
        if isinstance(fmt, int) and fmt > FORMAT_VERSION:
            raise CheckpointError(
                f"{path} was written by a newer sac_runner (checkpoint format {fmt}; this one reads "
                f"up to {FORMAT_VERSION}); upgrade sac_runner to load it"
            )
        if fmt == 1 and all(k in d for k in AGENT_KEYS):  # format 1: the agent's entries at the top level
            d = {**{k: v for k, v in d.items() if k not in AGENT_KEYS}, "agent": {k: d[k] for k in AGENT_KEYS}}
        elif fmt not in (2, FORMAT_VERSION):
            raise CheckpointError(f"{path} is not a sac_runner checkpoint (no checkpoint format found)")
        missing = [f.name for f in fields(cls) if f.name != "resume" and f.name not in d]
        if missing or not isinstance(d["agent"], dict) or "actor" not in d["agent"]:
            what = ", ".join(missing) if missing else "agent.actor"
            raise CheckpointError(
                f"{path} is an incomplete sac_runner checkpoint (no {what}); use another "
                f"checkpoint (checkpoints/last.pt or best.pt)"
            )
        return cls(**{f.name: d.get(f.name) for f in fields(cls)})  # type: ignore[arg-type]


def save_checkpoint(ckpt: Checkpoint, path: str | os.PathLike) -> None:
    """Write `ckpt` to a temporary file beside `path`, flush it to disk, then rename it over `path`.

    A crash at any moment leaves either the old complete file or the new complete one.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            torch.save(ckpt.to_dict(), f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    try:  # make the rename itself durable
        fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError:
        pass


def remove_stale_temporaries(ckpt_dir: Path) -> None:
    """Delete temporary files left by a writer killed in the middle of save_checkpoint."""
    for stale in Path(ckpt_dir).glob(".*.tmp-*"):
        stale.unlink(missing_ok=True)


def state_dict_mismatch(e: Exception) -> str:
    """The telling line of a load_state_dict error (its first line only names the module)."""
    lines = [line.strip() for line in str(e).splitlines() if line.strip()]
    if not lines:
        return type(e).__name__
    return (lines[1] if len(lines) > 1 and lines[0].startswith("Error(s) in loading") else lines[0])[:240]


def load_checkpoint(path: str | os.PathLike, map_location="cpu") -> Checkpoint:
    """Read a checkpoint without executing any pickled code; one-line CheckpointError otherwise."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    corrupted = CheckpointError(
        f"checkpoint {path} is truncated or corrupted; use another checkpoint (checkpoints/last.pt or best.pt)"
    )
    try:
        # torch.save writes a zip archive; anything else (a cut-off file: the archive's directory is at
        # its end) would otherwise reach torch's legacy unpickler and read as a refused object
        with open(path, "rb") as f:
            if not zipfile.is_zipfile(f):
                raise corrupted
        raw = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        found = re.search(r"Unsupported global: GLOBAL (\S+)", str(e))
        what = f"it would import {found.group(1)}" if found else " ".join(str(e).split())[:160]
        raise CheckpointError(
            f"checkpoint {path} holds objects that are not plain tensors or containers and was refused "
            f"(weights_only load: {what})"
        ) from None
    except OSError as e:
        raise CheckpointError(f"checkpoint {path} cannot be read ({e.strerror or type(e).__name__})") from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, ValueError) as e:
        raise CheckpointError(
            f"checkpoint {path} is truncated or corrupted ({type(e).__name__}); "
            f"use another checkpoint (checkpoints/last.pt or best.pt)"
        ) from None
    return Checkpoint.from_dict(raw, path)
