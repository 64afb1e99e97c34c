"""What a job of a sweep (`sac-train -m ...`) needs beyond a single run: the number it returns to the
sweeper, its share of the CPU threads, and failures that are recorded instead of ending the sweep."""

from __future__ import annotations

import json
import math
import os
import shutil
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

OBJECTIVES = ("final", "auc", "best")
FAILED_FILE = "failed.json"
PRUNED_FILE = "pruned.json"


def objective(evals: list, metric: str = "final", last: int = 3) -> float:
    """The value a sweep maximises, from a run's evaluation history ([env_step, mean, ...] rows).

    final: the mean of the last `last` evaluation means (less noisy than one evaluation, and not
           biased upwards like the best one);
    auc:   the area under the evaluation curve (trapezoids over env steps) divided by its span, i.e.
           the step-weighted average return over training, which also rewards learning fast;
    best:  the best evaluation mean.
    NaN when there is no evaluation or any evaluation mean is not finite (a diverged run).
    """
    means = [float(e[1]) for e in evals]
    if not means or not all(math.isfinite(m) for m in means):
        return float("nan")
    if metric == "final":
        tail = means[-max(1, int(last)) :]
        return sum(tail) / len(tail)
    if metric == "best":
        return max(means)
    if metric == "auc":
        steps = [float(e[0]) for e in evals]
        if len(means) == 1 or steps[-1] <= steps[0]:
            return sum(means) / len(means)
        area = sum((steps[i + 1] - steps[i]) * (means[i + 1] + means[i]) / 2 for i in range(len(means) - 1))
        return area / (steps[-1] - steps[0])
    raise ValueError(f"unknown objective metric {metric!r}; use one of {', '.join(OBJECTIVES)}")


# ---------------------------------------------------------------------------------------- hydra
def _hydra_cfg():
    from hydra.core.hydra_config import HydraConfig

    return HydraConfig.get() if HydraConfig.initialized() else None


def is_multirun() -> bool:
    from hydra.types import RunMode

    hc = _hydra_cfg()
    return hc is not None and hc.mode == RunMode.MULTIRUN


