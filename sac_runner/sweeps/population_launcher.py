"""`hydra/launcher=population`: a multirun's jobs train as the members of one process (issue 17; README,
"Populations"). A Hydra Launcher, registered under the name Hydra instantiates launchers by (register_launcher).

    sac-train -m hydra/launcher=population compile=true env=Pendulum-v1 seed=0,1,2,3,4,5,6,7,8,9

The launcher groups the jobs by what must be shared, since a group trains as one process: the jobs of a group may
differ only in the keys sac_runner/keys.py marks `member` (the seed, the hyperparameters the update takes per member:
learning rates, discount, tau, init_entropy_coef, target_entropy; and a run's own records: progress, save_video,
objective, ...). Jobs that differ in anything else (env, network sizes, batch size, UTD, budget, device, optimizer
class, ...) go to separate groups, and the launcher says so in one line, naming the key. hydra.launcher.max_members
caps a group. Groups run one after another in this process, or hydra.launcher.n_parallel at a time, each in a
process of its own, or each as one SLURM job (hydra/launcher=population_slurm, through submitit; switched
off until tested on a cluster: SLURM_ENABLED).

Every member is a Hydra job as the basic launcher makes it: its directory <sweep dir>/<job number> with .hydra/
(config.yaml, hydra.yaml, overrides.yaml), Hydra's callbacks, and a JobReturn with the run's objective; so the grid
sweeper, the Optuna sweeper and SweepCallback see no difference. How the members of a group train together:
training/population.py.
"""

from __future__ import annotations

import functools
import os
import pickle
import subprocess
import sys
import tempfile
import types
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hydra.core.plugins import Plugins
from hydra.core.singleton import Singleton
from hydra.core.utils import JobReturn, JobStatus, run_job, setup_globals
from hydra.plugins.launcher import Launcher
from omegaconf import DictConfig, OmegaConf, open_dict

from sac_runner import rundir_lock
from sac_runner.errors import ConfigError, fail
from sac_runner.keys import MEMBER_KEYS, RESUME_OVERRIDABLE
from sac_runner.rundir import CHECKPOINT_DIR, CONFIG_FILE, FAILED_FILE, SUMMARY_FILE, override_keys

# the name Hydra knows the launcher by (register_launcher; conf/hydra/launcher/population.yaml)
PLUGIN_MODULE = "hydra_plugins.sac_runner_population"
BACKENDS = ("local", "slurm")
# each group as one SLURM job (_on_slurm): written, not yet tested on a cluster, so switched off (setup says so)
SLURM_ENABLED = False


# ------------------------------------------------------------------------------------------------ grouping
def is_member_key(key: str) -> bool:
    """Whether the members of one population may differ in config key `key` (dotted)."""
    return any(key == k or key.startswith(k + ".") for k in MEMBER_KEYS)


def _flat(tree: Any, prefix: str = "") -> dict[str, Any]:
    """A config as {dotted key: value}; lists are values."""
    if isinstance(tree, dict):
        out: dict[str, Any] = {}
        for k, v in tree.items():
            out.update(_flat(v, f"{prefix}{k}."))
        return out or {prefix[:-1]: {}}
    return {prefix[:-1]: tree}


def shared_part(config: dict) -> dict[str, Any]:
    """The part of a job's (resolved, hydra-less) config that the members of one population must share."""
    return {k: v for k, v in _flat(config).items() if not is_member_key(k)}


def first_difference(a: dict[str, Any], b: dict[str, Any]) -> str | None:
    """The first key (in a's order, then b's) whose value differs between two shared_part()s, or None."""
    for key in [*a, *(k for k in b if k not in a)]:
        if a.get(key, ...) != b.get(key, ...):
            return key
    return None


def plan_groups(shared: Sequence[dict | None], max_members: int | None) -> tuple[list[list[int]], list[str]]:
    """Group jobs (by position) into populations: each joins the first group whose jobs share its shared_part()
    and that has room (max_members). A job whose config could not be composed (None) is a group of its own.
    Returns the groups and the keys that set groups apart (each named once, in order of discovery)."""
    groups: list[list[int]] = []
    keys: list[str] = []
    for i, part in enumerate(shared):
        home = None
        for g in groups:
            head = shared[g[0]]
            if part is None or head is None:
                continue
            diff = first_difference(head, part)
            if diff is None:
                if max_members is None or len(g) < max_members:
                    home = g
                    break
            elif diff not in keys:
                keys.append(diff)
        if home is None:
            groups.append([i])
        else:
            home.append(i)
    return groups, keys


