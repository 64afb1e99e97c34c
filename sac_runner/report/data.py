"""sac-report's input: find the runs in sweep and run directories (and the jobs a stopped grid sweep never
started) and read each one's overrides, config, summary and evaluation curve (summary.json's, else TensorBoard's)
into a Run. groups.py groups them."""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from omegaconf import OmegaConf

from sac_runner.report.groups import canonical, groups_by, override_key
from sac_runner.rundir import (
    CONFIG_FILE,
    FAILED_FILE,
    SUMMARY_FILE,
    Evaluation,
    is_run_dir,
    read_evals,
)
from sac_runner.sweeps.plan import MULTIRUN_FILE, not_started, rerun_command

EVAL_TAG = "eval/return_mean"
SPS_TAG = "time/steps_per_second"
# besides CONFIG_FILE, what a sweep job writes before it is a whole run directory (rundir.is_run_dir)
JOB_MARKERS = (".hydra", SUMMARY_FILE, "tensorboard", FAILED_FILE)


def is_job_dir(path: Path) -> bool:
    """A run directory (rundir.is_run_dir), or a job directory on its way to being one (failed, stopped early,
    or still starting): it holds the run's config file or any of JOB_MARKERS."""
    return is_run_dir(path) or any((path / m).exists() for m in (CONFIG_FILE, *JOB_MARKERS))


def flatten(tree, prefix: str = "") -> dict:
    """{'a.b': value} for every leaf of a nested dict (a list is one value)."""
    out = {}
    for k, v in tree.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict) and v:
            out.update(flatten(v, key + "."))
        else:
            out[key] = v
    return out


@dataclass
class Run:
    """One run directory as read: its overrides, seed, environment, evaluation curve and timings; a run
    that cannot be used has skip_reason set."""

    path: Path
    overrides: list[str] = field(default_factory=list)
    # the run's config.yaml flattened ({'algorithm.tau': 0.005, ...}); from its overrides where it has none
    config: dict = field(default_factory=dict)
    seed: int | None = None
    env_id: str | None = None
    steps: np.ndarray = field(default_factory=lambda: np.zeros(0))
    returns: np.ndarray = field(default_factory=lambda: np.zeros(0))
    wall_time_s: float = math.nan
    steps_per_second: float = math.nan
    complete: bool = False
    group_label: str = ""  # the label of its group (make_groups)
    incomplete_reason: str = ""  # why a readable run is not complete
    skip_reason: str | None = None

    @property
    def group_key(self) -> tuple[tuple[str, str], ...]:
        """What decides the run's group: the sorted (key, canonical value) pairs of its config, except the keys
        that never split groups (groups_by). Two runs that ran with the same values are one group, whether a
        value came from a default, a preset or an override."""
        return tuple(sorted((k, canonical(v)) for k, v in self.config.items() if groups_by(k)))

    @property
    def own_overrides(self) -> list[str]:
        """The command-line overrides of the run that are neither Hydra's own nor the seed-like NOT_GROUPING."""
        return [o for o in self.overrides if groups_by(override_key(o))]

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
        for c in _subdirs(d):
            visit(c, depth + 1)

    for p in paths:
        visit(p, 0)
    return list(dict.fromkeys(p.resolve() for p in found))


def _subdirs(d: Path) -> list[Path]:
    """d's subdirectories in natural order, hidden ones left out; none where d cannot be read."""
    try:
        return sorted((c for c in d.iterdir() if c.is_dir() and not c.name.startswith(".")), key=_natural)
    except OSError:
        return []


def sweep_dirs(paths: list[Path]) -> list[Path]:
    """The sweep directories (holding multirun.yaml) among `paths` and the directories below them that are not
    runs, as deep as find_runs looks."""
    found: list[Path] = []

    def visit(d: Path, depth: int) -> None:
        if (d / MULTIRUN_FILE).is_file():
            found.append(d.resolve())
        if depth >= 6 or is_job_dir(d):
            return
        for c in _subdirs(d):
            visit(c, depth + 1)

    for p in paths:
        visit(p, 0)
    return list(dict.fromkeys(found))


