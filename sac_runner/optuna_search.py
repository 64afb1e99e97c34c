"""Hyperparameter search on Optuna's ask-and-tell API, as a Hydra sweeper (`sac-train -m hparams_search=optuna`).

The sweeper process asks the study for trials and launches one job per trial and seed through Hydra's
launcher (sequential, joblib or SLURM); each job reports its evaluation returns to the same study through
its storage (SQLite, or any SQLAlchemy URL), where a pruner may stop it early; the sweeper then tells the
study the trial's outcome: COMPLETE with the seeds' aggregated objective, PRUNED, or FAIL.

Why our own sweeper rather than hydra-optuna-sweeper: 1.3 requires optuna<3 (SQLAlchemy<2), and both 1.3
and the 1.4.0rc3 release candidate ask and tell in the sweeper process only, passing just the sampled
overrides to a job, so a job can neither report intermediate values nor be pruned (README, "Sweeps").
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, cast

from omegaconf import DictConfig, OmegaConf

PRUNERS = ("none", "median", "successive_halving", "hyperband")
AGGREGATES = ("mean", "iqm")
# the name Hydra knows the sweeper by (see register_sweeper)
PLUGIN_MODULE = "hydra_plugins.sac_runner_optuna"


class SearchError(Exception):
    """A bad search setting; sac-train prints it as one line and exits with status 2."""


def fail(message: str) -> None:
    print(f"sac-train: error: {message}", file=sys.stderr, flush=True)
    sys.exit(2)


# ---------------------------------------------------------------------------------------- settings
def check_settings(hs: Any) -> None:
    """hparams_search.{seeds, aggregate, pruner.type}: one SearchError naming the key and the fix."""
    seeds = hs.get("seeds", 1)
    if not isinstance(seeds, int) or isinstance(seeds, bool) or seeds < 1:
        raise SearchError(f"hparams_search.seeds={seeds} must be an integer >= 1 (seeds per trial), e.g. 3")
    aggregate = hs.get("aggregate", "mean")
    if aggregate not in AGGREGATES:
        raise SearchError(f"hparams_search.aggregate={aggregate} is not one of {', '.join(AGGREGATES)}")
    kind = str(hs.pruner.get("type", "none")) if hs.get("pruner") is not None else "none"
    if kind not in PRUNERS:
        raise SearchError(f"hparams_search.pruner.type={kind} is not a pruner; use one of {', '.join(PRUNERS)}")


def make_pruner(pruner_cfg: Any, total_steps: int):
    """The Optuna pruner of hparams_search.pruner. Steps are env steps; warm-up and resources are given as
    fractions of algorithm.total_steps, so that one preset fits every budget."""
    import optuna

    p = pruner_cfg or {}
    kind = str(p.get("type", "none"))
    if kind == "none":
        return optuna.pruners.NopPruner()
    if kind == "median":
        return optuna.pruners.MedianPruner(
            n_startup_trials=int(p.get("n_startup_trials", 5)),
            n_warmup_steps=int(float(p.get("warmup", 0.25)) * total_steps),
        )
    min_resource = max(1, int(float(p.get("min_resource", 0.1)) * total_steps))
    factor = int(p.get("reduction_factor", 3))
    if kind == "successive_halving":
        return optuna.pruners.SuccessiveHalvingPruner(min_resource=min_resource, reduction_factor=factor)
    if kind == "hyperband":
        return optuna.pruners.HyperbandPruner(
            min_resource=min_resource, max_resource=int(total_steps), reduction_factor=factor
        )
    raise SearchError(f"hparams_search.pruner.type={kind} is not a pruner; use one of {', '.join(PRUNERS)}")


def aggregate(values: Sequence[float], how: str) -> float:
    """The trial's objective from its seeds' objectives: mean, or IQM (25% trimmed from each end)."""
    if not values or not all(math.isfinite(v) for v in values):
        return float("nan")
    if how == "iqm":
        from sac_runner.report_stats import iqm

        return iqm(values)
    return sum(values) / len(values)


def open_storage(url: str):
    """An Optuna RDBStorage for a SQLAlchemy URL (SQLite waits for a lock rather than failing at once when
    several jobs write); any failure to open it is one SearchError."""
    import optuna

    engine_kwargs = {"connect_args": {"timeout": 60}} if url.startswith("sqlite") else {"pool_pre_ping": True}
    try:
        return optuna.storages.RDBStorage(url, engine_kwargs=engine_kwargs)
    except Exception as e:  # noqa: BLE001 - SQLAlchemy, a missing driver, an old schema: all one line
        first = " ".join(str(e).split("\n")[0].split())[:300] or type(e).__name__
        hint = (
            "upgrade it once with: optuna storage upgrade --storage " + url
            if "storage upgrade" in str(e)
            else "use a reachable database URL, e.g. sqlite:///<dir>/optuna.db or postgresql://user@host/db"
        )
        raise SearchError(
            f"hydra.sweeper.storage={url} cannot be opened ({type(e).__name__}: {first}); {hint}"
        ) from None


# ---------------------------------------------------------------------------------------- search space
def _distribution(name: str, sweep: Any):
    import optuna.distributions as d
    from hydra.core.override_parser.types import ChoiceSweep, IntervalSweep, RangeSweep

    if isinstance(sweep, ChoiceSweep):
        return d.CategoricalDistribution([_plain(v) for v in sweep.list])
    if isinstance(sweep, RangeSweep):  # range(start, stop, step): stop excluded, as in Python
        start: Any = sweep.start
        stop: Any = sweep.stop
        step: Any = sweep.step or 1
        if all(isinstance(x, int) for x in (start, stop, step)) and step > 0 and stop > start:
            return d.IntDistribution(start, start + (stop - 1 - start) // step * step, step=step)
        values, v = [], start
        while (step > 0 and v < stop) or (step < 0 and v > stop):
            values.append(v)
            v += step
        return d.CategoricalDistribution(values)
    if isinstance(sweep, IntervalSweep):
        log = "log" in (sweep.tags or set())
        low: Any = sweep.start
        high: Any = sweep.end
        if isinstance(low, int) and isinstance(high, int):
            return d.IntDistribution(low, high, log=log)
        return d.FloatDistribution(float(low), float(high), log=log)
    raise SearchError(f"{name}: cannot search over {sweep}; use choice(...), range(...) or (tag(log,) interval(...)")


def _plain(v: Any) -> Any:
    return v if v is None or isinstance(v, (bool, int, float, str)) else str(v)


def search_space(params: dict, arguments: Sequence[str]) -> tuple[dict, list[str]]:
    """The distributions to search and the fixed overrides of every job, from the preset's params and the
    command line: a sweep on the command line (a,b or choice/interval/range) is searched, a plain value
    fixes a parameter of the preset (`algorithm.utd_ratio=1` takes it out of the search)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parser = OverridesParser.create()
    preset = parser.parse_overrides([f"{k}={v}" for k, v in (params or {}).items()])
    cli = parser.parse_overrides(list(arguments))
    dists: dict = {}
    fixed: list[str] = []
    for o in preset:
        key = o.get_key_element()
        if o.is_sweep_override():
            dists[key] = _distribution(key, o.value())
        else:
            fixed.append(f"{key}={o.get_value_element_as_str()}")
    for o in cli:
        key = o.get_key_element()
        if o.is_sweep_override():
            if key == "seed":
                raise SearchError("seed cannot be searched over; use hparams_search.seeds=N for N seeds per trial")
            dists[key] = _distribution(key, o.value())
        else:
            dists.pop(key, None)
            fixed = [f for f in fixed if f.split("=", 1)[0] != key]
            fixed.append(o.input_line or f"{key}={o.get_value_element_as_str()}")
    return dists, fixed