def job_ranges(nums: Sequence[int]) -> str:
    """Job numbers as ranges: 0-4,7,9-10."""
    parts, start = [], None
    for i, n in enumerate(nums):
        if start is None:
            start = n
        if i + 1 == len(nums) or nums[i + 1] != n + 1:
            parts.append(str(start) if start == n else f"{start}-{n}")
            start = None
    return ",".join(parts)


def describe_plan(groups: list[list[int]], keys: list[str], max_members: int | None, parallel: str) -> str:
    """The launcher's one line about its groups."""
    n = sum(len(g) for g in groups)
    if len(groups) == 1:
        return f"[population] {n} job(s) as the members of one process"
    why = []
    if keys:
        why.append(f"they differ in {', '.join(keys[:3])}{' ...' if len(keys) > 3 else ''}, which a population shares")
    if max_members is not None and any(len(g) == max_members for g in groups):
        why.append(f"hydra.launcher.max_members={max_members}")
    sizes = "; ".join(f"jobs {job_ranges(g)}" for g in groups)
    return f"[population] {n} jobs in {len(groups)} groups ({sizes}): {' and '.join(why)}; {parallel}"


# ------------------------------------------------------------------------------------------------ a group
def _job_dir(config: DictConfig) -> Path:
    """A job's directory as Hydra's run_job makes it: hydra.sweep.dir / hydra.sweep.subdir."""
    from hydra.core.hydra_config import HydraConfig

    HydraConfig.instance().set_config(config)
    return Path(str(OmegaConf.select(config, "hydra.sweep.dir"))) / str(OmegaConf.select(config, "hydra.sweep.subdir"))


def _failed(config: DictConfig, error: BaseException) -> JobReturn:
    """The JobReturn of a job that could not start."""
    ret = JobReturn()
    ret.overrides = list(OmegaConf.to_container(config.hydra.overrides.task))  # type: ignore[arg-type]
    ret.cfg, ret.hydra_cfg = config, config
    ret.return_value, ret.status = error, JobStatus.FAILED
    return ret


def _member_job(hydra_context, task_function, config: DictConfig) -> JobReturn:
    """One member's whole job, in its own thread: lock its directory, then Hydra's run_job."""
    job_dir = _job_dir(config)
    try:
        job_dir.mkdir(parents=True, exist_ok=True)
        rundir_lock.acquire(job_dir)
    except (OSError, ConfigError) as e:
        message = e.strerror if isinstance(e, OSError) else str(e)
        print(f"sac-train: job {config.hydra.job.num} not started: {message}", file=sys.stderr, flush=True)
        return _failed(config, e)
    try:
        return run_job(
            hydra_context=hydra_context,
            task_function=task_function,
            config=config,
            job_dir_key="hydra.sweep.dir",
            job_subdir_key="hydra.sweep.subdir",
        )
    finally:
        rundir_lock.release(job_dir)


@dataclass
class GroupResult:
    """What a group's process hands back: each job's JobReturn (or the exception that ended its thread), and the
    stop signal's name if SIGINT / SIGTERM stopped the population."""

    outcomes: dict[int, Any]
    stopped: str | None = None


def run_group(
    hydra_context, config: DictConfig, task_function, jobs: Sequence[tuple[int, Sequence[str]]], singleton_state=None
) -> GroupResult:
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


class GroupJob:
    """run_group as a picklable callable, for a group trained in a process of its own (a local subprocess, a
    SLURM job through submitit)."""

    def __init__(self, hydra_context, config: DictConfig, task_function, jobs) -> None:
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
    """`python -m sac_runner.sweeps.population_launcher IN OUT`: run the pickled GroupJob in IN, result to OUT."""
    import cloudpickle

    with open(path_in, "rb") as f:
        job = pickle.load(f)
    result = job()
    with open(path_out + ".tmp", "wb") as f:
        cloudpickle.dump(result, f)
    os.replace(path_out + ".tmp", path_out)


