"""sac-report's input: find the runs in sweep and run directories, read each one's overrides, config, summary
and TensorBoard evaluation curve into a Run, and group the runs by their overrides except the seed."""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from omegaconf import OmegaConf

from sac_runner.keys import HYDRA_PREFIXES, NOT_GROUPING
from sac_runner.rundir import CONFIG_FILE, FAILED_FILE, SUMMARY_FILE, is_run_dir, override_keys

EVAL_TAG = "eval/return_mean"
SPS_TAG = "time/steps_per_second"
# besides CONFIG_FILE, what a sweep job writes before it is a whole run directory (rundir.is_run_dir)
JOB_MARKERS = (".hydra", SUMMARY_FILE, "tensorboard", FAILED_FILE)


def is_job_dir(path: Path) -> bool:
    """A run directory (rundir.is_run_dir), or a job directory on its way to being one (failed, stopped early,
    or still starting): it holds the run's config file or any of JOB_MARKERS."""
    return is_run_dir(path) or any((path / m).exists() for m in (CONFIG_FILE, *JOB_MARKERS))


def _key(override: str) -> str:
    """The config key an override names ('+a.b=1' -> 'a.b'), by rundir.override_keys; '' when it names none."""
    keys = override_keys([override])
    return keys[0] if keys else ""


# ------------------------------------------------------------------------------------------ runs
@dataclass
class Run:
    """One run directory as read: its overrides, seed, environment, evaluation curve and timings; a run
    that cannot be used has skip_reason set."""

    path: Path
    overrides: list[str] = field(default_factory=list)
    seed: int | None = None
    env_id: str | None = None
    steps: np.ndarray = field(default_factory=lambda: np.zeros(0))
    returns: np.ndarray = field(default_factory=lambda: np.zeros(0))
    wall_time_s: float = math.nan
    steps_per_second: float = math.nan
    complete: bool = False
    incomplete_reason: str = ""  # why a readable run is not complete
    skip_reason: str | None = None

    @property
    def group_key(self) -> tuple[str, ...]:
        """The sorted overrides that decide the run's group: all but keys.NOT_GROUPING and Hydra's own."""
        keyed = [(o, _key(o)) for o in self.overrides]
        return tuple(sorted(o for o, k in keyed if k not in NOT_GROUPING and not k.startswith(HYDRA_PREFIXES)))

    @property
    def final(self) -> float:
        """The last evaluation's mean return."""
        return float(self.returns[-1])

    @property
    def best(self) -> float:
        """The best evaluation's mean return."""
        return float(self.returns.max())

    def steps_to(self, threshold: float) -> float:
        """The first evaluation step whose mean return reached `threshold`; NaN if none did."""
        hit = np.flatnonzero(self.returns >= threshold)
        return float(self.steps[hit[0]]) if hit.size else math.nan


def _natural(path: Path):
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", str(path))]


def find_runs(paths: list[Path]) -> list[Path]:
    """Run directories in or under `paths`: a job directory (is_job_dir) is a run (we do not look inside
    it); other directories are searched (a sweep directory, a folder of sweeps). A directory named by a
    number with no subdirectory (a sweep job that has not written anything yet) counts as a run too, to be
    reported as skipped."""
    found: list[Path] = []

    def visit(d: Path, depth: int) -> None:
        if is_job_dir(d) or (d.name.isdigit() and not any(c.is_dir() for c in d.iterdir())):
            found.append(d)
            return
        if depth >= 6:
            return
        try:
            children = sorted((c for c in d.iterdir() if c.is_dir() and not c.name.startswith(".")), key=_natural)
        except OSError:
            return
        for c in children:
            visit(c, depth + 1)

    for p in paths:
        visit(p, 0)
    return list(dict.fromkeys(p.resolve() for p in found))


def _read_yaml(path: Path):
    return OmegaConf.to_container(OmegaConf.load(path))


def read_scalars(tb_dir: Path, tags: tuple[str, ...]) -> dict[str, list]:
    """{tag: [(wall_time, step, value), ...]} from every event file in tb_dir; a step logged twice
    (a run resumed from an earlier checkpoint) keeps its last value."""
    # here, not at the top: tensorboard takes a second to import, which sac-report --help need not wait for
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(tb_dir), size_guidance={"scalars": 0})
    acc.Reload()
    available = set(acc.Tags().get("scalars", []))
    out: dict[str, list] = {}
    for tag in tags:
        if tag not in available:
            out[tag] = []
            continue
        by_step = {}
        for ev in acc.Scalars(tag):
            by_step[int(ev.step)] = (float(ev.wall_time), int(ev.step), float(ev.value))
        out[tag] = [by_step[s] for s in sorted(by_step)]
    return out


