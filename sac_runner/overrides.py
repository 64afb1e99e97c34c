"""sac-train's command line, read with Hydra's own parser before Hydra runs: one line for a mistake that Hydra
would report in many lines (or only once a sweep has started), and `--version`.

check_overrides() names the first of: an `env=` choice that is neither a preset nor a registered id; an option
that a config group does not have (`architecture=tiny`, `hydra/launcher=paralel`), listing the options we
document; a key the config does not have (`algoritm.total_steps=10`, `total_steps=3000`), with the closest
valid key; `env.id=<id>` without `env=`, which keeps the default preset's hyperparameters. Each is one line
with the fix, and sac-train exits with status 2 before anything is written. Where the command extends the
config search path (--config-dir, hydra.searchpath) the options and keys may come from elsewhere: Hydra
checks them itself.
"""

from __future__ import annotations

import difflib
import importlib.metadata
from dataclasses import dataclass

from hydra import compose as hydra_compose
from hydra import initialize_config_module
from hydra.core.global_hydra import GlobalHydra
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Override, ValueType
from omegaconf import DictConfig, ListConfig, OmegaConf

from sac_runner import presets
from sac_runner.config import CONFIG_MODULE, hydra_overrides

# what `sac-train --version` names, after sac_runner itself
VERSION_OF = ("torch", "gymnasium", "hydra-core")


def version_text() -> str:
    """`sac-train --version`: sac_runner's version, then its main dependencies', one a line."""
    lines = [f"sac_runner {_version('sac_runner')}"]
    lines += [f"{name} {_version(name)}" for name in VERSION_OF]
    return "\n".join(lines)


def _version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "(not installed)"


def asks_version(argv: list[str]) -> bool:
    """Whether the arguments ask for --version (argparse also takes an unambiguous abbreviation, e.g. --vers)."""
    return any(len(a) > 2 and "--version".startswith(a) for a in argv)


@dataclass
class CommandLine:
    overrides: list[str]  # as given, in order
    extended: bool  # --config-dir / --config-path / hydra.searchpath: options and keys may come from elsewhere
    multirun: bool


def parse_command_line(argv: list[str]) -> CommandLine:
    """sac-train's arguments as hydra.main reads them."""
    try:
        from hydra._internal.utils import get_args_parser  # the parser hydra.main itself uses

        args, _ = get_args_parser().parse_known_args(argv)
        overrides, extended = list(args.overrides or []), bool(args.config_dir or args.config_path)
        multirun = bool(args.multirun)
        if args.shell_completion:
            return CommandLine([], True, multirun)
    except Exception:  # noqa: BLE001 - Hydra's parser moved: treat every non-flag argument as an override
        overrides, extended = [a for a in argv if not a.startswith("-")], False
        multirun = "-m" in argv or "--multirun" in argv
    extended = extended or any(o.lstrip("+~").startswith("hydra.searchpath") for o in overrides)
    return CommandLine(overrides, extended, multirun)


def documented_argv(argv: list[str]) -> list[str]:
    """sac-train's arguments with the overrides in the form Hydra takes (config.hydra_overrides: the documented
    env.kwargs.<name>=<value> becomes ++env.kwargs.<name>=<value>); every other argument as it is."""
    overrides = set(parse_command_line(argv).overrides)
    return [hydra_overrides([a])[0] if a in overrides else a for a in argv]


def _parse(overrides: list[str]) -> list[Override] | None:
    try:
        return OverridesParser.create().parse_overrides(overrides)
    except Exception:  # noqa: BLE001 - a syntax error: Hydra's own message says where
        return None


def _values(o: Override) -> list | None:
    """The values an override gives its key (each value of a sweep); None where Hydra must expand them
    (a glob, an interval of a search)."""
    if o.value_type == ValueType.GLOB_CHOICE_SWEEP:
        return None
    try:
        return list(o.sweep_string_iterator()) if o.is_sweep_override() else [o.value()]
    except Exception:  # noqa: BLE001 - an interval or an unusual sweep
        return None


def check_env_overrides(argv: list[str]) -> str | None:
    """One line naming an `env=` choice (or one value of a sweep over it) that is neither a preset nor a
    registered id, with the closest match; None when all are known (and when the search path was extended,
    or the overrides do not parse: Hydra then reports them itself)."""
    line = parse_command_line(argv)
    parsed = None if line.extended else _parse(line.overrides)
    return _env_problem(parsed) if parsed else None


def _env_problem(parsed: list[Override]) -> str | None:
    known = None
    for o in parsed:
        if o.key_or_group != presets.GROUP or o.package is not None or o.is_delete():
            continue
        for v in _values(o) or []:
            if v is None:
                continue
            known = known if known is not None else set(presets.env_options())
            if str(v) not in known:
                return presets.unknown_env_message(str(v))
    return None


