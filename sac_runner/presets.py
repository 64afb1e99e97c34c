"""`env=<id>` for every registered Gymnasium environment, the env presets, and sac-train's help text.

conf/env/<id>.yaml are the presets: the hyperparameters and step budget for one task, and under `preset:` its
description and where its values come from (one of SOURCES). Every other id in gymnasium's registry is made
an option of the `env` group as well, with the default hyperparameters (conf/env/generic.yaml with its id
filled in), by register_env_configs(), which sac-train calls before Hydra composes the config. Why Hydra's
ConfigStore rather than a config-source plugin: README, Design notes. An unknown `env=` name is turned into one
line with the closest ids (unknown_env_message) before Hydra runs, by sac_runner/overrides.py.
"""

from __future__ import annotations

import difflib
from functools import cache
from importlib.resources import files

import gymnasium as gym
from hydra.core.config_store import ConfigStore
from omegaconf import DictConfig, OmegaConf

from sac_runner import envs

GROUP = "env"
# the env option that takes its id from env.id (kept for `env=generic env.id=<id>`); not a preset
GENERIC = "generic"
# suites, by the module of the environment's entry point: (title, the extra that installs it)
SUITES = {
    "mujoco": ("MuJoCo", "mujoco"),
    "box2d": ("Box2D", "box2d"),
    "classic_control": ("Classic control", None),
}
# where a preset's values come from: conf/env/<id>.yaml names one of these as preset.source, and notes only
# where it departs from it. Which presets were measured here, and how they did: the README's presets table.
SOURCES = {
    "sac-paper": "the SAC paper's hyperparameters (Haarnoja et al. 2018, \"Soft Actor-Critic Algorithms and "
    'Applications", table 1: Adam 3e-4, batch 256, tau 0.005, discount 0.99, one gradient step per env step, '
    "target entropy -|A|), which are the defaults of conf/algorithm/sac.yaml, with 256-256 networks; the budget "
    "and the 10k uniformly random warm-up steps as in rl-baselines3-zoo's MuJoCo entries where the zoo has the "
    "task, else our choice",
    "rl-zoo": "rl-baselines3-zoo's tuned SAC entry for the task, without what sac_runner does not have "
    "(gSDE exploration, learning-rate schedules)",
    "sac_runner": "tuned here, by measured runs",
}


def _conf():
    return files("sac_runner.conf")


def group_options(group: str) -> list[str]:
    """The options of a config group shipped in conf/<group>/ (`hydra/launcher`: conf/hydra/launcher/), sorted;
    OSError when sac_runner ships no such group."""
    folder = _conf().joinpath(*group.split("/"))
    return sorted(p.name[: -len(".yaml")] for p in folder.iterdir() if p.name.endswith(".yaml"))


@cache
def default_env() -> str:
    """The env option conf/config.yaml's defaults list picks when the command line names none."""
    entries = _load("config.yaml").defaults
    return next(str(e[GROUP]) for e in entries if isinstance(e, DictConfig) and GROUP in e)


@cache
def preset_names() -> tuple[str, ...]:
    """The env presets shipped in conf/env/ (without `generic`), sorted."""
    return tuple(n for n in group_options(GROUP) if n != GENERIC)


@cache
def _load(*path: str) -> DictConfig:
    """A YAML file of the config tree, as written (not composed)."""
    return OmegaConf.create(_conf().joinpath(*path).read_text())  # type: ignore[return-value]


def preset_description(name: str) -> str:
    """A preset's description of its task (its preset.description)."""
    return str(OmegaConf.select(_load(GROUP, f"{name}.yaml"), "preset.description", default=""))


def preset_source(name: str) -> str:
    """Where a preset's values come from: its preset.source, a key of SOURCES."""
    return str(OmegaConf.select(_load(GROUP, f"{name}.yaml"), "preset.source", default=""))


def preset_budget(name: str) -> tuple[int, list[int]]:
    """A preset's step budget and critic network sizes, as composed: its own values, else those of the
    architecture option it picks (`override /architecture: <option>`) and of conf/algorithm/sac.yaml."""
    own = _load(GROUP, f"{name}.yaml")
    steps = OmegaConf.select(own, "algorithm.total_steps", default=_load("algorithm", "sac.yaml").total_steps)
    options = [e for e in own.get("defaults", []) if isinstance(e, DictConfig) and "override /architecture" in e]
    arch = options[0]["override /architecture"] if options else "default"
    sizes = OmegaConf.select(own, "architecture.critic_hidden_sizes", default=None)
    if sizes is None:
        sizes = _load("architecture", f"{arch}.yaml").get("critic_hidden_sizes")
    if sizes is None:  # an option that keeps the default sizes
        sizes = _load("architecture", "default.yaml").critic_hidden_sizes
    return int(steps), [int(h) for h in sizes]


