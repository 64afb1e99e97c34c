"""How hydra/launcher=population (sweeps/population_launcher.py) groups a multirun's jobs into populations, and the
one line it prints about them. A group trains as one process, so its jobs may differ only in the keys
sac_runner/keys.py marks `member`; jobs that differ in anything else go to separate groups, and the line names the key.
Pure functions of the jobs' resolved configs: no Hydra state."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sac_runner.keys import MEMBER_KEYS


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