def _env_id_problem(parsed: list[Override]) -> str | None:
    """`env.id=<id>` without `env=` swaps the task under the default preset's hyperparameters and budget."""
    if any(o.key_or_group == presets.GROUP and not o.is_delete() for o in parsed):
        return None  # env= is on the command line too: the combination is deliberate
    default = presets.default_env()
    for o in parsed:
        if o.key_or_group != "env.id" or o.is_delete():
            continue
        values = _values(o)
        if values is not None and all(str(v) == default for v in values):
            continue  # the default preset's own id: nothing changes
        given = o.input_line.split("=", 1)[1] if o.input_line and "=" in o.input_line else "<id>"
        return (
            f"{o.input_line} keeps the {default} preset's hyperparameters and budget and only swaps the task; "
            f"use env={given} (its preset, or the defaults for an id without one; env=generic env.id={given} "
            f"for the defaults in any case)"
        )
    return None


def check_overrides(argv: list[str]) -> str | None:
    """The first mistake among sac-train's overrides, as one line naming it and the fix; None when there is none
    that can be told before Hydra runs (see the module's docstring)."""
    line = parse_command_line(argv)
    if line.extended:
        return None
    parsed = _parse(line.overrides)
    if not parsed:
        return None
    try:
        problem = _env_problem(parsed) or _env_id_problem(parsed)
        if problem:
            return problem
        with initialize_config_module(CONFIG_MODULE, version_base="1.3"):
            loader = GlobalHydra.instance().config_loader()
            groups = {o.key_or_group: loader.get_group_options(o.key_or_group) for o in parsed}
            groups = {g: options for g, options in groups.items() if options}
            problem = _group_problem(parsed, groups, loader)
            if problem is None:
                problem = _key_problem(parsed, groups)
    except Exception:  # noqa: BLE001 - a case this check did not foresee: Hydra reports it, as before
        return None
    return problem


# ----------------------------------------------------------------------------------------------- groups
def _group_problem(parsed: list[Override], groups: dict[str, list[str]], loader) -> str | None:
    """An option that a config group does not have, or a group that does not exist (`hydra/launchr=...`)."""
    for o in parsed:
        group, element = o.key_or_group, o.get_key_element().lstrip("+~")
        if group.split("/")[0] == presets.GROUP or o.is_delete():
            continue  # env= options: _env_problem
        if group not in groups:
            if "/" in group:  # only a group can be named with a slash
                parent, _, _ = group.rpartition("/")
                siblings = [f"{parent}/{g}" for g in loader.list_groups(parent)]
                match = presets.close_matches(group, siblings)
                fix = f"did you mean {match[0]}?" if match else "sac-train --help lists the config groups"
                return f"{element} is not a config group; {fix}"
            continue
        options = groups[group]
        shown = documented_options(group) or options
        for v in _values(o) or []:
            for item in v if isinstance(v, list) else [v]:  # a list picks several options: logger=[tensorboard,wandb]
                if item is None or str(item) in options:
                    continue
                match = presets.close_matches(str(item), shown)
                if isinstance(v, list):
                    said, fix = f"{element}={_text(v)}: {item}", f"did you mean {match[0]}?" if match else ""
                else:
                    said, fix = f"{element}={item}", f"did you mean {element}={match[0]}?" if match else ""
                fix = fix or f"use e.g. {element}={shown[0]}"
                return f"{said} is not an option of {group} (options: {', '.join(shown)}); {fix}"
    return None


def _text(value) -> str:
    """A value as written on the command line: [a,b] for a list."""
    return f"[{','.join(map(str, value))}]" if isinstance(value, list) else str(value)


def documented_options(group: str) -> list[str]:
    """The options of a group that sac_runner ships and documents (conf/<group>/): for hydra/launcher the
    launchers we document (parallel, slurm), not every launcher plugin installed."""
    try:
        return presets.group_options(group)
    except OSError:  # not a group of ours (hydra/job_logging, ...)
        return []


# ------------------------------------------------------------------------------------------------- keys
def _key_problem(parsed: list[Override], groups: dict[str, list[str]]) -> str | None:
    """A key the composed config does not have (Hydra: "Could not override"), with the closest valid key."""
    plain = [o for o in parsed if o.key_or_group not in groups and not (o.is_add() or o.is_force_add())]
    plain = [o for o in plain if not o.is_delete() and "[" not in o.key_or_group]
    if not plain:
        return None
    if any(o.key_or_group in groups and o.value_type == ValueType.GLOB_CHOICE_SWEEP for o in parsed):
        return None  # the options a glob picks decide which keys exist: left to Hydra
    base = [_first_value(o) for o in parsed if o.key_or_group in groups or o.is_add() or o.is_force_add()]
    if any(b is None for b in base):
        return None
    try:
        cfg = hydra_compose("config", overrides=[b for b in base if b], return_hydra_config=True)
    except Exception:  # noqa: BLE001 - Hydra reports what it cannot compose itself
        return None
    added = [o.key_or_group for o in parsed if o.is_add() or o.is_force_add()]
    for o in plain:
        key = o.key_or_group
        if has_key(cfg, key) or any(key == a or key.startswith(f"{a}.") for a in added):
            continue
        return unknown_key_message(key, cfg)
    return None


