"""The console: a progress bar on a terminal; without one (nohup, a redirect, SLURM), one compact line per
evaluation, on stdout and in Hydra's job log (cli.log). progress=false silences both.

Both show one rate, labelled "avg": env steps per second of this session so far, the number the run's summary
ends with. The ETA divides the steps left by the rate of the last logging interval, which follows the slower
learning phase after the warm-up sooner than the average does."""

from __future__ import annotations

import logging
import sys
import time
from typing import TextIO

from tqdm import tqdm

from sac_runner.trackers.base import RunInfo, Tracker

# tqdm's bar without its own rate and estimate (they are in the postfix, as ours)
BAR_FORMAT = "{l_bar}{bar}| {n_fmt}/{total_fmt} [{elapsed}{postfix}]"

log = logging.getLogger("sac_runner.progress")


def clock(seconds: float) -> str:
    """Seconds as H:MM:SS (or M:SS under an hour)."""
    s = max(0, round(seconds))
    h, rem = divmod(s, 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


class ConsoleTracker(Tracker):
    """Args: total_steps: the run's budget; desc: the bar's label; show: False (progress=false) prints nothing;
    file: the bar's stream (stderr)."""

    name = "console"
    critical = True

    def __init__(self, total_steps: int, desc: str = "SAC", show: bool = True, file: TextIO | None = None):
        self.total_steps, self.desc, self.show = total_steps, desc, show
        self.file = file
        self.env_id = desc
        self.lines = False
        self._eval: tuple[float, float] | None = None  # (last mean return, best)
        self._recent_rate: float | None = None

    def start(self, run: RunInfo) -> None:
        self.env_id = run.env_id
        self.bar = tqdm(
            total=self.total_steps,
            initial=min(run.start_step, self.total_steps),
            unit="step",
            dynamic_ncols=True,
            file=self.file or sys.stderr,
            disable=None if self.show else True,  # None: hidden when the stream is not a terminal
            desc=self.desc,
            bar_format=BAR_FORMAT,
        )
        # no terminal for the bar: a line per evaluation instead
        self.lines = self.show and bool(self.bar.disable)
        now = time.perf_counter()
        self._start = self._last = (now, run.start_step)

    def advance(self, n: int) -> None:
        self.bar.update(n)

    def rate(self, step: int) -> float:
        """This session's average env steps per second up to `step`."""
        t0, s0 = self._start
        return (step - s0) / max(time.perf_counter() - t0, 1e-9)

    def eta(self, step: int) -> float | None:
        """Seconds left at the last logging interval's rate (None before one)."""
        if self._recent_rate is None or self._recent_rate <= 0:
            return None
        return max(self.total_steps - step, 0) / self._recent_rate

    def training(self, step: int) -> None:
        """At each logging interval: refresh the rate and the ETA."""
        now = time.perf_counter()
        t, s = self._last
        if step > s:
            self._recent_rate = (step - s) / max(now - t, 1e-9)
        self._last = (now, step)
        self.bar.set_postfix_str(self.status(step), refresh=False)

    def evaluation(self, step: int, mean: float, best: float) -> None:
        self._eval = (mean, best)
        self.bar.set_postfix_str(self.status(step), refresh=False)
        if self.show:
            self.emit(self.line(step))

    def status(self, step: int) -> str:
        """The bar's postfix: the rate, the ETA, the last evaluation."""
        parts = [f"avg {self.rate(step):.0f} steps/s"]
        eta = self.eta(step)
        if eta is not None:
            parts.append(f"ETA {clock(eta)}")
        if self._eval is not None:
            parts += [f"eval {self._eval[0]:.1f}", f"best {self._eval[1]:.1f}"]
        return ", ".join(parts)

    def line(self, step: int) -> str:
        """The compact line of an evaluation: step, rate, eval return, best so far, ETA."""
        pct = 100.0 * step / max(self.total_steps, 1)
        mean, best = self._eval or (float("nan"), float("nan"))
        eta = self.eta(step)
        return (
            f"{self.env_id} step {step}/{self.total_steps} ({pct:.0f}%): avg {self.rate(step):.0f} steps/s, "
            f"eval return {mean:.2f}, best {best:.2f}, ETA {'?' if eta is None else clock(eta)}"
        )

    def emit(self, text: str) -> None:
        """Without a terminal: to stdout and the job log (Hydra routes the root logger to both), or straight to
        stdout where logging is not set up (the Trainer used from Python). With the bar on the terminal: to the
        job log file only."""
        root = logging.getLogger()
        if not self.lines:
            record = log.makeRecord(log.name, logging.INFO, __file__, 0, text, (), None)
            for h in root.handlers:
                if isinstance(h, logging.FileHandler):
                    h.handle(record)
        elif root.handlers:
            log.info(text)
        else:
            print(text, flush=True)

    def close(self) -> None:
        if hasattr(self, "bar"):
            self.bar.close()