def load_run(path: Path) -> Run:
    """Read one run directory; on any problem, return it with skip_reason set."""
    run = Run(path)
    if not is_job_dir(path):
        run.skip_reason = "nothing written yet (not started, or failed before its config was saved)"
        return run
    hydra_overrides = path / ".hydra" / "overrides.yaml"
    try:
        if hydra_overrides.is_file():
            run.overrides = [str(o) for o in (_read_yaml(hydra_overrides) or [])]
        if (path / CONFIG_FILE).is_file():
            cfg = _read_yaml(path / CONFIG_FILE) or {}
            run.seed = cfg.get("seed")
            run.env_id = (cfg.get("env") or {}).get("id")
    except Exception as e:  # noqa: BLE001 - a damaged file only skips this run
        run.skip_reason = f"unreadable config ({type(e).__name__}: {e})"
        return run
    if run.seed is None:
        run.seed = next(
            (int(o.split("=", 1)[1]) for o in run.overrides if _key(o) == "seed" and o.split("=", 1)[1].isdigit()), None
        )

    failed = path / FAILED_FILE
    summary = path / SUMMARY_FILE
    # a failed or interrupted job that was resumed afterwards has a newer summary.json
    if failed.is_file() and not (summary.is_file() and summary.stat().st_mtime > failed.stat().st_mtime):
        try:
            rec = json.loads(failed.read_text())
            run.skip_reason = f"failed: {rec.get('error', 'Error')}: {rec.get('message', '')}"
        except (OSError, ValueError):
            run.skip_reason = "failed (unreadable failed.json)"
        return run

    tb = path / "tensorboard"
    if not tb.is_dir() or not any(tb.glob("events.out.tfevents.*")):
        run.skip_reason = "no TensorBoard event files (not started, or failed before training)"
        return run
    try:
        scalars = read_scalars(tb, (EVAL_TAG, SPS_TAG))
    except Exception as e:  # noqa: BLE001
        run.skip_reason = f"unreadable TensorBoard events ({type(e).__name__}: {e})"
        return run
    evals = scalars[EVAL_TAG]
    if not evals:
        run.skip_reason = "no evaluation yet (still running, or stopped before the first one)"
        return run
    run.steps = np.array([e[1] for e in evals], dtype=float)
    run.returns = np.array([e[2] for e in evals], dtype=float)
    if not np.all(np.isfinite(run.returns)):
        run.skip_reason = "diverged: non-finite evaluation return"
        return run

    if summary.is_file():
        try:
            s = json.loads(summary.read_text())
            run.wall_time_s = float(s["wall_time_s"])
            run.steps_per_second = float(s["steps_per_second"])
            if s.get("pruned"):  # an Optuna trial stopped early on purpose (sweeps/optuna_trial.py)
                p = s["pruned"]
                run.skip_reason = f"pruned: trial {p.get('trial')} stopped at step {s.get('env_steps')} by the search"
                return run
            if s.get("interrupted"):  # stopped by a signal, with a resumable checkpoint
                run.incomplete_reason = (
                    f"interrupted by {s['interrupted']} at step {s.get('env_steps')} "
                    f"(continue it with: sac-train resume={path})"
                )
            else:
                run.complete = True
        except (OSError, ValueError, KeyError, TypeError):
            run.incomplete_reason = "unreadable summary.json"
    else:
        run.incomplete_reason = "no summary.json (still running, or killed)"
    if not run.complete and not math.isfinite(run.wall_time_s):  # estimate from the event times
        times = [e[0] for e in evals] + [e[0] for e in scalars[SPS_TAG]]
        run.wall_time_s = max(times) - min(times) if len(times) > 1 else math.nan
        sps = [e[2] for e in scalars[SPS_TAG]]
        run.steps_per_second = float(np.mean(sps)) if sps else math.nan
    return run


def skip_incomplete(runs: list[Run]) -> None:
    """Mark each readable run that is not complete as skipped, saying why (--include-incomplete keeps them)."""
    for r in runs:
        if r.skip_reason is None and not r.complete:
            r.skip_reason = (
                f"incomplete: {r.incomplete_reason}; {len(r.steps)} evaluation(s) so far, "
                f"--include-incomplete counts them"
            )


def report_title(runs: list[Run]) -> str:
    """The report's title: the runs' environment ids, or 'runs' when none is known."""
    return ", ".join(sorted({r.env_id for r in runs if r.env_id}) or ["runs"])


# ------------------------------------------------------------------------------------------ groups
@dataclass
class Group:
    """Runs on one environment that share their overrides except the seed. `detail` names the overrides
    that set the group apart; `label` is the same, led by the environment when the report has several."""

    key: tuple[str, ...]
    runs: list[Run]
    env_id: str | None = None
    label: str = ""
    detail: str = ""


def _short(override: str) -> str:
    """key=value with long numbers shortened, for labels."""
    key, _, value = override.partition("=")
    try:
        f = float(value)
        if not value.lstrip("-").isdigit() and len(value) > 7:
            value = f"{f:.4g}"
    except ValueError:
        pass
    return f"{key}={value}"


def make_groups(runs: list[Run]) -> list[Group]:
    """Runs on the same environment with the same overrides (except the seed) form one group, in order of
    first appearance, each environment's groups together. A group's label shows only the overrides that
    differ between groups; with several environments (a sweep over env=...) it starts with the environment,
    and `env=<that id>` is left out."""
    groups: dict[tuple, Group] = {}
    for r in runs:
        groups.setdefault((r.env_id, r.group_key), Group(r.group_key, [], r.env_id)).runs.append(r)
    order = {env: i for i, env in reversed(list(enumerate(r.env_id for r in runs)))}
    out = sorted(groups.values(), key=lambda g: order[g.env_id])  # each environment's groups together
    common = common_overrides(out)
    several = len(order) > 1
    for g in out:
        own = [_short(o) for o in g.key if o not in common and not (several and o == f"env={g.env_id}")]
        g.detail = " ".join(own)
        if several:
            g.label = " ".join([g.env_id or "unknown env", *own])
        else:
            g.label = g.detail or "(all runs)"
    return out


def env_ids(groups: list[Group]) -> list[str | None]:
    """The groups' environments, in order of first appearance."""
    return list(dict.fromkeys(g.env_id for g in groups))


def common_overrides(groups: list[Group]) -> list[str]:
    """The overrides that every group shares (not shown in the group labels)."""
    if not groups:
        return []
    shared = set.intersection(*(set(g.key) for g in groups))
    return [o for o in groups[0].key if o in shared]
