"""sac-report's groups: runs that ran with the same config values (config.yaml), except the keys that never split
groups (keys.py), form a group, labelled by the values that set it apart ("trial <n>" in an Optuna search)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from sac_runner.keys import HYDRA_PREFIXES, NOT_GROUPING
from sac_runner.rundir import override_keys

if TYPE_CHECKING:
    from sac_runner.report.data import Run

# the trial number of a job of an Optuna search (sweeps/optuna_sweeper.py): its groups are labelled "trial <n>"
TRIAL_KEY = "hparams_search.trial"


def override_key(override: str) -> str:
    """The config key an override names ('+a.b=1' -> 'a.b'), by rundir.override_keys; '' when it names none."""
    keys = override_keys([override])
    return keys[0] if keys else ""


def groups_by(key: str) -> bool:
    """Whether runs that differ in this config key are different groups: not for keys.NOT_GROUPING (and the
    keys under them) nor Hydra's own keys."""
    if key.startswith(HYDRA_PREFIXES) or key in ("hydra", ""):
        return False
    return not any(key == k or key.startswith(k + ".") for k in NOT_GROUPING)


def canonical(value) -> str:
    """A value's text for comparing configs: numbers by their float value (1 and 1.0 are the same learning
    rate), lists element by element, YAML's spelling of booleans and null."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, (int, float)):
        return repr(float(value))
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(canonical(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ",".join(f"{k}:{canonical(v)}" for k, v in sorted(value.items())) + "}"
    return str(value)


def show(value, short: bool = True) -> str:
    """A config value as a label shows it: lists without spaces, YAML's booleans and null, and with `short`
    long floats to 4 significant digits."""
    if short and isinstance(value, float) and not value.is_integer() and len(repr(value)) > 7:
        return f"{value:.4g}"
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(show(v, short) for v in value) + "]"
    return canonical(value) if isinstance(value, bool) or value is None else str(value)


@dataclass
class Group:
    """Runs on one environment that ran with the same config (group_key). `settings` are the config values
    that set the group apart from the other groups of its environment; `detail` says them in a line ("trial 3"
    for a trial of an Optuna search); `label` is the same, led by the environment when the report has several."""

    key: tuple[tuple[str, str], ...]
    runs: list[Run]
    env_id: str | None = None
    label: str = ""
    detail: str = ""
    settings: dict = field(default_factory=dict)

    @property
    def config(self) -> dict:
        return self.runs[0].config

    @property
    def trial(self):
        """The Optuna trial number of the group's runs, or None outside a search."""
        return self.config.get(TRIAL_KEY)


_MISSING = object()


def differing_keys(groups: list[Group]) -> list[str]:
    """The config keys (in config order) whose values tell these groups apart, preferring the keys the runs'
    command lines named (`search.actor_width` rather than the `architecture.actor_hidden_sizes` it sets) as
    long as those alone still tell every group apart."""
    keyed = [dict(g.key) for g in groups]
    order = list(dict.fromkeys(k for g in groups for k in g.config if groups_by(k)))
    differ = [k for k in order if len({d.get(k, _MISSING) for d in keyed}) > 1]
    named = {override_key(o) for g in groups for r in g.runs for o in r.own_overrides}
    chosen = [k for k in differ if any(k == n or k.startswith(n + ".") for n in named)]
    if chosen and len({tuple(d.get(k, _MISSING) for k in chosen) for d in keyed}) == len(groups):
        return chosen
    return differ


def make_groups(runs: list[Run]) -> list[Group]:
    """Runs on the same environment with the same config (Run.group_key) form one group, in order of first
    appearance, each environment's groups together. A group's label shows the config values that differ
    between the groups of its environment (differing_keys), or "trial <n>" for a trial of an Optuna search
    (its values are in trial_table); with several environments (a sweep over env=...) it starts with the
    environment."""
    groups: dict[tuple, Group] = {}
    for r in runs:
        groups.setdefault((r.env_id, r.group_key), Group(r.group_key, [], r.env_id)).runs.append(r)
    order = {env: i for i, env in reversed(list(enumerate(r.env_id for r in runs)))}
    out = sorted(groups.values(), key=lambda g: order[g.env_id])  # each environment's groups together
    several = len(order) > 1
    for env in order:
        mine = [g for g in out if g.env_id == env]
        keys = differing_keys(mine)
        for g in mine:
            g.settings = {k: g.config[k] for k in keys if k in g.config}
            if g.trial is not None:
                g.detail = f"trial {g.trial}"
            else:
                g.detail = " ".join(f"{k}={show(v)}" for k, v in g.settings.items() if k != TRIAL_KEY)
        labels = [g.detail for g in mine]
        for g in mine:  # the same trial number from two studies: say their values too
            if g.trial is not None and labels.count(g.detail) > 1:
                g.detail += " " + " ".join(f"{k}={show(v)}" for k, v in g.settings.items() if k != TRIAL_KEY)
            g.label = " ".join([g.env_id or "unknown env", g.detail]).strip() if several else g.detail or "(all runs)"
            for r in g.runs:
                r.group_label = g.label
    return out


def trial_table(groups: list[Group]) -> tuple[list[str], list[list[str]]] | None:
    """When groups are trials of an Optuna search: a table of each group's searched values (header, rows), a key
    shortened to its last part where no other config key ends so (`tau`, but `actor_optimizer.lr`); None for
    other reports."""
    if not any(g.trial is not None and g.detail.startswith("trial ") for g in groups):
        return None
    keys = list(dict.fromkeys(k for g in groups for k in g.settings if k != TRIAL_KEY))
    every = [k.rsplit(".", 1)[-1] for k in dict.fromkeys(k for g in groups for k in g.config)]
    names = [k.rsplit(".", 1)[-1] if every.count(k.rsplit(".", 1)[-1]) == 1 else k for k in keys]
    rows = [[g.label, *(show(g.settings[k]) if k in g.settings else "-" for k in keys)] for g in groups]
    return ["group", *names], rows


def env_ids(groups: list[Group]) -> list[str | None]:
    """The groups' environments, in order of first appearance."""
    return list(dict.fromkeys(g.env_id for g in groups))


def common_overrides(groups: list[Group]) -> list[str]:
    """The command-line overrides that every run of every group shares (said once, not in the labels)."""
    runs = [r for g in groups for r in g.runs]
    if not runs:
        return []
    shared = set.intersection(*(set(r.own_overrides) for r in runs))
    return [o for o in runs[0].own_overrides if o in shared]
