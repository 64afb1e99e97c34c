"""One group of hydra/launcher=population (sweeps/population_launcher.py): its jobs trained as the members of one
population (training/population.py), in this process (run_group), in a child process of its own (in_processes:
`python -m sac_runner.sweeps.population_group IN OUT`) or as one SLURM job through submitit (on_slurm); and the
JobReturns of members that could not start, that a lost process took with it, or that finished in an earlier session.

Every member is a Hydra job as the basic launcher makes it: its directory <sweep dir>/<job number> with .hydra/
(config.yaml, hydra.yaml, overrides.yaml), Hydra's callbacks, and a JobReturn with the run's objective."""

from __future__ import annotations

import functools
import os
import pickle
import subprocess
import sys
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hydra.core.singleton import Singleton
from hydra.core.utils import JobReturn, JobStatus, run_job, setup_globals
from omegaconf import DictConfig, OmegaConf, open_dict

from sac_runner import rundir_lock
from sac_runner.errors import ConfigError, fail
from sac_runner.rundir import FAILED_FILE, SUMMARY_FILE

# a group: its jobs as (job number, overrides)
Group = Sequence[tuple[int, Sequence[str]]]


# ------------------------------------------------------------------------------------------------ member JobReturns
def job_dir(config: DictConfig) -> Path:
    """A job's directory as Hydra's run_job makes it: hydra.sweep.dir / hydra.sweep.subdir."""
    from hydra.core.hydra_config import HydraConfig

    HydraConfig.instance().set_config(config)
    return Path(str(OmegaConf.select(config, "hydra.sweep.dir"))) / str(OmegaConf.select(config, "hydra.sweep.subdir"))


def failed_return(config: DictConfig, error: BaseException) -> JobReturn:
    """The JobReturn of a job that could not start."""
    ret = JobReturn()
    ret.overrides = list(OmegaConf.to_container(config.hydra.overrides.task))  # type: ignore[arg-type]
    ret.cfg, ret.hydra_cfg = config, config
    ret.return_value, ret.status = error, JobStatus.FAILED
    return ret


def finished_return(directory: Path, cfg: DictConfig) -> JobReturn | None:
    """The JobReturn of a job that finished in an earlier session (its summary.json, not interrupted), else None."""
    import json
    import math

    try:
        summary = json.loads((directory / SUMMARY_FILE).read_text())
    except (OSError, ValueError):
        return None
    if summary.get("interrupted") or summary.get("pruned") or (directory / FAILED_FILE).exists():
        return None
    ret = JobReturn()
    ret.overrides = list(OmegaConf.to_container(cfg.hydra.overrides.task))  # type: ignore[arg-type]
    ret.cfg, ret.hydra_cfg = cfg, cfg
    value = summary.get("objective")
    ret.return_value = float(value) if value is not None else math.nan
    ret.status = JobStatus.COMPLETED
    return ret


# ------------------------------------------------------------------------------------------------ a group here
def _member_job(hydra_context, task_function, config: DictConfig) -> JobReturn:
    """One member's whole job, in its own thread: lock its directory, then Hydra's run_job."""
    directory = job_dir(config)
    try:
        directory.mkdir(parents=True, exist_ok=True)
        rundir_lock.acquire(directory)
    except (OSError, ConfigError) as e:
        message = e.strerror if isinstance(e, OSError) else str(e)
        print(f"sac-train: job {config.hydra.job.num} not started: {message}", file=sys.stderr, flush=True)
        return failed_return(config, e)
    try:
        return run_job(
            hydra_context=hydra_context,
            task_function=task_function,
            config=config,
            job_dir_key="hydra.sweep.dir",
            job_subdir_key="hydra.sweep.subdir",
        )
    finally:
        rundir_lock.release(directory)


@dataclass
class GroupResult:
    """What a group's process hands back: each job's JobReturn (or the exception that ended its thread), and the
    stop signal's name if SIGINT / SIGTERM stopped the population."""

    outcomes: dict[int, Any]
    stopped: str | None = None


def run_group(hydra_context, config: DictConfig, task_function, jobs: Group, singleton_state=None) -> GroupResult:
    """Train `jobs` ((job number, overrides)) as one population in this process."""
    from hydra.core.hydra_config import HydraConfig

    from sac_runner.training.population import Population

    if singleton_state is not None:  # in a process of its own
        Singleton.set_state(singleton_state)
    setup_globals()
    outer = HydraConfig.instance().cfg
    fns, names = [], []
    for num, overrides in jobs:
        sweep_config = hydra_context.config_loader.load_sweep_config(config, list(overrides))
        with open_dict(sweep_config):
            sweep_config.hydra.job.id = f"{sweep_config.hydra.job.name}_{num}"
            sweep_config.hydra.job.num = num
        fns.append(functools.partial(_member_job, hydra_context, task_function, sweep_config))
        names.append(str(num))
    HydraConfig.instance().cfg = outer
    population = Population(fns, names)
    members = population.run()
    outcomes = {num: m.result if m.error is None else m.error for (num, _), m in zip(jobs, members)}
    return GroupResult(outcomes, population.stopped)


