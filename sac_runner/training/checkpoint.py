"""The checkpoint file format: how a checkpoint is written (atomically) and the single read path that training,
resume and sac-visualize all use. What goes into one is the run's state (state.py).

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
import re
import zipfile
from dataclasses import dataclass, fields
from pathlib import Path

import torch

from sac_runner.errors import CheckpointError

FORMAT_VERSION = 3
AGENT_KEYS = ("actor", "critic", "target_critic", "log_alpha", "optimizers")


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


def own_storage(tree):
    """`tree` (dicts, lists, tuples) with every tensor that views part of a larger storage replaced by a copy of
    its own: torch.save writes a view's whole storage (a population member's weights are rows of one stacked
    tensor, training/population.py), and loads it back as a view of all of it."""
    if isinstance(tree, torch.Tensor):
        whole = tree.untyped_storage().nbytes()
        return tree.clone() if whole > tree.numel() * tree.element_size() else tree
    if isinstance(tree, dict):
        return {k: own_storage(v) for k, v in tree.items()}
    if isinstance(tree, (list, tuple)):
        return type(tree)(own_storage(v) for v in tree)
    return tree


def save_checkpoint(ckpt: Checkpoint, path: str | os.PathLike) -> None:
    """Write `ckpt` to a temporary file beside `path`, flush it to disk, then rename it over `path`.

    A crash at any moment leaves either the old complete file or the new complete one.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            torch.save(own_storage(ckpt.to_dict()), f)
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
