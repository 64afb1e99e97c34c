"""Checkpoints: written atomically, read with torch.load(weights_only=True)."""

from __future__ import annotations

import os
import pickle
import re
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


def state_dict_mismatch(e: Exception) -> str:
    """The telling line of a load_state_dict error (its first line only names the module)."""
    lines = [line.strip() for line in str(e).splitlines() if line.strip()]
    if not lines:
        return type(e).__name__
    return (lines[1] if len(lines) > 1 and lines[0].startswith("Error(s) in loading") else lines[0])[:240]


def load_checkpoint(path: str | os.PathLike, map_location="cpu") -> dict:
    """Load a checkpoint without executing any pickled code; one-line CheckpointError otherwise."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    corrupted = CheckpointError(f"checkpoint {path} is truncated or corrupted; use another checkpoint "
                                f"(checkpoints/last.pt or best.pt)")
    try:
        # torch.save writes a zip archive; anything else (a cut-off file: the archive's directory is at
        # its end) would otherwise reach torch's legacy unpickler and read as a refused object
        with open(path, "rb") as f:
            if not zipfile.is_zipfile(f):
                raise corrupted
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
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
        raise CheckpointError(f"checkpoint {path} is truncated or corrupted ({type(e).__name__}); "
                              f"use another checkpoint (checkpoints/last.pt or best.pt)") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT_VERSION or "actor" not in ckpt:
        raise CheckpointError(f"{path} is not a sac_runner checkpoint (format {FORMAT_VERSION})")
    return ckpt