# ---------------------------------------------------------------------------------------- threads
def available_cores() -> int:
    """CPU cores this process may use (its affinity mask: what SLURM or taskset gave it)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def parallel_jobs() -> int:
    """How many jobs of this sweep run at once on this machine: the joblib launcher's n_jobs
    (negative as in joblib: -1 all cores, -2 all but one), else 1."""
    if not is_multirun():
        return 1
    launcher = _hydra_cfg().launcher
    if "joblib" not in str(launcher.get("_target_", "")):
        return 1  # basic launcher: one job at a time; submitit: each job has its own cpus_per_task
    cores = available_cores()
    n = int(launcher.get("n_jobs") or 1)
    if n < 0:
        n = cores + 1 + n
    return max(1, min(n, cores))


# below this width a gradient step is bound by per-operation overhead, and a second thread only adds
# synchronisation: measured with scripts/gemm_ceiling.py on 2 cores (README, "Threads"), 64-64 networks
# gained nothing from 2 threads, 256-256 ones took 30% less time per update
MIN_WIDTH_FOR_THREADS = 256


def resolve_threads(value, widest_layer: int = MIN_WIDTH_FOR_THREADS) -> int:
    """`threads` as a number: an integer as given; for "auto", 1 for networks narrower than
    MIN_WIDTH_FOR_THREADS, else this job's share of the cores (all of them for a lone run)."""
    if isinstance(value, str) and value == "auto":
        if widest_layer < MIN_WIDTH_FOR_THREADS:
            return 1
        return max(1, available_cores() // parallel_jobs())
    return int(value)


def job_threads(cfg) -> int:
    """The run's `threads`, resolved for its networks (see resolve_threads)."""
    arch = cfg.architecture
    widest = max([*arch.actor_hidden_sizes, *arch.critic_hidden_sizes, 1])
    return resolve_threads(cfg.threads, widest)


def limit_threads(n: int) -> None:
    """Use at most n threads in torch and in the BLAS/OpenMP libraries already loaded (NumPy's
    OpenBLAS, torch's OpenMP), and make child processes inherit the same limit."""
    import torch

    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = str(n)
    torch.set_num_threads(n)
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # optional (the sweep extra): without it the environment variables above,
        return  # which joblib's workers get at start-up anyway, are all there is
    threadpool_limits(limits=n)


# ---------------------------------------------------------------------------------------- failures
class TrialFailed(RuntimeError):
    """Raised by an Optuna trial that failed or diverged, so the sweeper records it as FAIL."""


class TrialPruned(RuntimeError):
    """Raised by a trial's job that the search's pruner stopped (sac_runner/optuna_search.py): the sweeper
    records the trial as PRUNED. `record` says where and why."""

    def __init__(self, message: str, record: dict | None = None) -> None:
        super().__init__(message, record or {})
        self.message, self.record = message, record or {}

    def __str__(self) -> str:
        return self.message


def trial_hooks(cfg: DictConfig) -> list:
    """The trainer hooks of a job of an Optuna search (reporting to the study, pruning); none elsewhere."""
    hc = _hydra_cfg()
    if hc is None or not is_multirun() or not _uses_optuna(hc):
        return []
    from sac_runner.optuna_search import trial_reporter

    hook = trial_reporter(cfg, hc)
    return [] if hook is None else [hook]


def train_trial(trainer) -> dict:
    """trainer.train(), or, when the search's pruner stops the trial, the summary of the run so far with
    "pruned" set (its checkpoints are those of its last evaluation)."""
    import time

    start, steps = time.perf_counter(), trainer.progress.env_steps
    try:
        return trainer.train()
    except TrialPruned as e:
        summary = trainer.summary(time.perf_counter() - start, trainer.progress.env_steps - steps)
        summary["pruned"] = {**e.record, "message": e.message}
        return summary


def _uses_optuna(hc) -> bool:
    return "optuna" in str(hc.sweeper.get("_target_", ""))


def _uses_submitit(hc) -> bool:
    return "submitit" in str(hc.launcher.get("_target_", ""))


def run_job(cfg: DictConfig, run: Callable[[DictConfig], float]) -> float:
    """Run one job of a multirun, where one job's failure must not end the sweep.

    A failure (any exception) or a divergence (a non-finite objective) is written to
    <job dir>/failed.json and reported on one line. Then, under the Optuna sweeper, the job raises
    TrialFailed, which the sweeper (sac_runner/optuna_search.py) records as a FAIL trial before going
    on. A trial its pruner stopped writes <job dir>/pruned.json instead and raises TrialPruned (a PRUNED
    trial). Under the basic (grid) sweeper the job returns NaN, so every job runs; SweepCallback lists
    the failures at the end and sets the exit status.

    A job stopped by a signal (SIGTERM from SLURM before its time limit: the trainer writes a
    resumable last.pt and exits with 128 + the signal number) is recorded the same way when it ran
    under submitit, where each job is a process of its own, so that the sweep still collects the
    other jobs. Elsewhere (Ctrl-C on a local sweep) the exit goes on and ends the sweep."""
    hc = _hydra_cfg()
    job_dir = Path(hc.runtime.output_dir)
    (job_dir / FAILED_FILE).unlink(missing_ok=True)  # from an earlier sweep into the same directory
    (job_dir / PRUNED_FILE).unlink(missing_ok=True)
    try:
        value = float(run(cfg))
        if math.isfinite(value):
            return value
        error, message, trace = "Diverged", f"the objective ({cfg.objective.metric}) is {value}", None
    except TrialPruned as e:  # not a failure: the search stopped a hopeless trial early
        record = {"job_num": hc.job.num, "overrides": list(hc.overrides.task), **e.record, "message": e.message}
        with _suppress_oserror():
            (job_dir / PRUNED_FILE).write_text(json.dumps(record, indent=1))
        print(f"sac-train: job {hc.job.num} ({job_dir}): {e.message}", file=sys.stderr, flush=True)
        raise
    except Exception as e:  # noqa: BLE001 - any failure of one job is that job's, not the sweep's
        error, message, trace = type(e).__name__, " ".join(str(e).split()), traceback.format_exc()
    except SystemExit as e:
        if e.code in (0, None) or not _uses_submitit(hc):
            raise
        code = e.code if isinstance(e.code, int) else 1
        stopped = code > 128
        error = "Interrupted" if stopped else "Exited"
        message = (
            f"stopped by signal {code - 128}; continue it with: sac-train resume={job_dir}"
            if stopped
            else f"exit status {e.code}"
        )
        trace = None
    record = {
        "job_num": hc.job.num,
        "overrides": list(hc.overrides.task),
        "error": error,
        "message": message,
        "traceback": trace,
    }
    try:
        job_dir.mkdir(parents=True, exist_ok=True)
        (job_dir / FAILED_FILE).write_text(json.dumps(record, indent=1))
    except OSError:
        pass
    line = f"job {hc.job.num} failed ({job_dir}): {error}: {message}"
    print(f"sac-train: {line}", file=sys.stderr, flush=True)
    if _uses_optuna(hc):
        raise TrialFailed(line)
    return float("nan")


def _suppress_oserror():
    import contextlib

    return contextlib.suppress(OSError)


# ---------------------------------------------------------------------------------------- callback
def failed_jobs(sweep_dir: str | Path, since: float = 0.0) -> list[dict]:
    """The failed.json records of a sweep directory's jobs (written at or after `since`, a time),
    in job order."""
    records = []
    for path in sorted(Path(sweep_dir).glob(f"*/{FAILED_FILE}")):
        if path.stat().st_mtime < since:
            continue
        try:
            rec = json.loads(path.read_text())
        except (OSError, ValueError):
            rec = {"message": "unreadable failure record"}
        rec["job_dir"] = str(path.parent)
        records.append(rec)
    return sorted(records, key=lambda r: (r.get("job_num") is None, r.get("job_num") or 0))


class SweepCallback(Callback):
    """Hydra callback (conf/config.yaml: hydra.callbacks.sweep) for `sac-train -m`: creates the
    sweep directory before the sweeper starts (the Optuna study's SQLite file lives there), and at
    the end lists the jobs that failed. A grid sweep with failed jobs exits with status 1 after all
    its jobs ran; an Optuna search counts failed trials as part of the search and exits normally."""

    def __init__(self) -> None:
        self.start = 0.0

    def on_multirun_start(self, config: DictConfig, **kwargs) -> None:
        from sac_runner.config import ConfigError
        from sac_runner.runs import check_writable_dir

        self.start = time.time() - 1.0  # file times may be coarse
        slurm = _uses_submitit(config.hydra) and "slurm" in str(config.hydra.launcher._target_).lower()
        if slurm and shutil.which("sbatch") is None:  # submitit would fail later with a traceback per job
            print(
                "sac-train: error: hydra/launcher=slurm submits with sbatch, which is not on PATH; run the sweep "
                "on a SLURM login node (or scripts/slurm_cluster.sh for a single-node cluster here), or use "
                "hydra/launcher=parallel",
                file=sys.stderr,
            )
            sys.exit(2)
        try:
            check_writable_dir(
                config.hydra.sweep.dir,
                "the sweep directory",
                "choose another one with hydra.sweep.dir=<path>",
                create=True,
            )
        except ConfigError as e:  # inside Hydra an exception would print a traceback; SystemExit passes
            print(f"sac-train: error: {e}", file=sys.stderr)
            sys.exit(2)

    def on_multirun_end(self, config: DictConfig, **kwargs) -> None:
        sweep_dir = Path(str(config.hydra.sweep.dir))
        failed = failed_jobs(sweep_dir, since=self.start)
        if not failed:
            return
        lines = [f"sac-train: {len(failed)} job(s) of the sweep in {sweep_dir} failed:"]
        for rec in failed:
            lines.append(
                f"  job {rec.get('job_num', '?')} ({' '.join(rec.get('overrides', []))}): "
                f"{rec.get('error', 'Error')}: {rec.get('message', '')}"[:400]
            )
        print("\n".join(lines), file=sys.stderr, flush=True)
        if not _uses_optuna(config.hydra):
            sys.exit(1)
