"""The job side of the Optuna search (optuna_sweeper.py): a job launched for one seed of one trial reports its
evaluations to the study and stops when the pruner says so."""

from __future__ import annotations

import math
import time
from typing import Any

from omegaconf import DictConfig

from sac_runner.errors import TrialPruned
from sac_runner.hydra_mode import hydra_config, is_multirun, uses_optuna
from sac_runner.objectives import aggregate
from sac_runner.sweeps.optuna_study import PLUGIN_MODULE, make_pruner, open_storage
from sac_runner.training.hooks import Hook
from sac_runner.training.trainer import Trainer


class TrialReporter(Hook):
    """Trainer hook of one seed of one trial: after each evaluation, report its mean return to the study (the
    trial's intermediate value at that env step is the aggregate over the seeds that have reached it) and ask
    the pruner; raise TrialPruned to stop a trial the pruner (or another of its seeds) stopped."""

    def __init__(self, cfg: DictConfig, storage_url: str, study_name: str) -> None:
        import optuna  # at first use: an optional extra, slow to import

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


def trial_hooks(cfg: DictConfig) -> list[Hook]:
    """The trainer hooks of a job of an Optuna search (reporting to the study, pruning); none elsewhere."""
    hc = hydra_config()
    if hc is None or not is_multirun() or not uses_optuna(hc):
        return []
    hook = trial_reporter(cfg, hc)
    return [] if hook is None else [hook]


def train_trial(trainer: Trainer) -> dict:
    """trainer.train(), or, when the search's pruner stops the trial, the summary of the run so far with
    "pruned" set (its checkpoints are those of its last evaluation)."""
    start, steps = time.perf_counter(), trainer.progress.env_steps
    try:
        return trainer.train()
    except TrialPruned as e:
        summary = trainer.summary(time.perf_counter() - start, trainer.progress.env_steps - steps)
        summary["pruned"] = {**e.record, "message": e.message}
        return summary