# ------------------------------------------------------------------------------------------------ the launcher
class PopulationLauncher(Launcher):
    """Hydra Launcher (see the module doc). max_members: the largest group (None: no cap); n_parallel: groups
    training at once, each in a process of its own; backend: local, or slurm (each group one SLURM job, with the
    remaining keyword arguments as hydra/launcher=slurm's settings); resume: continue the jobs of a stopped
    population in the same sweep directory (each from its checkpoints/last.pt; finished ones are not run again)."""

    def __init__(
        self,
        max_members: int | None = None,
        n_parallel: int = 1,
        backend: str = "local",
        resume: bool = False,
        **slurm: Any,
    ) -> None:
        self.max_members = None if max_members is None else int(max_members)
        self.n_parallel, self.backend, self.resume = int(n_parallel), str(backend), bool(resume)
        self.slurm = {
            k: OmegaConf.to_container(v, resolve=True) if OmegaConf.is_config(v) else v for k, v in slurm.items()
        }
        self.config: DictConfig | None = None
        self.hydra_context: Any = None
        self.task_function: Any = None

    def setup(self, *, hydra_context, task_function, config: DictConfig) -> None:
        self.config, self.hydra_context, self.task_function = config, hydra_context, task_function
        if self.max_members is not None and self.max_members < 1:
            self._refuse(f"hydra.launcher.max_members={self.max_members} must be at least 1 (or null: no cap)")
        if self.n_parallel < 1:
            self._refuse(f"hydra.launcher.n_parallel={self.n_parallel} must be at least 1 (groups training at once)")
        if self.backend not in BACKENDS:
            self._refuse(f"hydra.launcher.backend={self.backend} is not one of {', '.join(BACKENDS)}")
        if self.backend == "slurm" and not SLURM_ENABLED:
            self._refuse(
                "hydra/launcher=population_slurm is not available yet (not tested on a SLURM cluster); train the "
                "population on one node (hydra/launcher=population), or each run as a SLURM job (hydra/launcher=slurm)"
            )

    def _refuse(self, message: str) -> None:
        """Bad launcher settings: one line, exit 2, and the sweep directory made for this sweep removed if empty."""
        assert self.config is not None
        sweep_dir = Path(str(OmegaConf.select(self.config, "hydra.sweep.dir")))
        if sweep_dir.is_dir() and not any(sweep_dir.iterdir()):
            sweep_dir.rmdir()
        fail(message)

    # ------------------------------------------------------------------ planning
    def job_config(self, overrides: Sequence[str], num: int) -> DictConfig:
        """A job's composed config (with hydra.*), as the basic launcher composes it."""
        cfg = self.hydra_context.config_loader.load_sweep_config(self.config, list(overrides))
        with open_dict(cfg):
            cfg.hydra.job.id = f"{cfg.hydra.job.name}_{num}"
            cfg.hydra.job.num = num
        return cfg

    def shared(self, cfg: DictConfig | None, saved: Path | None) -> dict | None:
        """The job's shared_part(): from `cfg` (composed), or, when it resumes, from its run's config.yaml (`saved`)
        with the keys a resume may change; None where it cannot be composed or resolved (the job will say why)."""
        from hydra.core.hydra_config import HydraConfig

        try:
            assert cfg is not None
            if saved is not None:
                run = OmegaConf.load(saved)
                for key in override_keys(cfg.hydra.overrides.task):
                    if key in RESUME_OVERRIDABLE:
                        OmegaConf.update(run, key, OmegaConf.select(cfg, key), force_add=True)
                return shared_part(OmegaConf.to_container(run, resolve=True))  # type: ignore[arg-type]
            HydraConfig.instance().set_config(cfg)
            task = OmegaConf.masked_copy(cfg, [str(k) for k in cfg if k != "hydra"])
            return shared_part(OmegaConf.to_container(task, resolve=True))  # type: ignore[arg-type]
        except Exception:  # noqa: BLE001 - e.g. a bad interpolation; the job's own run says what is wrong
            return None

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        from hydra.core.hydra_config import HydraConfig

        assert self.config is not None
        setup_globals()
        sweep_dir = Path(str(self.config.hydra.sweep.dir))
        sweep_dir.mkdir(parents=True, exist_ok=True)
        outer = HydraConfig.instance().cfg
        jobs, parts, done = [], [], {}
        try:
            for i, overrides in enumerate(job_overrides):
                num, overrides = initial_job_idx + i, list(overrides)
                cfg = self.job_config(overrides, num)
                saved = None
                if self.resume:
                    job_dir = _job_dir(cfg)
                    finished = _finished(job_dir, cfg)
                    if finished is not None:
                        done[num] = finished
                        continue
                    if (job_dir / CHECKPOINT_DIR / "last.pt").is_file() and (job_dir / CONFIG_FILE).is_file():
                        # its own config.yaml, and the overrides a resume may change (a longer budget)
                        kept = [o for o in overrides if override_keys([o])[0] in RESUME_OVERRIDABLE]
                        overrides, saved = [f"resume={job_dir}", *kept], job_dir / CONFIG_FILE
                jobs.append((num, overrides))
                parts.append(self.shared(cfg, saved))
        finally:
            HydraConfig.instance().cfg = outer
        if done:
            print(f"[population] resume: jobs {job_ranges(sorted(done))} finished before; not run again", flush=True)
        positions, keys = plan_groups(parts, self.max_members)
        groups = [[jobs[i] for i in g] for g in positions]
        if self.backend == "slurm":
            how = "each group one SLURM job"
        elif self.n_parallel > 1 and len(groups) > 1:
            how = f"{min(self.n_parallel, len(groups))} groups at a time, each in a process of its own"
        else:
            how = "one group after another"
        if groups:
            print(describe_plan([[n for n, _ in g] for g in groups], keys, self.max_members, how), flush=True)
        if self.backend == "slurm":
            results = self._on_slurm(groups)
        elif self.n_parallel > 1 and len(groups) > 1:
            results = self._in_processes(groups)
        else:
            results = []
            for g in groups:
                results.append(run_group(self.hydra_context, self.config, self.task_function, g))
                if results[-1].stopped:
                    break  # the groups after it do not start
        outcomes: dict[int, Any] = dict(done)
        for r in results:
            outcomes.update(r.outcomes)
        stopped = next((r.stopped for r in results if r.stopped), None)
        if stopped is not None:
            self._stopped(stopped, [n for n, _ in jobs if n not in outcomes])
        crashed = [o for o in outcomes.values() if isinstance(o, BaseException)]
        if crashed:  # a member's thread ended without a JobReturn (a second Ctrl-C): the sweep ends with it
            code = crashed[0].code if isinstance(crashed[0], SystemExit) else 1
            raise SystemExit(code if isinstance(code, int) else 1)
        return [outcomes[initial_job_idx + i] for i in range(len(job_overrides))]

    def resume_command(self) -> str:
        """The command that continues this sweep's population in its sweep directory."""
        import shlex

        assert self.config is not None
        hydra = [
            o
            for o in self.config.hydra.overrides.hydra
            if not str(o).startswith(("hydra.sweep.dir=", "hydra.launcher.resume="))
        ]
        args = [*self.config.hydra.overrides.task, *hydra, f"hydra.sweep.dir={self.config.hydra.sweep.dir}"]
        return " ".join(["sac-train", "-m", *(shlex.quote(str(a)) for a in args), "hydra.launcher.resume=true"])

    def _stopped(self, signal_name: str, not_started: list[int]) -> None:
        """End the sweep after a stop signal: one line with the command that resumes it, exit 128 + the signal."""
        import signal

        rest = f"; jobs {job_ranges(not_started)} were not started" if not_started else ""
        print(
            f"sac-train: {signal_name} received: the population in {self.config.hydra.sweep.dir} stopped, every "  # type: ignore[union-attr]
            f"member with its checkpoint{rest}; resume it with: {self.resume_command()}",
            file=sys.stderr,
            flush=True,
        )
        raise SystemExit(128 + signal.Signals[signal_name].value)

    # ------------------------------------------------------------------ groups in other processes
    def _group_job(self, group) -> GroupJob:
        assert self.config is not None
        return GroupJob(self.hydra_context, self.config, self.task_function, group)

    def _in_processes(self, groups) -> list[GroupResult]:
        """Each group in a child process of its own, n_parallel at a time; after a stop signal no new one starts."""
        import cloudpickle

        results: list[GroupResult] = []
        pending = list(groups)
        running: list[tuple[subprocess.Popen, str, list]] = []
        with tempfile.TemporaryDirectory(prefix="sac-population-") as tmp:
            while pending or running:
                while pending and len(running) < self.n_parallel and not any(r.stopped for r in results):
                    group = pending.pop(0)
                    path = os.path.join(tmp, f"group-{group[0][0]}")
                    with open(path + ".in", "wb") as f:
                        cloudpickle.dump(self._group_job(group), f)
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
                    results.append(GroupResult({n: _failed(self.job_config(o, n), error) for n, o in group}))
        return results

    def _on_slurm(self, groups) -> list[GroupResult]:
        """Each group one SLURM job through submitit, with hydra/launcher=slurm's settings."""
        import shutil

        import submitit
        from hydra_plugins.hydra_submitit_launcher.config import BaseQueueConf

        assert self.config is not None
        if shutil.which("sbatch") is None:
            fail(
                "hydra/launcher=population_slurm submits with sbatch, which is not on PATH; run the sweep on a SLURM "
                "login node (or scripts/slurm_cluster.sh for a single-node cluster here)"
            )
        params = dict(self.slurm)
        folder = str(params.pop("submitit_folder", f"{self.config.hydra.sweep.dir}/.submitit/%j"))
        executor = submitit.AutoExecutor(
            cluster="slurm", folder=folder, slurm_max_num_timeout=params.pop("max_num_timeout", 0)
        )
        base = set(OmegaConf.structured(BaseQueueConf).keys())
        executor.update_parameters(**{k if k in base else f"slurm_{k}": v for k, v in params.items()})
        jobs = [executor.submit(self._group_job(group)) for group in groups]
        results: list[GroupResult] = []
        for job, group in zip(jobs, groups):
            try:
                results.append(job.results()[0])
            except Exception as e:  # noqa: BLE001 - the SLURM job itself failed: each member's JobReturn says so
                results.append(GroupResult({n: _failed(self.job_config(o, n), e) for n, o in group}))
        return results


