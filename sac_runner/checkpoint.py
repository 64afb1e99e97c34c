"""Checkpoints: written atomically, read with torch.load(weights_only=True)."""

from __future__ import annotations

import os
import pickle
import zipfile
from pathlib import Path

import torch

FORMAT_VERSION = 1


class CheckpointError(Exception):
    """A checkpoint that cannot be read or does not fit; the message is one line for the user."""


def atomic_torch_save(obj, path: str | os.PathLike) -> None:
    """Write `obj` to a temporary file beside `path`, flush it to disk, then rename it over `path`.

    A crash at any moment leaves either the old complete file or the new complete one.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            torch.save(obj, f)
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


def load_checkpoint(path: str | os.PathLike, map_location="cpu") -> dict:
    """Load a checkpoint without executing any pickled code; one-line CheckpointError otherwise."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else "unsupported content"
        raise CheckpointError(
            f"checkpoint {path} holds objects that are not plain tensors or containers and was refused "
            f"(weights_only load: {first[:160]})"
        ) from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError, ValueError) as e:
        raise CheckpointError(f"checkpoint {path} is truncated or corrupted ({type(e).__name__}); "
                              f"use another checkpoint (checkpoints/last.pt or best.pt)") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT_VERSION or "actor" not in ckpt:
        raise CheckpointError(f"{path} is not a sac_runner checkpoint (format {FORMAT_VERSION})")
    return ckpt
