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
sweeper, the Optuna sweeper and SweepCallback see no difference. How the jobs are grouped: sweeps/population_plan.py;
how a group runs (here, in a process of its own, on SLURM): sweeps/population_group.py; how the members of a group
train together: training/population.py.
"""

from __future__ import annotations

import sys
import types
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hydra.core.plugins import Plugins
from hydra.core.utils import JobReturn, setup_globals
from hydra.plugins.launcher import Launcher
from omegaconf import DictConfig, OmegaConf, open_dict

from sac_runner.errors import fail
from sac_runner.keys import RESUME_OVERRIDABLE
from sac_runner.rundir import CHECKPOINT_DIR, CONFIG_FILE, override_keys
from sac_runner.sweeps.population_group import (
    Group,
    GroupJob,
    GroupResult,
    failed_return,
    finished_return,
    in_processes,
    job_dir,
    on_slurm,
    run_group,
)
from sac_runner.sweeps.population_plan import describe_plan, job_ranges, plan_groups, shared_part

# the name Hydra knows the launcher by (register_launcher; conf/hydra/launcher/population.yaml)
PLUGIN_MODULE = "hydra_plugins.sac_runner_population"
BACKENDS = ("local", "slurm")
# each group as one SLURM job (population_group.on_slurm): written, not yet tested on a cluster, so switched off
# (setup says so)
SLURM_ENABLED = False


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
                    directory = job_dir(cfg)
                    finished = finished_return(directory, cfg)
                    if finished is not None:
                        done[num] = finished
                        continue
                    if (directory / CHECKPOINT_DIR / "last.pt").is_file() and (directory / CONFIG_FILE).is_file():
                        # its own config.yaml, and the overrides a resume may change (a longer budget)
                        kept = [o for o in overrides if override_keys([o])[0] in RESUME_OVERRIDABLE]
                        overrides, saved = [f"resume={directory}", *kept], directory / CONFIG_FILE
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
            results = on_slurm(groups, self._group_job, self._lost, self.slurm, str(self.config.hydra.sweep.dir))
        elif self.n_parallel > 1 and len(groups) > 1:
            results = in_processes(groups, self.n_parallel, self._group_job, self._lost)
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
    def _group_job(self, group: Group) -> GroupJob:
        assert self.config is not None
        return GroupJob(self.hydra_context, self.config, self.task_function, group)

    def _lost(self, group: Group, error: BaseException) -> GroupResult:
        """The result of a group whose process ended without one: each member's JobReturn names `error`."""
        return GroupResult({n: failed_return(self.job_config(o, n), error) for n, o in group})


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