def _override_value(v: Any) -> str:
    if isinstance(v, str):
        return json.dumps(v) if any(c in v for c in " ,=()[]{}'\"") else v
    return "null" if v is None else repr(v)


def check_space(study, dists: dict, study_name: str, url: str) -> None:
    """A study that already has trials must have been searched over the same space (one SearchError)."""
    for t in study.get_trials(deepcopy=False):
        if not t.distributions:
            continue
        if t.distributions == dists:
            return
        keys = sorted(set(t.distributions) | set(dists))
        diff = [
            f"{k}: {t.distributions.get(k, 'not searched')} there, {dists.get(k, 'not searched')} here"
            for k in keys
            if t.distributions.get(k) != dists.get(k)
        ]
        raise SearchError(
            f"study {study_name} in {url} was searched over another space ({'; '.join(diff)[:400]}); "
            "give the same search space, or a new study with hydra.sweeper.study_name=<name> or another storage"
        )


# ---------------------------------------------------------------------------------------- the sweeper
def _sweeper_base():
    from hydra.plugins.sweeper import Sweeper

    return Sweeper


class OptunaSearchSweeper(_sweeper_base()):  # type: ignore[misc]
    """Hydra Sweeper: an Optuna study driven by ask and tell, one job per trial and seed (see module doc)."""

    def __init__(
        self,
        study_name: str,
        storage: str,
        n_trials: int = 30,
        n_jobs: int = 1,
        direction: str = "maximize",
        sampler: Any = None,
        params: dict | None = None,
        **_ignored: Any,  # e.g. max_failure_rate of hydra-optuna-sweeper's configs: failures never stop a search
    ) -> None:
        self.study_name, self.storage_url = study_name, storage
        self.n_trials, self.n_jobs, self.direction = int(n_trials), max(1, int(n_jobs)), direction
        self.sampler, self.params = sampler, dict(params or {})
        self.config: DictConfig | None = None
        self.launcher: Any = None
        self.job_idx = 0

    def setup(self, *, hydra_context, task_function, config: DictConfig) -> None:
        from hydra.core.plugins import Plugins

        self.config = config
        self.launcher = Plugins.instance().instantiate_launcher(
            hydra_context=hydra_context, task_function=task_function, config=config
        )

    def sweep(self, arguments: list[str]) -> Any:
        assert self.config is not None
        sweep_dir = Path(str(self.config.hydra.sweep.dir))
        try:
            return self._search(arguments, sweep_dir)
        except SearchError as e:
            if sweep_dir.is_dir() and not any(sweep_dir.iterdir()):
                sweep_dir.rmdir()  # made by SweepCallback just before; nothing was written into it
            fail(str(e))

    def _search(self, arguments: list[str], sweep_dir: Path) -> Any:
        import optuna

        cfg = self.config
        assert cfg is not None
        hs = cfg.get("hparams_search") or OmegaConf.create({"seeds": 1, "aggregate": "mean", "pruner": None})
        check_settings(hs)
        seeds = [int(cfg.seed) + i for i in range(int(hs.seeds))]
        dists, fixed = search_space(self.params, arguments)
        pruner = make_pruner(hs.get("pruner"), int(cfg.algorithm.total_steps))
        storage = open_storage(self.storage_url)
        try:
            study = optuna.create_study(
                study_name=self.study_name,
                storage=storage,
                sampler=self.sampler,
                pruner=pruner,
                direction=cast(Any, self.direction),
                load_if_exists=True,
            )
        except Exception as e:  # noqa: BLE001 - e.g. an existing study with the other direction
            raise SearchError(f"study {self.study_name} in {self.storage_url}: {type(e).__name__}: {e}") from None
        check_space(study, dists, self.study_name, self.storage_url)
        sweep_dir.mkdir(parents=True, exist_ok=True)
        OmegaConf.save(cfg, sweep_dir / "multirun.yaml")
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        print(
            f"[optuna] study {self.study_name} in {self.storage_url}: {self.n_trials} trials x {len(seeds)} "
            f"seed(s), pruner {hs.pruner.type if hs.get('pruner') else 'none'}, {self.n_jobs} trial(s) at a time",
            flush=True,
        )
        done, results = 0, []
        while done < self.n_trials:
            batch = [study.ask(dists) for _ in range(min(self.n_jobs, self.n_trials - done))]
            jobs = [
                [
                    *fixed,
                    *(f"{k}={_override_value(v)}" for k, v in t.params.items()),
                    f"seed={s}",
                    f"hparams_search.trial={t.number}",
                ]
                for t in batch
                for s in seeds
            ]
            returns = self.launcher.launch(jobs, initial_job_idx=self.job_idx)
            first_job = self.job_idx
            self.job_idx += len(jobs)
            for i, trial in enumerate(batch):
                mine = returns[i * len(seeds) : (i + 1) * len(seeds)]
                job_nums = list(range(first_job + i * len(seeds), first_job + (i + 1) * len(seeds)))
                results.append(self._tell(study, trial, mine, job_nums, str(hs.aggregate)))
            done += len(batch)
        return self._finish(study, sweep_dir, results)

    def _tell(self, study, trial, returns: Sequence[Any], job_nums: list[int], how: str) -> dict:
        from hydra.core.utils import JobStatus
        from optuna.trial import TrialState

        from sac_runner.sweep import TrialPruned

        values, pruned, failed = [], False, False
        for r in returns:
            if r.status == JobStatus.COMPLETED:
                values.append(float(r.return_value))
            elif isinstance(r._return_value, TrialPruned):
                pruned = True
            else:
                failed = True
        trial.set_user_attr("jobs", job_nums)
        value = aggregate(values, how) if not (pruned or failed) else float("nan")
        if pruned and not failed:
            state = TrialState.PRUNED
        elif failed or not math.isfinite(value):
            state = TrialState.FAIL
        else:
            state = TrialState.COMPLETE
        study.tell(trial, value if state == TrialState.COMPLETE else None, state=state, skip_if_finished=True)
        line = f"[optuna] trial {trial.number} (jobs {', '.join(map(str, job_nums))}): {state.name}"
        if state == TrialState.COMPLETE:
            line += f" {value:.4g}" + (
                f" ({how} of {', '.join(f'{v:.4g}' for v in values)})" if len(values) > 1 else ""
            )
        print(line, flush=True)
        return {"trial": trial.number, "state": state.name, "value": value, "jobs": job_nums}

    def _finish(self, study, sweep_dir: Path, results: list[dict]) -> Any:
        from optuna.trial import TrialState

        counts = {s: sum(r["state"] == s for r in results) for s in ("COMPLETE", "PRUNED", "FAIL")}
        out: dict = {"name": "optuna", "study_name": self.study_name, "storage": self.storage_url, "trials": counts}
        complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        if complete:
            best = study.best_trial
            out.update(
                best_trial=best.number,
                best_value=float(best.value),
                best_params=dict(best.params),
                best_jobs=best.user_attrs.get("jobs"),
            )
            print(f"[optuna] best trial {best.number}: {best.value:.4g} with {best.params}", flush=True)
        else:
            print("[optuna] no trial completed", flush=True)
        OmegaConf.save(OmegaConf.create(out), sweep_dir / "optimization_results.yaml")
        return out


