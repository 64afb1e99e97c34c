"""A job of a sweep (`sac-train -m ...`): failures are recorded in its directory instead of ending the sweep, and
SweepCallback lists them at the end."""

from __future__ import annotations

import contextlib
import json
import math
import shutil
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from sac_runner import rundir_lock
from sac_runner.errors import ConfigError, TrialFailed, TrialPruned, fail
from sac_runner.hydra_mode import hydra_config, uses_launcher, uses_optuna
from sac_runner.rundir import FAILED_FILE, PRUNED_FILE, check_writable_dir
from sac_runner.sweeps import slurm as slurm_messages
from sac_runner.sweeps.plan import describe_jobs, planned_jobs, rerun_command
from sac_runner.training.population import current_member


def run_job(cfg: DictConfig, run: Callable[[DictConfig], float]) -> float:
    """Run one job of a multirun, where one job's failure must not end the sweep.

    A failure (any exception) or a divergence (a non-finite objective) is written to
    <job dir>/failed.json and reported on one line. Then, under the Optuna sweeper, the job raises
    TrialFailed, which the sweeper records as a FAIL trial before going on. A trial its pruner stopped
    writes <job dir>/pruned.json instead and raises TrialPruned (a PRUNED trial). Under the basic (grid)
    sweeper the job returns NaN, so every job runs; SweepCallback lists the failures at the end and sets
    the exit status.

    A job stopped by a signal (SIGTERM from SLURM before its time limit: the trainer writes a
    resumable last.pt and exits with 128 + the signal number) is recorded the same way when it ran
    under submitit, where each job is a process of its own, so that the sweep still collects the
    other jobs. Elsewhere (Ctrl-C on a local sweep) the exit goes on and ends the sweep, after a line that
    names the jobs not started (stopped_sweep_message); a second Ctrl-C ends it the same way, with status 130."""
    hc = hydra_config()
    job_dir = Path(hc.runtime.output_dir)
    try:  # one writer per job directory (rundir_lock.py); one in use is left as it is
        job_dir.mkdir(parents=True, exist_ok=True)
        rundir_lock.acquire(job_dir)
    except (OSError, ConfigError) as e:
        line = f"job {hc.job.num} not started ({job_dir}): {e.strerror if isinstance(e, OSError) else e}"
        print(f"sac-train: {line}", file=sys.stderr, flush=True)
        if uses_optuna(hc):
            raise TrialFailed(line) from None
        return float("nan")
    try:
        return _run_job(cfg, run, hc, job_dir)
    finally:
        rundir_lock.release(job_dir)


def _run_job(cfg: DictConfig, run: Callable[[DictConfig], float], hc, job_dir: Path) -> float:
    """run_job's work, with the job directory locked."""
    (job_dir / FAILED_FILE).unlink(missing_ok=True)  # from an earlier sweep into the same directory
    (job_dir / PRUNED_FILE).unlink(missing_ok=True)
    try:
        value = float(run(cfg))
        if math.isfinite(value):
            return value
        error, message, trace = "Diverged", f"the objective ({cfg.objective.metric}) is {value}", None
    except TrialPruned as e:  # not a failure: the search stopped a hopeless trial early
        record = {"job_num": hc.job.num, "overrides": list(hc.overrides.task), **e.record, "message": e.message}
        with contextlib.suppress(OSError):
            (job_dir / PRUNED_FILE).write_text(json.dumps(record, indent=1))
        print(f"sac-train: job {hc.job.num} ({job_dir}): {e.message}", file=sys.stderr, flush=True)
        raise
    except Exception as e:  # noqa: BLE001 - any failure of one job is that job's, not the sweep's
        error, message, trace = type(e).__name__, " ".join(str(e).split()), traceback.format_exc()
    except KeyboardInterrupt:  # a second Ctrl-C: the trainer stopped at once
        print(stopped_sweep_message(cfg, hc), file=sys.stderr, flush=True)
        raise SystemExit(130) from None
    except SystemExit as e:
        if e.code in (0, None):
            raise
        # this process runs the sweep: it ends here; a job run by submitit or as a population's member is
        # recorded (the population's launcher ends the sweep after all its members have stopped)
        if not (uses_launcher(hc, "submitit") or current_member() is not None):
            print(stopped_sweep_message(cfg, hc), file=sys.stderr, flush=True)
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
    if uses_optuna(hc):
        raise TrialFailed(line)
    return float("nan")


def stopped_sweep_message(cfg: DictConfig, hc) -> str:
    """What sac-train prints when a local sweep ends early because a job stopped (Ctrl-C): which jobs were
    not started and how to run them, or, for an Optuna search, how to continue the study."""
    sweep_dir = Path(str(hc.sweep.dir))
    head = f"sac-train: the sweep in {sweep_dir} stopped during job {hc.job.num}"
    if uses_optuna(hc):
        trial = (cfg.get("hparams_search") or {}).get("trial")
        return (
            f"{head}{'' if trial is None else f' (trial {trial})'}; the trials after it were not started: "
            f"continue the study with the same "
            f"command and hydra.sweeper.storage={hc.sweeper.storage} (hydra.sweeper.n_trials=<how many more>); "
            f"sac-report {sweep_dir} compares the trials so far"
        )
    planned = planned_jobs(sweep_dir)
    if planned is None:
        return f"{head}; the jobs after it were not started; sac-report {sweep_dir} compares the jobs so far"
    missing = [(i, job) for i, job in enumerate(planned) if i != hc.job.num and not (sweep_dir / str(i)).exists()]
    if not missing:
        return f"{head}, its last; sac-report {sweep_dir} compares its jobs"
    return (
        f"{head}; {len(missing)} of its {len(planned)} jobs not started: {describe_jobs(missing, planned)}; "
        f"run them (in a new sweep directory) with: {rerun_command([job for _, job in missing])}; "
        f"sac-report {sweep_dir} lists every job"
    )


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
        self.start = time.time() - 1.0  # file times may be coarse
        slurm = uses_launcher(config.hydra, "submitit") and "slurm" in str(config.hydra.launcher._target_).lower()
        if slurm and shutil.which("sbatch") is None:  # submitit would fail later with a traceback per job
            fail(
                "hydra/launcher=slurm submits with sbatch, which is not on PATH; run the sweep on a SLURM login "
                "node (or scripts/slurm_cluster.sh for a single-node cluster here), or use hydra/launcher=parallel"
            )
        slurm_messages.before_sweep(config.hydra)  # submitit's sacct warnings: one line, not 3 per poll
        try:
            check_writable_dir(
                config.hydra.sweep.dir,
                "the sweep directory",
                "choose another one with hydra.sweep.dir=<path>",
                create=True,
            )
        except ConfigError as e:  # inside Hydra an exception would print a traceback; SystemExit passes
            fail(str(e))

    def on_multirun_end(self, config: DictConfig, **kwargs) -> None:
        sweep_dir = Path(str(config.hydra.sweep.dir))
        print(f"sac-train: sweep done; compare its jobs with: sac-report {sweep_dir}", flush=True)
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
        if not uses_optuna(config.hydra):
            sys.exit(1)
