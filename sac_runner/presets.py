"""`env=<id>` for every registered Gymnasium environment, the env presets, and sac-train's help text.

conf/env/<id>.yaml are the presets: the hyperparameters and step budget for one task. Every other id in
gymnasium's registry is made an option of the `env` group as well, with the default hyperparameters
(conf/env/generic.yaml with its id filled in), by register_env_configs(), which sac-train calls before
Hydra composes the config.

Why entries in Hydra's ConfigStore, and not a ConfigSource or SearchPathPlugin (which could answer for
any name on demand):
- Hydra finds such plugins by walking the `hydra_plugins` namespace package with pkgutil, and pkgutil
  cannot list modules behind setuptools' editable-install finder: with a `hydra_plugins` package mapped
  from inside sac_runner/, `pip install .` lists its modules but `pip install -e .` lists none (checked
  with setuptools 84), so an editable install would quietly lose the plugin; and the distribution would
  gain a second top-level package.
- The ConfigStore is a public Hydra API that needs no packaging at all, and Hydra hands its contents to
  the worker processes of the joblib and submitit launchers (as part of its Singleton state), so
  `sac-train -m env=Hopper-v5,Walker2d-v5` behaves the same with every launcher.
- Its limit: it knows the ids registered when sac-train starts. Gymnasium (>= 1.0) has no plugin
  discovery, so a user's own environment is registered by a script that then calls
  sac_runner.cli.train() (see the README), or named with env=generic env.id=<module>:<id>, which
  imports <module> first.
- A name Hydra cannot find fails inside Hydra with a multi-line message and status 1. check_env_overrides()
  therefore reads the `env=` overrides with Hydra's own parser before Hydra runs (argv is read, never
  rewritten) and turns an unknown name into one line with the closest ids.
"""

from __future__ import annotations

import difflib
from functools import cache
from importlib.resources import files

GROUP = "env"
# the env option that takes its id from env.id (kept for `env=generic env.id=<id>`); not a preset
GENERIC = "generic"
# suites, by the module of the environment's entry point: (title, the extra that installs it)
SUITES = {
    "mujoco": ("MuJoCo", "mujoco"),
    "box2d": ("Box2D", "box2d"),
    "classic_control": ("Classic control", None),
}


def _conf():
    return files("sac_runner.conf")


def _options(group: str) -> list[str]:
    """The options of a config group shipped in conf/<group>/, sorted."""
    return sorted(p.name[: -len(".yaml")] for p in _conf().joinpath(group).iterdir() if p.name.endswith(".yaml"))


@cache
def preset_names() -> tuple[str, ...]:
    """The env presets shipped in conf/env/ (without `generic`), sorted."""
    return tuple(n for n in _options(GROUP) if n != GENERIC)


@cache
def preset_description(name: str) -> str:
    """A preset's one-line description: the first comment line after `# @package _global_`."""
    for line in _conf().joinpath(GROUP, f"{name}.yaml").read_text().splitlines():
        text = line.strip()
        if text.startswith("#") and not text.startswith("# @package"):
            return text.lstrip("#").strip()
    return ""


def suite(env_id: str) -> str:
    """'mujoco', 'box2d', 'classic_control' or 'other', from the entry point of a registered id."""
    import gymnasium as gym

    from sac_runner import envs  # noqa: F401 - registers CartPoleContinuous-v1

    try:
        entry = str(gym.spec(env_id).entry_point)
    except gym.error.Error:
        return "other"
    if env_id == envs.CARTPOLE_CONTINUOUS_ID:
        return "classic_control"
    return next((s for s in SUITES if f"gymnasium.envs.{s}" in entry), "other")


def registered_ids() -> list[str]:
    """Every id in gymnasium's registry, sac_runner's own included."""
    import gymnasium as gym

    from sac_runner import envs  # noqa: F401 - registers CartPoleContinuous-v1

    return list(gym.registry)


def env_options() -> list[str]:
    """What `env=` accepts: the presets, `generic`, and every registered id."""
    return sorted({*preset_names(), GENERIC, *registered_ids()})


def register_env_configs() -> int:
    """Store an `env` option in Hydra's ConfigStore for each registered id without a preset file:
    conf/env/generic.yaml with env.id set. Idempotent; returns the number of ids stored."""
    from hydra.core.config_store import ConfigStore
    from omegaconf import OmegaConf

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


def _hydra_overrides(argv: list[str]) -> tuple[list[str], bool]:
    """The overrides among sac-train's arguments, and whether the config search path was extended
    (--config-dir, --config-path, hydra.searchpath), which may add env options we do not know."""
    try:
        from hydra._internal.utils import get_args_parser  # the parser hydra.main itself uses

        args, _ = get_args_parser().parse_known_args(argv)
        overrides, extended = list(args.overrides or []), bool(args.config_dir or args.config_path)
        if args.shell_completion:
            return [], True
    except Exception:  # noqa: BLE001 - Hydra's parser moved: treat every non-flag argument as an override
        overrides, extended = [a for a in argv if not a.startswith("-")], False
    extended = extended or any(o.lstrip("+~").startswith("hydra.searchpath") for o in overrides)
    return overrides, extended


def check_env_overrides(argv: list[str]) -> str | None:
    """Before Hydra runs: one line naming an `env=` choice (or one value of a sweep over it) that is
    neither a preset nor a registered id, with the closest match; None when all are known (and when the
    search path was extended, or the overrides do not parse: Hydra then reports them itself)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.core.override_parser.types import ValueType

    overrides, extended = _hydra_overrides(argv)
    if extended:
        return None
    try:
        parsed = OverridesParser.create().parse_overrides(overrides)
    except Exception:  # noqa: BLE001 - a syntax error: Hydra's own message says where
        return None
    known = None
    for o in parsed:
        if o.key_or_group != GROUP or o.package is not None or o.is_delete():
            continue
        try:
            if o.value_type == ValueType.GLOB_CHOICE_SWEEP:
                continue  # matched against the available options by Hydra itself
            values = list(o.sweep_string_iterator()) if o.is_sweep_override() else [o.value()]
        except Exception:  # noqa: BLE001 - an unusual sweep: leave it to Hydra
            continue
        for v in values:
            if v is None:
                continue
            known = known if known is not None else set(env_options())
            if str(v) not in known:
                return unknown_env_message(str(v))
    return None


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
        lines += [f"    {n.ljust(width)}{preset_description(n)}" for n in by_suite[key]]
    return lines


def _group_lines() -> list[str]:
    """The other config groups and their options, one line each."""
    lines = []
    for group in ("algorithm", "architecture", "optimizer", "experiment", "hparams_search"):
        name = "optimizer@actor_optimizer (also critic_, entropy_coef_)" if group == "optimizer" else group
        lines.append(f"  {name}: {', '.join(_options(group))}")
    return lines


def help_text(what: str) -> str:
    """The generated parts of sac-train --help (conf/hydra/help/sac-train.yaml, the `sac_help` resolver):
    'presets' or 'groups'. '$' is doubled: Hydra fills the template with string.Template."""
    lines = _preset_lines() if what == "presets" else _group_lines()
    return "\n".join(lines).replace("$", "$$")


def register_resolvers() -> None:
    from omegaconf import OmegaConf

    OmegaConf.register_new_resolver("sac_help", help_text, replace=True)