# ---------------------------------------------------------------------------------------- in the job
def _hook_base():
    from sac_runner.trainer import Hook

    return Hook


class TrialReporter(_hook_base()):  # type: ignore[misc]
    """Trainer hook of one seed of one trial: after each evaluation, report its mean return to the study (the
    trial's intermediate value at that env step is the aggregate over the seeds that have reached it) and ask
    the pruner; raise TrialPruned to stop a trial the pruner (or another of its seeds) stopped."""

    def __init__(self, cfg: DictConfig, storage_url: str, study_name: str) -> None:
        import optuna

        hs = cfg.hparams_search
        self.seed, self.how, self.trial_number = int(cfg.seed), str(hs.get("aggregate", "mean")), int(hs.trial)
        self.storage = open_storage(storage_url)
        pruner = make_pruner(hs.get("pruner"), int(cfg.algorithm.total_steps))
        self.study = optuna.load_study(study_name=study_name, storage=self.storage, pruner=pruner)
        study_id = self.storage.get_study_id_from_name(study_name)
        self.trial_id = self.storage.get_trial_id_from_study_id_trial_number(study_id, self.trial_number)
        self.mine: dict[str, float] = {}

    def on_evaluation(self, trainer, evaluation) -> None:
        from optuna.trial import TrialState

        from sac_runner.sweep import TrialPruned

        step, value = int(evaluation.env_steps), float(evaluation.mean)
        self.mine[str(step)] = value
        self.storage.set_trial_user_attr(self.trial_id, f"evals_seed{self.seed}", dict(self.mine))
        trial = self.storage.get_trial(self.trial_id)
        if trial.state != TrialState.RUNNING:
            return
        stopped = trial.user_attrs.get("pruned")
        if stopped is None and math.isfinite(value):
            seen = [
                float(v[str(step)])
                for k, v in trial.user_attrs.items()
                if k.startswith("evals_seed") and str(step) in v
            ]
            self.storage.set_trial_intermediate_value(self.trial_id, step, aggregate(seen, self.how))
            if self.study.pruner.prune(self.study, self.storage.get_trial(self.trial_id)):
                stopped = {"step": step, "value": aggregate(seen, self.how), "by_seed": self.seed}
                self.storage.set_trial_user_attr(self.trial_id, "pruned", stopped)
        if stopped is not None:
            record = {"trial": self.trial_number, "seed": self.seed, "stopped_at": step, **stopped}
            raise TrialPruned(
                f"trial {self.trial_number} pruned at env step {stopped['step']} "
                f"(intermediate value {stopped['value']:.4g})",
                record,
            )


