"""What both sides of the Optuna search (optuna_sweeper.py, optuna_trial.py) share: its settings, its pruner and
its storage.

optuna is imported at first use, not with this module: it is an optional extra (sweep), and slow to import.
"""

from __future__ import annotations

from typing import Any

from sac_runner.errors import SearchError
from sac_runner.objectives import AGGREGATES

PRUNERS = ("none", "median", "successive_halving", "hyperband")
# the name Hydra knows the sweeper by (optuna_sweeper.register_sweeper)
PLUGIN_MODULE = "hydra_plugins.sac_runner_optuna"


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