def _finished(job_dir: Path, cfg: DictConfig) -> JobReturn | None:
    """The JobReturn of a job that finished in an earlier session (its summary.json, not interrupted), else None."""
    import json
    import math

    try:
        summary = json.loads((job_dir / SUMMARY_FILE).read_text())
    except (OSError, ValueError):
        return None
    if summary.get("interrupted") or summary.get("pruned") or (job_dir / FAILED_FILE).exists():
        return None
    ret = JobReturn()
    ret.overrides = list(OmegaConf.to_container(cfg.hydra.overrides.task))  # type: ignore[arg-type]
    ret.cfg, ret.hydra_cfg = cfg, cfg
    value = summary.get("objective")
    ret.return_value = float(value) if value is not None else math.nan
    ret.status = JobStatus.COMPLETED
    return ret


def _wait(proc: subprocess.Popen) -> int:
    """The child's exit status; a Ctrl-C here reaches the child too (same process group): wait for it to save."""
    while True:
        try:
            return proc.wait()
        except KeyboardInterrupt:
            continue


def register_launcher() -> None:
    """Register PopulationLauncher through Hydra's Plugins.register as
    hydra_plugins.sac_runner_population.PopulationLauncher, the `_target_` of conf/hydra/launcher/population.yaml
    (hydra-core instantiates launchers only from the hydra_plugins package; see register_sweeper)."""
    plugins = Plugins.instance()
    name = f"{PLUGIN_MODULE}.{PopulationLauncher.__name__}"
    if name in plugins.class_name_to_class:
        return
    module = sys.modules.get(PLUGIN_MODULE) or types.ModuleType(PLUGIN_MODULE, "sac_runner's population launcher")
    registered = type(PopulationLauncher.__name__, (PopulationLauncher,), {"__module__": PLUGIN_MODULE})
    setattr(module, PopulationLauncher.__name__, registered)
    sys.modules[PLUGIN_MODULE] = module
    plugins.register(registered)


if __name__ == "__main__":
    _child_main(sys.argv[1], sys.argv[2])