def trial_reporter(cfg: DictConfig, hydra_cfg: Any) -> TrialReporter | None:
    """The hook of a job launched by this sweeper (hparams_search.trial set), else None."""
    hs = cfg.get("hparams_search")
    if hs is None or hs.get("trial") is None or PLUGIN_MODULE not in str(hydra_cfg.sweeper.get("_target_", "")):
        return None
    return TrialReporter(cfg, str(hydra_cfg.sweeper.storage), str(hydra_cfg.sweeper.study_name))


# ---------------------------------------------------------------------------------------- registration
def register_sweeper() -> None:
    """Make OptunaSearchSweeper known to Hydra as hydra_plugins.sac_runner_optuna.OptunaSearchSweeper.

    hydra-core 1.3.8 instantiates a sweeper only from a class under the `hydra_plugins` package: its
    Plugins._instantiate refuses any other `hydra.sweeper._target_` ("not the hydra_plugins package"), so a
    _target_ inside sac_runner does not work. A hydra_plugins/ package of our own would be a new top-level
    directory, and one mapped from inside sac_runner/ is invisible to the pkgutil scan Hydra uses in an
    editable install (setuptools serves it through an import hook). So sac-train registers the class itself,
    through Hydra's public Plugins.register, under that package name, before Hydra starts. Only the sweeper
    process needs it: jobs never instantiate the sweeper, and Hydra leaves the plugin registry out of the
    state it passes to joblib and submitit workers."""
    import types

    from hydra.core.plugins import Plugins

    plugins = Plugins.instance()
    name = f"{PLUGIN_MODULE}.{OptunaSearchSweeper.__name__}"
    if name in plugins.class_name_to_class:
        return
    # Hydra's instantiate also imports the class by that name, so the name is a module too
    module = sys.modules.get(PLUGIN_MODULE) or types.ModuleType(PLUGIN_MODULE, "sac_runner's Optuna sweeper")
    registered = type(OptunaSearchSweeper.__name__, (OptunaSearchSweeper,), {"__module__": PLUGIN_MODULE})
    setattr(module, OptunaSearchSweeper.__name__, registered)
    sys.modules[PLUGIN_MODULE] = module
    plugins.register(registered)
