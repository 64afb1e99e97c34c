"""The interface every tracker (TensorBoard, W&B, MLflow, the console) implements, and what it is told: the run
(RunInfo) at the start, scalars as they come, each evaluation, and the outcome (Outcome) at the end."""

from __future__ import annotations

import json
import os
import sys
import tempfile
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# the tracker run ids of a run directory, so that a resumed run continues the same tracker runs
IDS_FILE = "trackers.json"
_IDS_LOCK = threading.Lock()  # MLflow records its ids from its own thread


@dataclass
class RunInfo:
    """What a tracker needs to know about the run it records."""

    run_dir: Path
    config: dict  # the composed config, resolved (cfg as a plain dict)
    resumed: bool = False  # continuing a run (sac-train resume=...): continue its tracker runs
    start_step: int = 0  # the env step this session starts at
    total_steps: int = 0
    sweep_dir: Path | None = None  # a multirun's directory: its runs are grouped
    job: int | None = None  # the job's number in the multirun
    trial: int | None = None  # the Optuna trial number (hparams_search=optuna)
    overrides: list[str] = field(default_factory=list)  # the job's command-line overrides
    launch_dir: Path = field(default_factory=Path.cwd)  # where sac-train was started (local stores live there)

    @property
    def env_id(self) -> str:
        return str(self.config["env"]["id"])

    @property
    def seed(self) -> int:
        return int(self.config["seed"])

    @property
    def name(self) -> str:
        """A short run name: the environment and seed, with the trial or job number in a sweep."""
        base = f"{self.env_id} seed {self.seed}"
        if self.trial is not None:
            return f"trial {self.trial} {base}"
        if self.job is not None:
            return f"job {self.job} {base}"
        return base

    @property
    def group(self) -> str | None:
        """The sweep's name, shared by its runs: its directory, relative to the working directory if inside it."""
        if self.sweep_dir is None:
            return None
        path = self.sweep_dir.absolute()
        try:
            return str(path.relative_to(Path.cwd()))
        except ValueError:
            return str(path)

    def tags(self) -> dict[str, str]:
        """Plain facts about the run, as string tags."""
        tags = {"env_id": self.env_id, "seed": str(self.seed), "run_dir": str(self.run_dir.absolute())}
        if self.job is not None:
            tags["job"] = str(self.job)
        if self.trial is not None:
            tags["trial"] = str(self.trial)
        if self.group is not None:
            tags["sweep"] = self.group
        return tags


@dataclass
class Outcome:
    """How the run ended and what it achieved. status: finished | interrupted | pruned | failed."""

    status: str
    env_steps: int = 0
    final_return: float | None = None  # the last evaluation's mean return
    best_return: float | None = None
    best_step: int | None = None
    objective: float | None = None  # the value a sweeper maximises (cfg.objective), None if not finite
    video: Path | None = None  # videos/best_agent.mp4, when recorded
    best_checkpoint: Path | None = None  # checkpoints/best.pt, when written
    error: str | None = None  # failed: why

    def metrics(self) -> dict[str, float]:
        """The end-of-run numbers that are known, by name."""
        values = {
            "final_return": self.final_return,
            "best_return": self.best_return,
            "best_step": self.best_step,
            "objective": self.objective,
        }
        return {k: float(v) for k, v in values.items() if v is not None}


class Tracker:
    """One destination of a run's records. Every method is called from the training loop's thread.

    A tracker that is not `critical` may fail at any call: the run logger then reports it in one line and goes
    on without it. A critical one (TensorBoard, the console) stops the run with its error, as before."""

    name = "tracker"
    critical = False

    def start(self, run: RunInfo) -> None:
        """Open (or, when run.resumed, reopen) the tracker run."""

    def scalars(self, values: Mapping[str, float], step: int) -> None:
        """Scalars by their full tag ("train/loss/critic"), all at env step `step`."""

    def evaluation(self, step: int, mean: float, best: float) -> None:
        """After each evaluation (its eval/* scalars came just before): a natural point to flush."""

    def finish(self, outcome: Outcome) -> None:
        """The end of the session: final results, the video, the checkpoint, the run's status."""

    def close(self) -> None:
        """Release everything; called once, also after a failure (then without finish())."""

    def where(self) -> str | None:
        """One line for the run's summary: where the records are and how to see them."""
        return None


def notice(message: str) -> None:
    """One line on stderr, as sac-train's other messages."""
    print(f"sac-train: {message}", file=sys.stderr, flush=True)


def short_reason(e: BaseException, limit: int = 200) -> str:
    """An exception as a few words on one line."""
    text = " ".join(str(e).split()) or type(e).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


def flatten(tree: Any, prefix: str = "") -> dict[str, Any]:
    """{'a': {'b': 1}} -> {'a.b': 1}; lists become strings ('[256, 256]'), None 'null'."""
    out: dict[str, Any] = {}
    if isinstance(tree, Mapping):
        for k, v in tree.items():
            out.update(flatten(v, f"{prefix}{k}."))
        if not tree and prefix:
            out[prefix[:-1]] = "{}"
        return out
    value = "null" if tree is None else tree if isinstance(tree, (bool, int, float, str)) else str(tree)
    out[prefix[:-1]] = value
    return out


def read_ids(run_dir: Path) -> dict:
    """The tracker run ids recorded in a run directory ({} when none)."""
    try:
        data = json.loads((Path(run_dir) / IDS_FILE).read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def write_ids(run_dir: Path, name: str, ids: dict) -> None:
    """Record one tracker's run ids in the run directory (atomically; other trackers' entries are kept)."""
    run_dir = Path(run_dir)
    with _IDS_LOCK:
        data = read_ids(run_dir)
        data[name] = ids
        fd, tmp = tempfile.mkstemp(dir=run_dir, prefix=f".{IDS_FILE}.")
        with os.fdopen(fd, "w") as f:
            json.dump(data, f, indent=1)
        os.replace(tmp, run_dir / IDS_FILE)