def unstarted_runs(paths: list[Path]) -> list[Run]:
    """A skipped Run for each job that a grid sweep among `paths` planned but never started (plan.not_started):
    it was stopped (Ctrl-C, a crash) before them, or is still running. Its skip reason gives the command that
    runs the missing jobs of that sweep."""
    runs = []
    for d in sweep_dirs(paths):
        missing = not_started(d)
        if not missing:
            continue
        command = rerun_command([job for _, job in missing])
        for num, overrides in missing:
            run = Run(d / str(num), overrides=list(overrides), seed=_seed_of(overrides))
            run.skip_reason = f"not started (the sweep was stopped before it, or is still running); run: {command}"
            runs.append(run)
    return runs


def _seed_of(overrides: list[str]) -> int | None:
    """The seed a run's `seed=<n>` override gives, or None."""
    return next(
        (int(o.split("=", 1)[1]) for o in overrides if override_key(o) == "seed" and o.split("=", 1)[1].isdigit()), None
    )


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
            run.config = flatten(cfg)
        else:  # a job that failed before writing its config: its overrides are all that is known
            run.config = {override_key(o): o.split("=", 1)[1] for o in run.overrides if "=" in o}
    except Exception as e:  # noqa: BLE001 - a damaged file only skips this run
        run.skip_reason = f"unreadable config ({type(e).__name__}: {e})"
        return run
    if run.seed is None:
        run.seed = _seed_of(run.overrides)

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

    # the curve: a finished run's is its summary.json's evaluation history (read by rundir.read_evals, whichever
    # form it was written in; also there where no TensorBoard was logged, logger=[wandb]); a run still going,
    # interrupted or pruned: TensorBoard's, which holds every evaluation so far
    s: dict | None = None
    history: list[Evaluation] = []
    if summary.is_file():
        try:
            s = json.loads(summary.read_text())
            if not isinstance(s, dict):
                raise ValueError("not a JSON object")
            history = read_evals(s.get("evals"))
        except (OSError, ValueError):
            s, history = None, []  # counted as incomplete below: "unreadable summary.json"
    finished = s is not None and not s.get("interrupted") and not s.get("pruned")
    tb = path / "tensorboard"
    has_tb = tb.is_dir() and any(tb.glob("events.out.tfevents.*"))
    scalars: dict[str, list] = {EVAL_TAG: [], SPS_TAG: []}
    if history and (finished or not has_tb):
        run.steps = np.array([e.env_steps for e in history], dtype=float)
        run.returns = np.array([e.mean for e in history], dtype=float)
    else:
        if not has_tb:
            run.skip_reason = "no TensorBoard event files (not started, or failed before training)"
            return run
        try:
            scalars = read_scalars(tb, (EVAL_TAG, SPS_TAG))
        except Exception as e:  # noqa: BLE001
            run.skip_reason = f"unreadable TensorBoard events ({type(e).__name__}: {e})"
            return run
        run.steps = np.array([e[1] for e in scalars[EVAL_TAG]], dtype=float)
        run.returns = np.array([e[2] for e in scalars[EVAL_TAG]], dtype=float)
    if not len(run.steps):
        run.skip_reason = "no evaluation yet (still running, or stopped before the first one)"
        return run
    if not np.all(np.isfinite(run.returns)):
        run.skip_reason = "diverged: non-finite evaluation return"
        return run

    if s is not None:
        try:
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
        except (KeyError, TypeError, ValueError, AttributeError):
            run.incomplete_reason = "unreadable summary.json"
    elif summary.is_file():
        run.incomplete_reason = "unreadable summary.json"
    else:
        run.incomplete_reason = "no summary.json (still running, or killed)"
    if not run.complete and not math.isfinite(run.wall_time_s):  # estimate from the event times
        times = [e[0] for e in scalars[EVAL_TAG]] + [e[0] for e in scalars[SPS_TAG]]
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