# ------------------------------------------------------------------------------------------------ a group elsewhere
class GroupJob:
    """run_group as a picklable callable, for a group trained in a process of its own (a local subprocess, a
    SLURM job through submitit)."""

    def __init__(self, hydra_context, config: DictConfig, task_function, jobs: Group) -> None:
        self.hydra_context, self.config, self.task_function = hydra_context, config, task_function
        self.jobs = [(int(n), list(o)) for n, o in jobs]
        self.singleton_state = Singleton.get_state()

    def __call__(self) -> GroupResult:
        result = run_group(self.hydra_context, self.config, self.task_function, self.jobs, self.singleton_state)
        for num, outcome in result.outcomes.items():
            if isinstance(outcome, JobReturn):
                outcome._return_value = _picklable(outcome._return_value)
            else:
                result.outcomes[num] = _picklable(outcome)
        return result


def _picklable(value: Any) -> Any:
    """`value`, or, if it cannot be pickled (back to the launching process), a RuntimeError naming it."""
    try:
        pickle.dumps(value)
        return value
    except Exception:  # noqa: BLE001 - whatever it was, the launcher gets its type and message
        return RuntimeError(f"{type(value).__name__}: {value}")


def _child_main(path_in: str, path_out: str) -> None:
    """`python -m sac_runner.sweeps.population_group IN OUT`: run the pickled GroupJob in IN, result to OUT."""
    import cloudpickle

    with open(path_in, "rb") as f:
        job = pickle.load(f)
    result = job()
    with open(path_out + ".tmp", "wb") as f:
        cloudpickle.dump(result, f)
    os.replace(path_out + ".tmp", path_out)


def _wait(proc: subprocess.Popen) -> int:
    """The child's exit status; a Ctrl-C here reaches the child too (same process group): wait for it to save."""
    while True:
        try:
            return proc.wait()
        except KeyboardInterrupt:
            continue


def in_processes(
    groups: Sequence[Group],
    n_parallel: int,
    make_job: Callable[[Group], GroupJob],
    lost: Callable[[Group, BaseException], GroupResult],
) -> list[GroupResult]:
    """Each group in a child process of its own, n_parallel at a time; after a stop signal no new one starts.
    make_job: the group's GroupJob (made as the group starts); lost: the result of a group whose process died."""
    import cloudpickle

    results: list[GroupResult] = []
    pending = list(groups)
    running: list[tuple[subprocess.Popen, str, Group]] = []
    with tempfile.TemporaryDirectory(prefix="sac-population-") as tmp:
        while pending or running:
            while pending and len(running) < n_parallel and not any(r.stopped for r in results):
                group = pending.pop(0)
                path = os.path.join(tmp, f"group-{group[0][0]}")
                with open(path + ".in", "wb") as f:
                    cloudpickle.dump(make_job(group), f)
                cmd = [sys.executable, "-m", __name__, path + ".in", path + ".out"]
                running.append((subprocess.Popen(cmd), path + ".out", group))
            if not running:
                break
            proc, out, group = running.pop(0)
            code = _wait(proc)
            if os.path.exists(out):
                with open(out, "rb") as f:
                    results.append(pickle.load(f))
            else:  # the child died (kill -9, out of memory): its members' JobReturns say so
                error = RuntimeError(f"the population's process ended with status {code} before it finished")
                results.append(lost(group, error))
    return results


def on_slurm(
    groups: Sequence[Group],
    make_job: Callable[[Group], GroupJob],
    lost: Callable[[Group, BaseException], GroupResult],
    settings: dict[str, Any],
    sweep_dir: str,
) -> list[GroupResult]:
    """Each group one SLURM job through submitit, with hydra/launcher=slurm's `settings`."""
    import shutil

    import submitit
    from hydra_plugins.hydra_submitit_launcher.config import BaseQueueConf

    if shutil.which("sbatch") is None:
        fail(
            "hydra/launcher=population_slurm submits with sbatch, which is not on PATH; run the sweep on a SLURM "
            "login node (or scripts/slurm_cluster.sh for a single-node cluster here)"
        )
    params = dict(settings)
    folder = str(params.pop("submitit_folder", f"{sweep_dir}/.submitit/%j"))
    executor = submitit.AutoExecutor(
        cluster="slurm", folder=folder, slurm_max_num_timeout=params.pop("max_num_timeout", 0)
    )
    base = set(OmegaConf.structured(BaseQueueConf).keys())
    executor.update_parameters(**{k if k in base else f"slurm_{k}": v for k, v in params.items()})
    jobs = [executor.submit(make_job(group)) for group in groups]
    results: list[GroupResult] = []
    for job, group in zip(jobs, groups):
        try:
            results.append(job.results()[0])
        except Exception as e:  # noqa: BLE001 - the SLURM job itself failed: each member's JobReturn says so
            results.append(lost(group, e))
    return results


if __name__ == "__main__":
    _child_main(sys.argv[1], sys.argv[2])
