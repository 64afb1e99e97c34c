"""What a run tells the user as it goes: TensorBoard scalars, the progress bar, and the one-line errors
that stop it (a non-finite value, a failed write), each naming the last good checkpoint."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable
from contextlib import contextmanager
from pathlib import Path

import torch
from torch.utils.tensorboard import SummaryWriter
from tqdm import tqdm

from sac_runner.errors import TrainingError


def write_error_reason(e: BaseException | None) -> str:
    """A few words on why a write failed: the OSError's own reason, also when torch wrapped it."""
    while e is not None:
        if isinstance(e, OSError) and e.strerror:
            return e.strerror
        e = e.__cause__ or e.__context__
    return "the write failed; is the disk full?"


def first_non_finite(named_values: Iterable[tuple[str, torch.Tensor]]) -> tuple[str, float] | None:
    """(name, value) of the first tensor in `named_values` holding a NaN or an infinity, else None."""
    for name, v in named_values:
        v = torch.as_tensor(v).detach()
        finite = torch.isfinite(v)
        if not finite.all():
            return name, float(v[~finite].reshape(-1)[0])
    return None


class RunLogger:
    """TensorBoard events under `run_dir`/tensorboard and a tqdm bar on stderr, for one run; the event
    methods are called between open() and close().

    Args:
        run_dir: the run directory (named in the messages on how to go on after a failure).
        total_steps: the run's budget in env steps.
        desc: the bar's label; show_progress: False hides the bar (it is hidden anyway off a terminal).
    """

    writer: SummaryWriter  # set by open()
    bar: tqdm

    def __init__(self, run_dir: Path, total_steps: int, desc: str = "SAC", show_progress: bool = True):
        self.run_dir = Path(run_dir)
        self.log_dir = self.run_dir / "tensorboard"
        self.total_steps, self.desc, self.show_progress = total_steps, desc, show_progress
        self.last_saved: tuple[Path, int] | None = None  # (path, env step) of the last good last.pt
        self._clock, self._clock_step = time.perf_counter(), 0
        self._last_return: float | None = None
        self._best_return: float | None = None

    def open(self, start_step: int = 0, purge_step: int | None = None) -> None:
        """Open the event file and the bar at `start_step`; a resumed run passes `purge_step` to drop the
        events written after its checkpoint."""
        try:
            self.writer = SummaryWriter(str(self.log_dir), purge_step=purge_step)
        except OSError as e:
            raise TrainingError(
                f"cannot write TensorBoard logs to {self.log_dir} "
                f"({e.strerror or type(e).__name__}); choose a writable hydra.run.dir"
            ) from None
        self.bar = tqdm(
            total=self.total_steps,
            initial=min(start_step, self.total_steps),
            unit="step",
            dynamic_ncols=True,
            file=sys.stderr,
            disable=None if self.show_progress else True,
            desc=self.desc,
        )
        self._clock, self._clock_step = time.perf_counter(), start_step

    # ------------------------------------------------------------------------------ events
    def scalars(self, prefix: str, values: dict, step: int) -> None:
        for k, v in values.items():
            self.writer.add_scalar(f"{prefix}/{k}", float(v), step)

    def episode(self, ret: float, length: int, step: int) -> None:
        self.scalars("train", {"episode_return": ret, "episode_length": length}, step)

    def advance(self, n: int) -> None:
        self.bar.update(n)

    def training(self, step: int, updates: int, stats: dict | None) -> float:
        """The periodic training log: speed since the last one, gradient steps, the last step's statistics."""
        now = time.perf_counter()
        sps = (step - self._clock_step) / max(now - self._clock, 1e-9)
        self._clock, self._clock_step = now, step
        self.scalars("time", {"steps_per_second": sps, "updates": updates}, step)
        if stats is not None:
            self.scalars("train", stats, step)
        self.bar.set_postfix_str(self._postfix(sps), refresh=False)
        return sps

    def evaluation(self, step: int, returns, best_return: float) -> None:
        self.scalars(
            "eval",
            {
                "return_mean": returns.mean(),
                "return_std": returns.std(),
                "return_min": returns.min(),
                "return_max": returns.max(),
            },
            step,
        )
        self._last_return, self._best_return = float(returns.mean()), best_return
        self.bar.set_postfix_str(self._postfix(None), refresh=False)
        self.writer.flush()

    def _postfix(self, sps: float | None) -> str:
        parts = [] if sps is None else [f"{sps:.0f} steps/s"]
        if self._last_return is not None:
            parts += [f"eval {self._last_return:.1f}", f"best {self._best_return:.1f}"]
        return ", ".join(parts)

    # ------------------------------------------------------------------------------ failures
    def saved(self, path: Path, step: int) -> None:
        """Note the last good last.pt, which the failure messages point to."""
        self.last_saved = (Path(path), step)

    def write_failed(self, path, e: BaseException) -> TrainingError:
        """The error for a write that failed: what, why, and how to go on from the last good checkpoint."""
        if self.last_saved is None:
            then = "then start the run again"
        else:
            then = f"then continue from step {self.last_saved[1]} with: sac-train resume={self.run_dir}"
        return TrainingError(
            f"cannot write {path} ({write_error_reason(e)}); free disk space or fix the directory's permissions, {then}"
        )

    def non_finite(self, name: str, value: float, env_steps: int, updates: int) -> TrainingError:
        """The error for a NaN or an infinity found in `name`."""
        if self.last_saved is None:
            kept = "no checkpoint had been written yet"
        else:
            kept = f"the last good checkpoint, {self.last_saved[0]} (step {self.last_saved[1]}), is kept"
        return TrainingError(
            f"{name} became {value} at env step {env_steps} (gradient step {updates}); "
            f"training stopped and {kept}; try lower learning rates or algorithm.max_grad_norm=1.0"
        )

    @contextmanager
    def reporting_write_failures(self):
        """TensorBoard's writer thread reports a failed write at its next call, as an OSError: turn it into
        a one-line TrainingError."""
        try:
            yield
        except OSError as e:
            raise self.write_failed(e.filename or self.log_dir, e) from None

    def close(self) -> None:
        if hasattr(self, "bar"):
            self.bar.close()
        if hasattr(self, "writer"):
            with self.reporting_write_failures():
                self.writer.close()
