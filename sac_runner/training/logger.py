"""What a run tells the user as it goes: its scalars, config, returns and video, fanned out to the trackers
(TensorBoard, W&B, MLflow: sac_runner/trackers/), the progress bar or per-evaluation lines, and the one-line
errors that stop it (a non-finite value, a failed write), each naming the last good checkpoint."""

from __future__ import annotations

import math
import time
from collections.abc import Iterable
from contextlib import contextmanager, suppress
from pathlib import Path

import torch

from sac_runner import trackers
from sac_runner.errors import TrainingError, TrialPruned
from sac_runner.objectives import objective
from sac_runner.trackers.base import Outcome, Tracker, notice, short_reason
from sac_runner.trackers.console import ConsoleTracker


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
    """The run's records, fanned out to its trackers (sac_runner/trackers/: TensorBoard, W&B, MLflow, as
    cfg.logger lists them) and to the console (a progress bar, or a line per evaluation off a terminal); the
    event methods are called between open() and close().

    A tracker that fails (W&B or MLflow unreachable, say) is reported in one line and dropped: the run goes on
    with the others. TensorBoard's and the console's failures stop the run, as a failed checkpoint write does.

    Args:
        run_dir: the run directory (named in the messages on how to go on after a failure).
        total_steps: the run's budget in env steps.
        desc: the bar's label; show_progress: False (progress=false) silences the bar and the lines.
        cfg: the run's config, for its trackers (None: TensorBoard alone).
    """

    def __init__(self, run_dir: Path, total_steps: int, desc: str = "SAC", show_progress: bool = True, cfg=None):
        self.run_dir = Path(run_dir)
        self.log_dir = self.run_dir / "tensorboard"
        self.total_steps, self.desc, self.show_progress = total_steps, desc, show_progress
        self.cfg = cfg
        self.last_saved: tuple[Path, int] | None = None  # (path, env step) of the last good last.pt
        self._clock, self._clock_step = time.perf_counter(), 0
        self.console = ConsoleTracker(total_steps, desc, show_progress)
        self.trackers: list[Tracker] = []
        self._last_eval: tuple[int, float, float] | None = None  # (step, mean, best)
        self._failure: BaseException | None = None  # what stopped the loop, if anything did
        self._finished = False

    def open(self, start_step: int = 0, purge_step: int | None = None) -> None:
        """Start every tracker at `start_step`; a resumed run passes `purge_step` (its step + 1): TensorBoard
        drops the events written after its checkpoint, and W&B and MLflow continue the run's tracker runs."""
        info = trackers.run_info(self.cfg, self.run_dir, purge_step is not None, start_step, self.total_steps)
        # the console last: its clock then starts after the trackers have opened
        self.trackers = [*trackers.build(self.cfg), self.console]
        self._each("start", info)
        self._clock, self._clock_step = time.perf_counter(), start_step

    def _each(self, method: str, *args) -> None:
        """Call `method` on every tracker; a non-critical tracker that raises is reported and dropped."""
        for t in list(self.trackers):
            if t.critical:
                getattr(t, method)(*args)
                continue
            try:
                getattr(t, method)(*args)
            except Exception as e:  # noqa: BLE001 - a tracker's outage never stops the run
                self.trackers.remove(t)
                notice(f"{t.name}: {short_reason(e)}; training goes on without it")
                with suppress(Exception):
                    t.close()

    # ------------------------------------------------------------------------------ events
    def scalars(self, prefix: str, values: dict, step: int) -> None:
        self._each("scalars", {f"{prefix}/{k}": float(v) for k, v in values.items()}, step)

    def episode(self, ret: float, length: int, step: int) -> None:
        self.scalars("train", {"episode_return": ret, "episode_length": length}, step)

    def advance(self, n: int) -> None:
        self.console.advance(n)

    def training(self, step: int, updates: int, stats: dict | None) -> float:
        """The periodic training log: speed since the last one, gradient steps, the last step's statistics."""
        now = time.perf_counter()
        sps = (step - self._clock_step) / max(now - self._clock, 1e-9)
        self._clock, self._clock_step = now, step
        self.scalars("time", {"steps_per_second": sps, "updates": updates}, step)
        if stats is not None:
            self.scalars("train", stats, step)
        self.console.training(step)
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
        self._last_eval = (step, float(returns.mean()), float(best_return))
        self._each("evaluation", step, float(returns.mean()), float(best_return))

    def finish(self, summary: dict, evals: list) -> None:
        """The end of training (also when stopped by a signal): every tracker records the outcome, then
        summary["trackers"] says where each one's records are."""
        evals = [list(e) for e in evals]
        value = float("nan")
        if self.cfg is not None and evals:
            value = objective(evals, self.cfg.objective.metric, self.cfg.objective.last)
        best = self.run_dir / "checkpoints" / "best.pt"
        outcome = Outcome(
            "interrupted" if summary.get("interrupted") else "finished",
            env_steps=int(summary["env_steps"]),
            final_return=float(evals[-1][1]) if evals else None,
            best_return=float(summary["best_return"]) if evals else None,
            best_step=int(summary["best_step"]) if evals else None,
            objective=value if math.isfinite(value) else None,
            video=Path(summary["video"]) if summary.get("video") else None,
            best_checkpoint=best if best.is_file() else None,
        )
        with self.reporting_write_failures():
            self._each("finish", outcome)
        self._finished = True
        summary["trackers"] = {
            t.name: where for t in self.trackers if t is not self.console and (where := t.where()) is not None
        }

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
        a one-line TrainingError. Whatever stops the loop is noted for the trackers' records."""
        try:
            yield
        except OSError as e:
            self._failure = self.write_failed(e.filename or self.log_dir, e)
            raise self._failure from None
        except BaseException as e:
            self._failure = e
            raise

    def close(self) -> None:
        """Close every tracker; one not told the outcome (the loop stopped on an error, or a search's pruner
        stopped the trial) first records that."""
        if not self._finished and self.trackers:
            self._finished = True
            failure = self._failure
            step, mean, best = self._last_eval or (self.console_step(), None, None)
            outcome = Outcome(
                "pruned"
                if isinstance(failure, TrialPruned)
                else "interrupted"
                if isinstance(failure, KeyboardInterrupt)
                else "failed",
                env_steps=step,
                final_return=mean,
                best_return=best,
                error=short_reason(failure) if failure is not None else None,
            )
            for t in self.trackers:
                if not t.critical:
                    self._each_one(t, "finish", outcome)
        # the others first: a failing TensorBoard close raises
        for t in sorted(self.trackers, key=lambda t: t.critical):
            if t.critical:
                with self.reporting_write_failures():
                    t.close()
            else:
                self._each_one(t, "close")
        self.trackers = []

    def _each_one(self, t: Tracker, method: str, *args) -> None:
        with suppress(Exception):
            getattr(t, method)(*args)

    def console_step(self) -> int:
        return int(getattr(getattr(self.console, "bar", None), "n", 0) or 0)
