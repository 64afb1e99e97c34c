"""Hyperparameter search on Optuna's ask-and-tell API, as a Hydra sweeper (`sac-train -m hparams_search=optuna`):
the sweeper side. Why sac_runner has its own sweeper rather than hydra-optuna-sweeper: README, Design notes.

The sweeper process asks the study for trials and launches one job per trial and seed through Hydra's
launcher (sequential, joblib or SLURM); each job reports its evaluation returns to the same study through
its storage (optuna_trial.py), where a pruner may stop it early; the sweeper then tells the study the
trial's outcome: COMPLETE with the seeds' aggregated objective, PRUNED, or FAIL.
"""

from __future__ import annotations

import json
import math
import sys
import types
from collections.abc import Sequence
from pathlib import Path
from typing import Any, cast

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import ChoiceSweep, IntervalSweep, RangeSweep
from hydra.core.plugins import Plugins
from hydra.core.utils import JobStatus
from hydra.plugins.sweeper import Sweeper
from omegaconf import DictConfig, OmegaConf

from sac_runner.errors import SearchError, TrialPruned, fail
from sac_runner.objectives import aggregate
from sac_runner.sweeps.optuna_study import PLUGIN_MODULE, check_settings, make_pruner, open_storage


def _distribution(name: str, sweep: Any):
    import optuna.distributions as d  # at first use: an optional extra, slow to import

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


class OptunaSearchSweeper(Sweeper):
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
        import optuna  # at first use: an optional extra, slow to import

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
        from optuna.trial import TrialState

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


def register_sweeper() -> None:
    """Register OptunaSearchSweeper through Hydra's Plugins.register as
    hydra_plugins.sac_runner_optuna.OptunaSearchSweeper, the `_target_` of conf/hydra/sweeper/optuna_search.yaml
    (hydra-core 1.3 instantiates sweepers only from the hydra_plugins package). sac-train calls it before Hydra
    starts; only the sweeper process needs it. Why it is registered rather than packaged: README, Design notes."""
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
