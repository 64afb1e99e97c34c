"""The jobs a grid sweep (`sac-train -m a=1,2 b=x,y`, Hydra's basic sweeper) plans, read back from its
multirun.yaml, and which of them have not started: what `sac-train` says when a sweep stops early, and what
`sac-report` lists. Without torch (sac-report imports it); Hydra's override parser is imported at first use."""

from __future__ import annotations

import shlex
from pathlib import Path

from omegaconf import OmegaConf

MULTIRUN_FILE = "multirun.yaml"
BASIC_SWEEPER = "hydra._internal.core_plugins.basic_sweeper.BasicSweeper"
JOB_SUBDIR = "${hydra.job.num}"
# characters that keep a value out of a comma-joined sweep (`key=a,b`) in a suggested command
_NOT_JOINABLE = set(",[](){}'\" =")


def planned_jobs(sweep_dir: str | Path) -> list[list[str]] | None:
    """The overrides of each job of a grid sweep, in job-number order (job i runs in <sweep dir>/<i>), as Hydra's
    basic sweeper expands them from the sweep's multirun.yaml; None where they cannot be known: no readable
    multirun.yaml, another sweeper (an Optuna search asks for its trials one by one), job directories not named
    by the job number, or overrides this parser cannot expand without the sweep's config (glob(...))."""
    path = Path(sweep_dir) / MULTIRUN_FILE
    try:
        hydra = OmegaConf.load(path).hydra
        if str(hydra.sweeper.get("_target_", "")) != BASIC_SWEEPER:
            return None
        if str(OmegaConf.to_container(hydra.sweep, resolve=False).get("subdir")) != JOB_SUBDIR:  # type: ignore[union-attr]
            return None
        params = hydra.sweeper.get("params") or {}
        arguments = [f"{k}={v}" for k, v in params.items()] + [str(o) for o in hydra.overrides.task]
        # at first use: Hydra's override grammar takes a few tenths of a second to import
        from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
        from hydra.core.override_parser.overrides_parser import OverridesParser

        overrides = OverridesParser.create().parse_overrides(arguments)
        (jobs,) = BasicSweeper.split_arguments(overrides, None)
        return [list(job) for job in jobs]
    except Exception:  # noqa: BLE001 - not a grid sweep we can read: nothing is known about its plan
        return None


def not_started(sweep_dir: str | Path) -> list[tuple[int, list[str]]] | None:
    """(job number, overrides) of each planned job of a grid sweep whose directory does not exist (the sweep
    stopped before it, or has not reached it yet); None where the plan is unknown (planned_jobs)."""
    jobs = planned_jobs(sweep_dir)
    if jobs is None:
        return None
    return [(i, job) for i, job in enumerate(jobs) if not (Path(sweep_dir) / str(i)).exists()]


def rerun_command(jobs: list[list[str]]) -> str:
    """One `sac-train -m ...` command that runs exactly these jobs (in a new sweep directory): their common
    overrides plus one comma-joined sweep over the one key they differ in; with several differing keys, one
    command per job, joined by ' ; '."""
    if not jobs:
        return ""

    def command(overrides: list[str]) -> str:
        return "sac-train -m " + " ".join(shlex.quote(o) for o in overrides)

    keys = [[o.split("=", 1)[0] for o in job] for job in jobs]
    if len(jobs) == 1 or any(k != keys[0] for k in keys):
        return " ; ".join(command(job) for job in jobs)
    varying = [i for i in range(len(keys[0])) if len({job[i] for job in jobs}) > 1]
    values = [job[varying[0]].split("=", 1)[1] for job in jobs] if len(varying) == 1 else []
    if len(varying) != 1 or any(_NOT_JOINABLE & set(v) for v in values):
        return " ; ".join(command(job) for job in jobs)
    i = varying[0]
    joined = [*jobs[0][:i], f"{keys[0][i]}={','.join(values)}", *jobs[0][i + 1 :]]
    return command(joined)


def describe_jobs(jobs: list[tuple[int, list[str]]], planned: list[list[str]], limit: int = 5) -> str:
    """'job 1 (seed=1), job 2 (seed=2)': each job with the overrides that set it apart among the `planned`
    jobs of its sweep; at most `limit` jobs, then how many more."""
    shared = set.intersection(*(set(o) for o in planned)) if len(planned) > 1 else set()
    parts = []
    for num, overrides in jobs[:limit]:
        own = [o for o in overrides if o not in shared]
        parts.append(f"job {num} ({' '.join(own)})" if own else f"job {num}")
    more = len(jobs) - limit
    return ", ".join(parts) + (f" and {more} more" if more > 0 else "")