def _first_value(o: Override) -> str | None:
    """The override with its first value when it is a sweep (the keys a sweep's jobs have are those of any
    one of them); None when that cannot be written back."""
    if not o.is_sweep_override():
        return o.input_line
    values = _values(o)
    if not values or not isinstance(values[0], str):
        return None
    return f"{o.get_key_element()}={values[0]}"


def _node(cfg: DictConfig, key: str):
    """The node a dotted key names in cfg (a list element by its index), unresolved; None when there is none."""
    node = cfg
    for part in key.split("."):
        if isinstance(node, DictConfig) and part in list(node.keys()):  # `part in node` misses a ??? value
            node = node._get_node(part)  # type: ignore[assignment]
        elif isinstance(node, ListConfig) and part.isdigit() and int(part) < len(node):
            node = node._get_node(int(part))  # type: ignore[assignment]
        else:
            return None
    return node


def has_key(cfg: DictConfig, key: str) -> bool:
    """Whether a dotted key names a node of cfg (a list element by its index)."""
    return _node(cfg, key) is not None


def config_keys(cfg: DictConfig, prefix: str = "") -> list[str]:
    """Every dotted key of cfg, its sections included (a list counts as one key)."""
    keys = []
    for k in cfg:
        path = f"{prefix}{k!s}"
        keys.append(path)
        node = cfg._get_node(k)
        if isinstance(node, DictConfig) and not node._is_none() and not node._is_missing():
            keys += config_keys(node, f"{path}.")
    return keys


def closest_keys(key: str, cfg: DictConfig) -> list[str]:
    """The valid keys a mistyped one most likely meant: keys it is the end of (total_steps ->
    algorithm.total_steps), else the closest spelling, else the closest last part."""
    candidates = [k for k in config_keys(cfg) if (k.split(".")[0] == "hydra") == (key.split(".")[0] == "hydra")]
    candidates = [k for k in candidates if not key.startswith(f"{k}.")]  # not the key's own sections
    ends = [k for k in candidates if k.endswith(f".{key}")]
    if ends:
        return sorted(ends, key=lambda k: (k.count("."), k))[:3]
    last = key.rsplit(".", 1)[-1]

    def same_end(k: str) -> bool:  # a shared long prefix alone (algorithm.foo, algorithm.tau) is no match
        return difflib.SequenceMatcher(None, last, k.rsplit(".", 1)[-1]).ratio() >= 0.6

    found = [k for k in difflib.get_close_matches(key, candidates, n=3, cutoff=0.75) if same_end(k)]
    if found:
        return found[:1]
    by_last: dict[str, list[str]] = {}
    for k in candidates:
        by_last.setdefault(k.rsplit(".", 1)[-1], []).append(k)
    for name in difflib.get_close_matches(last, list(by_last), n=1, cutoff=0.75):
        return difflib.get_close_matches(key, by_last[name], n=3, cutoff=0.0)
    return [k for k in difflib.get_close_matches(key, candidates, n=3, cutoff=0.6) if same_end(k)][:1]


# the keys under hydra.<section> come from the option of hydra/<section> in use
PLUGIN_SECTIONS = {"launcher": "-m hydra/launcher=parallel", "sweeper": "-m hparams_search=optuna"}


def unknown_key_message(key: str, cfg: DictConfig) -> str:
    """One line for a key the config does not have: the closest valid key; else, under hydra.launcher or
    hydra.sweeper, the option that has it; else a mistyped section with the key's last part; else how to add it."""
    parts = key.split(".")
    plugin = parts[1] if len(parts) > 2 and parts[0] == "hydra" and parts[1] in PLUGIN_SECTIONS else None
    matches = closest_keys(key, cfg)
    if plugin:
        matches = [m for m in matches if m.startswith(f"hydra.{plugin}.")]
    if matches:
        said = matches[0] if len(matches) == 1 else f"{', '.join(matches[:-1])} or {matches[-1]}"
        return f"{key} is not a key of the config; did you mean {said}?"
    if plugin:
        group = f"hydra/{plugin}"
        in_use = OmegaConf.select(cfg, f"hydra.runtime.choices.{group}", default=None)
        return (
            f"{key} is not a key of {group}={in_use}, the one in use; choose the one that has it first, e.g. "
            f"sac-train {PLUGIN_SECTIONS[plugin]} {key}=..."
        )
    parent = ".".join(parts[:-1])
    if parent and not has_key(cfg, parent):  # a mistyped section: env.kwarg.g
        sections = [k for k in config_keys(cfg) if isinstance(_node(cfg, k), DictConfig)]
        for section in difflib.get_close_matches(parent, sections, n=1, cutoff=0.75):
            meant = f"{section}.{parts[-1]}"
            if has_key(cfg, meant) or section == "env.kwargs":  # env.kwargs takes any name
                return f"{key} is not a key of the config; did you mean {meant}?"
    if parent:
        return (
            f"{key} is not a key of the config ({parent} has no {parts[-1]}); +{key}=<value> adds it, "
            f"sac-train --cfg job prints the config's keys"
        )
    return f"{key} is not a key of the config; sac-train --cfg job prints the config's keys"