def format_steps(n: int) -> str:
    """A step count as people write it: 30k, 1M, 2.5M, 1500."""
    if n >= 1_000_000 and n % 100_000 == 0:
        return f"{n / 1_000_000:g}M"
    return f"{n / 1000:g}k" if n >= 1000 and n % 100 == 0 else str(n)


def preset_line(name: str) -> str:
    """A preset's line in sac-train --help: its description, step budget and network sizes."""
    steps, sizes = preset_budget(name)
    return f"{preset_description(name)}; {format_steps(steps)} steps, {'-'.join(map(str, sizes))} networks."


def suite(env_id: str) -> str:
    """'mujoco', 'box2d', 'classic_control' or 'other', from the entry point of a registered id."""
    try:
        entry = str(gym.spec(env_id).entry_point)
    except gym.error.Error:
        return "other"
    if env_id == envs.CARTPOLE_CONTINUOUS_ID:
        return "classic_control"
    return next((s for s in SUITES if f"gymnasium.envs.{s}" in entry), "other")


def registered_ids() -> list[str]:
    """Every id in gymnasium's registry, sac_runner's own included (envs registers CartPoleContinuous-v1)."""
    return list(gym.registry)


def env_options() -> list[str]:
    """What `env=` accepts: the presets, `generic`, and every registered id."""
    return sorted({*preset_names(), GENERIC, *registered_ids()})


def register_env_configs() -> int:
    """Store an `env` option in Hydra's ConfigStore for each registered id without a preset file:
    conf/env/generic.yaml with env.id set. Idempotent; returns the number of ids stored."""
    template = OmegaConf.create(_conf().joinpath(GROUP, f"{GENERIC}.yaml").read_text())
    store, presets, n = ConfigStore.instance(), set(preset_names()), 0
    for env_id in registered_ids():
        if env_id in presets:  # a file of the same name wins; storing both would make Hydra merge them
            continue
        node = template.copy()
        node.env.id = env_id
        # a namespaced id (phys2d/CartPole-v1) is an option in a subgroup: env=phys2d/CartPole-v1
        group, _, name = f"{GROUP}/{env_id}".rpartition("/")
        store.store(group=group, name=name, node=node, package="_global_", provider="sac_runner")
        n += 1
    return n


def close_matches(name: str, candidates, n: int = 1) -> list[str]:
    """Up to n candidates closest to name (case-insensitive; on a tie the higher version first)."""
    by_lower = {c.lower(): c for c in candidates}
    return [by_lower[m] for m in difflib.get_close_matches(name.lower(), list(by_lower), n=n, cutoff=0.6)]


def unknown_env_message(name: str, key: str = "env") -> str:
    """One line for an env that is neither a preset nor a registered id, with the closest one as the fix."""
    if key == "env":
        problem = f"env={name} is neither an env preset nor a registered Gymnasium environment"
        match = close_matches(name, env_options())
    else:
        problem = f"{key}={name!r} is not a registered Gymnasium environment"
        match = close_matches(name, registered_ids())
    if match:
        return f"{problem}; did you mean {match[0]}?"
    return (
        f"{problem}; use a preset (sac-train --help lists them) or any registered id with a Box action space, "
        f"e.g. env=MountainCarContinuous-v0"
    )


# ------------------------------------------------------------------------------------------------ help
def _preset_lines() -> list[str]:
    """The presets by suite, one line each: id, description."""
    width = max(len(n) for n in preset_names()) + 2
    by_suite: dict[str, list[str]] = {}
    for name in preset_names():
        by_suite.setdefault(suite(name), []).append(name)
    lines = []
    for key in [*SUITES, "other"]:
        if key not in by_suite:
            continue
        title, extra = SUITES.get(key, ("Other", None))
        lines.append(f"  {title}" + (f" (pip install 'sac_runner[{extra}]'):" if extra else ":"))
        lines += [f"    {n.ljust(width)}{preset_line(n)}" for n in by_suite[key]]
    return lines


def _group_lines() -> list[str]:
    """The other config groups and their options, one line each."""
    lines = []
    names = {
        "optimizer": "optimizer@actor_optimizer (also critic_, entropy_coef_)",
        "logger": "logger (a list, e.g. logger=[tensorboard,wandb])",
        "hydra/launcher": "hydra/launcher (where the jobs of -m run)",
    }
    groups = ("algorithm", "architecture", "optimizer", "experiment", "hparams_search", "logger", "hydra/launcher")
    for group in groups:
        try:
            options = group_options(group)
        except OSError:  # a group this checkout does not ship
            continue
        lines.append(f"  {names.get(group, group)}: {', '.join(options)}")
    return lines


def help_text(what: str) -> str:
    """The generated parts of sac-train --help (conf/hydra/help/sac-train.yaml, the `sac_help` resolver):
    'presets' or 'groups'. '$' is doubled: Hydra fills the template with string.Template."""
    lines = _preset_lines() if what == "presets" else _group_lines()
    return "\n".join(lines).replace("$", "$$")


def register_resolvers() -> None:
    OmegaConf.register_new_resolver("sac_help", help_text, replace=True)
