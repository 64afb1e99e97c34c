#!/usr/bin/env python
"""The results store (outputs/results/) and what is generated from it: the README's presets table with a
per-suite aggregate, the learning curves with the anchors marked, and the GIFs of trained agents.

    python scripts/results.py add <run or sweep dirs> ...     # store their runs (again: updates, never doubles)
    python scripts/results.py list                            # the stored runs, one line each
    python scripts/results.py table                           # print the presets table and the aggregate
    python scripts/results.py table --readme README.md        # ... and fill the README's presets-table block
    python scripts/results.py plot                            # outputs/figures/learning_curves.png
    python scripts/results.py gif <run dir> --out outputs/figures/classic_control.gif
    python scripts/results.py random                          # random-action returns, the score's zero

The store, in outputs/results/ (--store elsewhere), is plain files that git tracks:

    runs.csv             one row per run: task, seed, budget, steps done, status, final and best return, wall
                         time, steps/s, machine, device, commit, versions, dates (FIELDS below)
    curves/<run id>.csv  the run's evaluation curve: step, mean, std, min, max (over the evaluation episodes)
    configs/<run id>.yaml the run's resolved config, to tell which runs are a preset as it is today
    anchors.csv          published returns to compare with (task, value, source, budget, env version)
    random.csv           the mean return of uniformly random actions per task (`random`), the score's zero

A run's id is its task, seed and start time, and a hash of the name of its first TensorBoard event file:
the same wherever the run directory is copied to, resumed or extended, so adding a run again (from any
machine) updates its row instead of adding one, and rows of other machines are never touched. A run that
stopped before its budget is stored as "partial" ("300k of 1M" in the table); a failed or diverged one as
"failed". Runs are read with sac-report's reader (sac_runner/report/data.py).

The presets table counts, per preset, the stored runs of that task at the preset's budget whose config
matches the preset as composed today (keys that do not change what is learnt, such as device and threads,
aside); runs of another config stay in the store and are named in the cell.
"""

from __future__ import annotations

import argparse
import copy
import csv
import datetime
import functools
import hashlib
import io
import json
import math
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from omegaconf import OmegaConf

from sac_runner import presets
from sac_runner.keys import HYDRA_PREFIXES, NOT_GROUPING
from sac_runner.objectives import iqm
from sac_runner.report import data
from sac_runner.report.groups import Group
from sac_runner.report.stats import bootstrap_ci, group_curve
from sac_runner.rundir import CONFIG_FILE, SUMMARY_FILE, read_evals

ROOT = Path(__file__).resolve().parents[1]
STORE = ROOT / "outputs" / "results"
FIGURES = ROOT / "outputs" / "figures"
START, END = "<!-- presets-table:start -->", "<!-- presets-table:end -->"
PROG = "results.py"

FIELDS = [
    "run_id",
    "env_id",
    "suite",
    "seed",
    "budget",
    "steps_done",
    "status",  # complete, partial (stopped before its budget) or failed
    "note",  # why a run is partial or failed
    "final_return",  # the last evaluation's mean return
    "best_return",
    "evals",
    "wall_time_s",  # all sessions of the run together
    "steps_per_second",
    "sessions",  # 1 + the times it was resumed
    "machine",  # GPU name on a GPU, else the CPU model
    "context",  # how it was run, as the person adding it says (add --context): "niced, on a shared core"
    "device",
    "cpus",  # the cores the process could use
    "commit",  # of sac_runner; -dirty: with local changes
    "torch",
    "gymnasium",
    "started",  # UTC, from the first TensorBoard event file
    "finished",  # UTC, from summary.json
    "overrides",  # the command line's overrides that set the run apart (not the seed)
    "run_dir",  # where it was added from
]
CURVE_FIELDS = ["step", "mean", "std", "min", "max"]
ANCHOR_FIELDS = ["task", "value", "spread", "source", "budget", "env_version", "kind", "note"]
RANDOM_FIELDS = ["task", "episodes", "mean", "std", "gymnasium", "measured"]
NOT_RECORDED = "not recorded"
# config keys that do not change what a run learns: they are not compared when matching runs to a preset
# (the budget is compared on its own)
NOT_COMPARED = (
    "seed",
    "algorithm.total_steps",
    "threads",
    "device",
    "compile",
    "cuda_graph",
    "progress",
    "save_video",
    "resume",
    "checkpoint",
    "preset",
    "objective",
    "hparams_search",
    "hydra",
)
# the rows issue 18 sizes for a GPU: MuJoCo locomotion and Box2D (hours per run on one CPU core)
NEEDS_GPU = (
    "Ant-v5",
    "HalfCheetah-v5",
    "Hopper-v5",
    "Humanoid-v5",
    "Swimmer-v5",
    "Walker2d-v5",
    "BipedalWalker-v3",
    "LunarLanderContinuous-v3",
)
EVENTS = re.compile(r"events\.out\.tfevents\.(\d+)\.(.+)")
INTERRUPTED_JOB = "failed: Interrupted:"  # data.load_run's reason for sweeps/multirun.py's record of a stopped job
HPARAMS_EVENTS = "sac_runner.hparams"  # sweeps/hparams.py's file, rewritten whole: not a session


class UserError(Exception):
    """Bad input: one line, exit status 2."""


# ------------------------------------------------------------------------------------------ formatting
def fmt_num(x: float, digits: int = 7) -> str:
    """A float as stored: up to `digits` significant digits; '' for NaN."""
    return "" if x is None or not math.isfinite(x) else f"{x:.{digits}g}"


def parse_num(text: str) -> float:
    return float(text) if text not in ("", None) else math.nan


def fmt_return(x: float) -> str:
    """A return as the table shows it: whole numbers from 100 up, more digits below (Reacher's -2.6)."""
    if not math.isfinite(x):
        return "-"
    text = f"{x:.0f}" if abs(x) >= 100 else f"{x:.1f}" if abs(x) >= 10 else f"{x:.2f}"
    return "0" if text.strip("-0.") == "" else text


def fmt_time(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "-"
    if seconds < 120:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.1f} min" if seconds < 7200 else f"{seconds / 3600:.1f} h"


def suite_title(key: str) -> str:
    return presets.SUITES.get(key, ("Other", None))[0]


# ------------------------------------------------------------------------------------------ reading runs
@dataclass
class Record:
    """One run as the store keeps it: its row of runs.csv, its evaluation curve and its config's text."""

    row: dict
    curve: list[list[float]]
    config: str

    @property
    def run_id(self) -> str:
        return self.row["run_id"]


def event_files(run_dir: Path) -> list[tuple[int, Path]]:
    """The run's TensorBoard event files, one per session, as (creation time, path), oldest first."""
    out = []
    for p in (run_dir / "tensorboard").glob("events.out.tfevents.*"):
        m = EVENTS.fullmatch(p.name)
        if m and m.group(2) != HPARAMS_EVENTS:
            out.append((int(m.group(1)), p))
    return sorted(out, key=lambda tp: (tp[0], tp[1].name))


def run_id(env_id: str, seed, first_events: tuple[int, Path]) -> str:
    """<task>_s<seed>_<UTC start>_<hash of the first event file's name (host, pid, counter)>."""
    when = datetime.datetime.fromtimestamp(first_events[0], datetime.timezone.utc).strftime("%Y%m%dT%H%M%S")
    digest = hashlib.sha1(first_events[1].name.encode()).hexdigest()[:6]
    return f"{env_id.replace('/', '_')}_s{seed}_{when}_{digest}"


def session_span(path: Path) -> float:
    """Seconds from the first to the last event of one event file (one session of the run)."""
    from tensorboard.backend.event_processing.event_file_loader import EventFileLoader

    times = [ev.wall_time for ev in EventFileLoader(str(path)).Load()]
    return max(times) - min(times) if len(times) > 1 else 0.0


def tensorboard_curve(run_dir: Path) -> list[list[float]]:
    """[step, mean, std, min, max] for each evaluation in the run's event files."""
    tags = tuple(f"eval/return_{k}" for k in CURVE_FIELDS[1:])
    scalars = data.read_scalars(run_dir / "tensorboard", tags)
    columns = [{step: value for _, step, value in scalars[t]} for t in tags]
    return [[float(step), *(c.get(step, math.nan) for c in columns)] for step in sorted(columns[0])]


def own_overrides(overrides: list[str]) -> list[str]:
    """The command line's overrides that set a run apart: not Hydra's own, not the seed (keys.NOT_GROUPING)."""
    keys = [o.split("=", 1)[0].lstrip("+~") for o in overrides]
    skip = (*NOT_GROUPING, "env")  # the task has its own column
    return sorted(o for o, k in zip(overrides, keys) if not k.startswith(HYDRA_PREFIXES) and k not in skip)


def read_run(path: Path, machine: str | None = None, commit: str | None = None, context: str | None = None) -> Record:
    """The store's record of one run directory (sac-report's data.load_run reads it); UserError saying why
    when it cannot be stored. `machine` and `commit` stand in where the run does not record its own (a run
    of a sac_runner that did not write them into summary.json); `context` says how it was run."""
    run = data.load_run(path)
    reason = run.skip_reason or ""
    # a sweep's job stopped by a signal (SLURM's time limit, a population's end) has a failed.json saying
    # "Interrupted": it is a partial run, resumable, not a failed one
    interrupted = reason.startswith(INTERRUPTED_JOB)
    failed = reason.startswith(("failed", "diverged")) and not interrupted
    if reason and not (failed or interrupted):
        raise UserError(reason)
    if not (path / CONFIG_FILE).is_file():
        raise UserError(f"no {CONFIG_FILE}")
    config_text = (path / CONFIG_FILE).read_text()
    cfg = OmegaConf.to_container(OmegaConf.create(config_text)) or {}
    env_id, seed = run.env_id, run.seed
    budget = (cfg.get("algorithm") or {}).get("total_steps")
    if env_id is None or seed is None or budget is None:
        raise UserError(f"its {CONFIG_FILE} does not name env.id, seed and algorithm.total_steps")
    sessions = event_files(path)
    if not sessions:
        raise UserError("no TensorBoard event files, so no start time to know it by")

    summary = {}
    if (path / SUMMARY_FILE).is_file():
        try:
            summary = json.loads((path / SUMMARY_FILE).read_text())
        except (OSError, ValueError):
            summary = {}
    try:  # labelled records or (summaries of older sac_runner) unlabelled arrays
        curve = [[float(v) for v in e] for e in read_evals(summary.get("evals"))]
    except ValueError as e:
        raise UserError(f"its {SUMMARY_FILE} is not one sac-train wrote: {e}") from None
    tb_curve = tensorboard_curve(path)
    if tb_curve and (not curve or tb_curve[-1][0] > curve[-1][0]):  # a later session without its summary yet
        curve, summary = tb_curve, {k: v for k, v in summary.items() if k not in ("env_steps", "wall_time_s")}
    steps_done = max(int(summary.get("env_steps") or 0), int(curve[-1][0]) if curve else 0)

    if failed:
        status, note = "failed", reason
    elif run.complete and steps_done >= int(budget):
        status, note = "complete", ""
    else:
        status = "partial"
        note = run.incomplete_reason or f"stopped at step {steps_done} of {budget}"
        if interrupted:
            note = "interrupted: " + reason[len(INTERRUPTED_JOB) :].strip()
        # the resume hint names a path of the machine it ran on
        note = re.split(r"[;(]? *\(?continue it with", note)[0].strip()

    # summary.json's wall time is the whole run's where it times every session (it then has "session" for
    # the last one, and no timed_from_step), else the last session's
    whole = len(sessions) == 1 or ("session" in summary and not summary.get("timed_from_step"))
    if whole and summary.get("wall_time_s") is not None:
        wall, sps = float(summary["wall_time_s"]), float(summary["steps_per_second"])
    else:  # resumed, or still running / killed: the sessions' spans in their event files
        wall = sum(session_span(p) for _, p in sessions)
        sps = steps_done / wall if wall > 0 else math.nan
    versions = summary.get("versions") or {}
    means = [e[1] for e in curve]
    row = {
        "run_id": run_id(env_id, seed, sessions[0]),
        "env_id": env_id,
        "suite": presets.suite(env_id),
        "seed": int(seed),
        "budget": int(budget),
        "steps_done": steps_done,
        "status": status,
        "note": note,
        "final_return": means[-1] if means else math.nan,
        "best_return": max(means) if means and all(math.isfinite(m) for m in means) else math.nan,
        "evals": len(curve),
        "wall_time_s": wall,
        "steps_per_second": sps,
        "sessions": len(sessions),
        "machine": summary.get("machine") or machine or NOT_RECORDED,
        "context": context or "",
        "device": summary.get("device") or str(cfg.get("device", "")),
        "cpus": summary.get("cpus", ""),
        "commit": summary.get("commit") or commit or NOT_RECORDED,
        "torch": versions.get("torch") or "",
        "gymnasium": versions.get("gymnasium") or "",
        "started": datetime.datetime.fromtimestamp(sessions[0][0], datetime.timezone.utc).isoformat(),
        "finished": summary.get("finished") or "",
        "overrides": " ".join(own_overrides(run.overrides)),
        "run_dir": str(path),
    }
    return Record(row, curve, config_text)


# ------------------------------------------------------------------------------------------ the store
def _cell(value) -> str:
    return fmt_num(value) if isinstance(value, float) else str(value)


def _curve_text(curve: list[list[float]]) -> str:
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    w.writerow(CURVE_FIELDS)
    for e in curve:
        w.writerow([str(int(e[0])), *(fmt_num(v) for v in e[1:])])
    return out.getvalue()


def read_curve(path: Path) -> list[list[float]]:
    with path.open(newline="") as f:
        return [[parse_num(r[k]) for k in CURVE_FIELDS] for r in csv.DictReader(f)]


class Store:
    """outputs/results/ (or another directory): runs.csv, curves/, configs/, anchors.csv, random.csv."""

    def __init__(self, root: Path = STORE):
        self.root = Path(root)
        self.runs_csv = self.root / "runs.csv"
        self.rows: dict[str, dict] = {}
        if self.runs_csv.is_file():
            with self.runs_csv.open(newline="") as f:
                self.rows = {r["run_id"]: r for r in csv.DictReader(f)}

    def curve(self, run_id: str) -> list[list[float]]:
        return read_curve(self.root / "curves" / f"{run_id}.csv")

    def config(self, run_id: str) -> dict:
        return OmegaConf.to_container(OmegaConf.load(self.root / "configs" / f"{run_id}.yaml"))  # type: ignore[return-value]

    def add(self, record: Record) -> str:
        """Store one run: 'added', 'updated' (it has gone on since), 'unchanged', or 'kept' (the store already
        holds more of it, e.g. this is an older copy of a run resumed elsewhere)."""
        row = {k: _cell(record.row[k]) for k in FIELDS}
        old = self.rows.get(record.run_id)
        if old is not None:  # what the person adding it said (--context, --machine, --commit) is said once
            if not row["context"]:
                row["context"] = old.get("context", "")
            for k in ("machine", "commit"):
                if row[k] == NOT_RECORDED:
                    row[k] = old.get(k, NOT_RECORDED)
        if old is not None:
            if int(old["steps_done"]) > int(row["steps_done"]):
                return "kept"
            same = {k: v for k, v in old.items() if k != "run_dir"} == {k: v for k, v in row.items() if k != "run_dir"}
            if same and (self.root / "curves" / f"{record.run_id}.csv").is_file():
                return "unchanged"
        for sub, text in (("curves", _curve_text(record.curve)), ("configs", record.config)):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
            (self.root / sub / f"{record.run_id}.{'csv' if sub == 'curves' else 'yaml'}").write_text(text)
        self.rows[record.run_id] = row
        return "added" if old is None else "updated"

    def save(self) -> None:
        order = {k: i for i, k in enumerate([*presets.SUITES, "other"])}

        def key(r):
            return (order.get(r["suite"], 99), r["env_id"], int(r["budget"]), int(r["seed"]), r["run_id"])

        self.root.mkdir(parents=True, exist_ok=True)
        tmp = self.runs_csv.with_suffix(".csv.tmp")
        with tmp.open("w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=FIELDS, lineterminator="\n")
            w.writeheader()
            w.writerows(sorted(self.rows.values(), key=key))
        tmp.replace(self.runs_csv)

    def anchors(self) -> list[dict]:
        path = self.root / "anchors.csv"
        if not path.is_file():
            return []
        with path.open(newline="") as f:
            return [r for r in csv.DictReader(f) if r["task"] and not r["task"].startswith("#")]

    def random_returns(self) -> dict[str, float]:
        path = self.root / "random.csv"
        if not path.is_file():
            return {}
        with path.open(newline="") as f:
            return {r["task"]: float(r["mean"]) for r in csv.DictReader(f)}


def add_runs(
    store: Store, paths: list[Path], machine: str | None = None, commit: str | None = None, context: str | None = None
) -> int:
    """Store every run in or under `paths`, saying what happened to each; the number stored or updated."""
    for p in paths:
        if not p.is_dir():
            raise UserError(f"{p} is not a directory; pass run directories or sweep directories")
    found = data.find_runs(paths)
    if not found:
        raise UserError(f"no run directories in {', '.join(map(str, paths))}")
    changed = stored = 0
    for path in found:
        try:
            rec = read_run(path, machine, commit, context)
        except UserError as e:
            print(f"{PROG}: skipped {path}: {e}")
            continue
        what = store.add(rec)
        r = rec.row
        done = f"{presets.format_steps(r['steps_done'])} of {presets.format_steps(r['budget'])}"
        print(f"{PROG}: {what:9s} {rec.run_id}  ({r['status']}, {done}, final {fmt_return(r['final_return'])})")
        changed += what in ("added", "updated")
        stored += 1
    if not stored:
        raise UserError(f"no run could be stored from {', '.join(map(str, paths))} (the lines above say why)")
    store.save()
    return changed


# ------------------------------------------------------------------------------------------ presets and runs
def flatten(tree, prefix: str = "") -> dict:
    """{dotted key: value} of a nested config (lists are values)."""
    if not isinstance(tree, dict):
        return {prefix: tree}
    out = {}
    for k, v in tree.items():
        key = f"{prefix}.{k}" if prefix else str(k)
        out.update(flatten(v, key) if isinstance(v, dict) else {key: v})
    return out


def same_value(a, b) -> bool:
    """Config values compared as the run used them: numbers by value (1 and 1.0), lists element by element."""
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(same_value(x, y) for x, y in zip(a, b))
    numbers = (int, float)
    if isinstance(a, numbers) and isinstance(b, numbers) and not isinstance(a, bool) and not isinstance(b, bool):
        return float(a) == float(b)
    return a == b


def config_differences(run_cfg: dict, preset_cfg: dict) -> list[str]:
    """The keys, present in both, whose values differ (NOT_COMPARED aside): a key only one side has (added to
    sac_runner since the run) does not count, as its default keeps the old behaviour."""
    a, b = flatten(run_cfg), flatten(preset_cfg)
    skip = tuple(NOT_COMPARED)
    return sorted(
        k
        for k in a.keys() & b.keys()
        if not (k in skip or k.startswith(tuple(s + "." for s in skip))) and not same_value(a[k], b[k])
    )


def preset_configs() -> dict[str, dict]:
    """{preset: its config as `sac-train env=<preset>` composes it today} (composed once per process)."""
    return copy.deepcopy(_composed_presets())


@functools.cache
def _composed_presets() -> dict[str, dict]:
    from sac_runner.config import compose

    return {n: OmegaConf.to_container(compose(f"env={n}"), resolve=True) for n in presets.preset_names()}  # type: ignore[misc]


@dataclass
class PresetRuns:
    """The stored runs of one preset, as composed today."""

    name: str
    budget: int
    networks: str
    runs: list[dict]  # complete and partial runs of the preset's config at its budget, one per seed
    failed: list[dict]
    others: int  # runs of the task at another budget or with another config
    repeats: int = 0  # more runs of a seed already counted (the latest, most complete one counts)


def one_per_seed(runs: list[dict]) -> list[dict]:
    """A seed's runs are repeats of one experiment: the one that counts is its complete run (else the one that
    went furthest), the latest where there are several. In seed order."""

    def rank(r: dict) -> tuple:
        return (r["status"] == "complete", int(r["steps_done"]), r["finished"] or r["started"])

    best: dict[str, dict] = {}
    for r in runs:
        if r["seed"] not in best or rank(r) > rank(best[r["seed"]]):
            best[r["seed"]] = r
    return [best[k] for k in sorted(best, key=int)]


def preset_runs(store: Store, configs: dict[str, dict]) -> list[PresetRuns]:
    order = [*presets.SUITES, "other"]
    names = sorted(configs, key=lambda n: (order.index(presets.suite(n)), n))
    out = []
    for name in names:
        cfg = configs[name]
        budget = int(cfg["algorithm"]["total_steps"])
        mine, failed, others = [], [], 0
        for r in store.rows.values():
            if r["env_id"] != name:
                continue
            if int(r["budget"]) != budget or config_differences(store.config(r["run_id"]), cfg):
                others += 1
            elif r["status"] == "failed":
                failed.append(r)
            else:
                mine.append(r)
        nets = "-".join(map(str, cfg["architecture"]["critic_hidden_sizes"]))
        per_seed = one_per_seed(mine)
        out.append(PresetRuns(name, budget, nets, per_seed, failed, others, len(mine) - len(per_seed)))
    return out


# ------------------------------------------------------------------------------------------ the tables
def primary_anchor(anchors: list[dict], task: str, budget: int) -> dict | None:
    """The anchor the table shows: the task's first published one at the preset's budget, else its first
    published one, else its 'solved' threshold; None without any."""
    mine = [a for a in anchors if a["task"] == task]
    published = [a for a in mine if a["kind"] == "published"]
    same = [a for a in published if a["budget"] and int(a["budget"]) == budget]
    shown = same or published or mine
    return shown[0] if shown else None


def anchor_cell(a: dict | None) -> str:
    if a is None:
        return "none recorded"
    value = a["value"] + (f" ± {a['spread']}" if a["spread"] else "")
    if a["kind"] != "published":
        return f"{value} ({a['source']})"
    budget = presets.format_steps(int(a["budget"])) if a["budget"] else "budget not stated"
    note = f", {a['note']}" if a["note"] else ""
    return f"{value} ({a['source']}, {budget}, {a['env_version']}{note})"


def steps_span(runs: list[dict], budget: int) -> str:
    """'300k of 1M', or '300k-450k of 1M' where the runs stopped at different steps."""
    done = sorted({int(r["steps_done"]) for r in runs})
    span = "-".join(presets.format_steps(d) for d in (done[0], done[-1])[: 1 if len(done) == 1 else 2])
    return f"{span} of {presets.format_steps(budget)}"


def counted_runs(pr: PresetRuns) -> tuple[list[dict], list[dict]]:
    """(the runs whose returns a row averages, the partial runs it only names): the complete runs where there
    are any, else the partial ones (a budget no run has finished yet: "300k of 1M")."""
    complete = [r for r in pr.runs if r["status"] == "complete"]
    partial = [r for r in pr.runs if r["status"] == "partial"]
    return (complete, partial) if complete else (partial, [])


def seeds_note(pr: PresetRuns) -> str:
    counted, aside = counted_runs(pr)
    n = len(counted)
    text = f"{n} seed{'s' if n != 1 else ''}"
    if counted and counted[0]["status"] == "partial":
        text += f", at {steps_span(counted, pr.budget)}"
    if aside:
        text += f"; {len(aside)} more stopped at {steps_span(aside, pr.budget)}, not counted"
    if pr.failed:
        text += f"; {len(pr.failed)} more failed"
    if pr.repeats:
        text += f"; {pr.repeats} repeat{'s' if pr.repeats > 1 else ''} of a seed not counted"
    return text


def result_cells(pr: PresetRuns) -> tuple[str, str]:
    """(final return cell, wall time cell) of one preset's row."""
    if not pr.runs:
        why = "not yet measured (needs a GPU)" if pr.name in NEEDS_GPU else "not yet measured"
        extra = []
        if pr.failed:
            extra.append(f"{len(pr.failed)} failed run{'s' if len(pr.failed) > 1 else ''}")
        if pr.others:
            extra.append(f"{pr.others} run{'s' if pr.others > 1 else ''} of another config or budget stored")
        return why + (f" ({'; '.join(extra)})" if extra else ""), "-"
    counted, _ = counted_runs(pr)
    finals = np.array([parse_num(r["final_return"]) for r in counted])
    lo, hi = bootstrap_ci(finals)
    ci = f" [{fmt_return(lo)}, {fmt_return(hi)}]" if math.isfinite(lo) else ""
    result = f"{fmt_return(float(finals.mean()))}{ci} ({seeds_note(pr)})"
    # wall times are only comparable on one machine under one load: one mean for each (machine, cores, context)
    groups: dict[tuple[str, str, str], list[dict]] = {}
    for r in counted:
        groups.setdefault((r["machine"], r["cpus"], r.get("context", "")), []).append(r)
    walls = []
    for (machine, cores, context), runs in groups.items():
        wall = float(np.mean([parse_num(r["wall_time_s"]) for r in runs]))
        where = machine
        if cores and all(r["device"].startswith("cpu") for r in runs):
            where += f", {cores} core{'' if cores == '1' else 's'}"
        if context:
            where += f"; {context}"
        walls.append(f"{fmt_time(wall)} ({where})")
    return result, "<br>".join(walls)


def presets_table(store: Store, configs: dict[str, dict] | None = None) -> str:
    """The README's presets table: per preset its suite, task, budget and networks as composed, the final
    return over the seeds stored for it (or why there is none), its anchor, and the wall time and machine."""
    configs = configs if configs is not None else preset_configs()
    anchors = store.anchors()
    lines = [
        "| preset | suite | task | budget (env steps) | networks | final return [95% CI] (seeds) | anchor "
        "(source, budget, version) | wall time per run (machine) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for pr in preset_runs(store, configs):
        result, wall = result_cells(pr)
        lines.append(
            f"| `{pr.name}` | {suite_title(presets.suite(pr.name))} | {presets.preset_description(pr.name)} | "
            f"{presets.format_steps(pr.budget)} | {pr.networks} | {result} | "
            f"{anchor_cell(primary_anchor(anchors, pr.name, pr.budget))} | {wall} |"
        )
    return "\n".join(lines)


def normalised_scores(store: Store, configs: dict[str, dict]) -> dict[str, dict[str, list[float]]]:
    """{suite: {task: [score of each run]}}: (final return - random) / (anchor - random), 1 at the anchor and
    0 at uniformly random actions, for the presets' runs (complete ones) with an anchor and a random return."""
    anchors, rand = store.anchors(), store.random_returns()
    out: dict[str, dict[str, list[float]]] = {}
    for pr in preset_runs(store, configs):
        a = primary_anchor(anchors, pr.name, pr.budget)
        runs = [r for r in pr.runs if r["status"] == "complete"]
        if a is None or pr.name not in rand or not runs:
            continue
        base, top = rand[pr.name], float(a["value"])
        if top == base:
            continue
        scores = [(parse_num(r["final_return"]) - base) / (top - base) for r in runs]
        out.setdefault(presets.suite(pr.name), {})[pr.name] = scores
    return out


def stratified_iqm_ci(by_task: dict[str, list[float]], n_resamples: int = 5000, seed: int = 0):
    """IQM of all scores, and its percentile bootstrap 95% CI resampling runs within each task."""
    rng = np.random.default_rng(seed)
    tasks = [np.asarray(v, dtype=float) for v in by_task.values()]
    point = iqm(np.concatenate(tasks))
    if sum(t.size for t in tasks) < 2:
        return point, math.nan, math.nan
    stats = [iqm(np.concatenate([t[rng.integers(0, t.size, t.size)] for t in tasks])) for _ in range(n_resamples)]
    lo, hi = np.quantile(stats, [0.025, 0.975])
    return point, float(lo), float(hi)


def aggregate_table(store: Store, configs: dict[str, dict] | None = None) -> str:
    configs = configs if configs is not None else preset_configs()
    scores = normalised_scores(store, configs)
    lines = [
        "| suite | tasks | runs | score IQM [95% CI] |",
        "|---|---|---|---|",
    ]
    for key in presets.SUITES:
        by_task = scores.get(key, {})
        if not by_task:
            lines.append(f"| {suite_title(key)} | - | 0 | not yet measured |")
            continue
        point, lo, hi = stratified_iqm_ci(by_task)
        ci = f" [{lo:.2f}, {hi:.2f}]" if math.isfinite(lo) else ""
        n = sum(len(v) for v in by_task.values())
        lines.append(f"| {suite_title(key)} | {', '.join(by_task)} | {n} | {point:.2f}{ci} |")
    return "\n".join(lines)


def gif_line(figures: Path) -> str:
    """Markdown showing the GIF of each suite that has one (outputs/figures/<suite>.gif)."""
    shown = [
        f"![{suite_title(k)}: a trained agent](outputs/figures/{k}.gif)"
        for k in presets.SUITES
        if (figures / f"{k}.gif").is_file()
    ]
    return " ".join(shown)


def readme_block(store: Store, configs: dict[str, dict] | None = None, figures: Path = FIGURES) -> str:
    """What goes between the README's presets-table markers, all of it generated from the store."""
    configs = configs if configs is not None else preset_configs()
    parts = [
        presets_table(store, configs),
        "",
        "*Final return: the last evaluation (the mean return of 10 deterministic episodes) of each run, averaged "
        "over the seeds, with a 95% bootstrap CI; only runs of the preset as it is today, at its budget. Anchor: "
        "a published SAC return (all of them, with their sources: "
        "[anchors.csv](outputs/results/anchors.csv)), or the task's solved threshold in Gymnasium's registry "
        "where none is recorded. Per suite, the score of each run is (return - random) / (anchor - random): 1 "
        "at the anchor, 0 for uniformly random actions ([random.csv](outputs/results/random.csv)); its "
        "interquartile mean over all runs, with a 95% bootstrap CI that resamples runs within each task:*",
        "",
        aggregate_table(store, configs),
    ]
    if (figures / "learning_curves.png").is_file():
        parts += [
            "",
            "![evaluation return against env steps, one panel per preset with runs, anchors dashed]"
            "(outputs/figures/learning_curves.png)",
        ]
    gifs = gif_line(figures)
    if gifs:
        parts += ["", gifs]
    return "\n".join(parts)


BLOCK = re.compile(re.escape(START) + r".*?" + re.escape(END), re.S)


def check_readme(readme: Path) -> str:
    """The README's text; UserError unless it exists and has the presets-table markers."""
    try:
        text = readme.read_text()
    except OSError as e:
        raise UserError(f"cannot read {readme} ({e.strerror}); pass the README with the presets table") from None
    if not BLOCK.search(text):
        raise UserError(f"{readme} has no {START} ... {END} block to fill")
    return text


def fill_readme(readme: Path, block: str) -> None:
    text = check_readme(readme)
    readme.write_text(BLOCK.sub(lambda _: f"{START}\n{block}\n{END}", text))


# ------------------------------------------------------------------------------------------ plot
def plot(store: Store, out: Path, configs: dict[str, dict] | None = None) -> int:
    """Learning curves of the presets' runs against env steps, one panel per preset with runs: the mean over
    seeds with its 95% bootstrap band, each seed thin, each anchor a dashed line. Returns the panels drawn."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter

    configs = configs if configs is not None else preset_configs()
    anchors = store.anchors()
    panels = [pr for pr in preset_runs(store, configs) if pr.runs]
    if not panels:
        raise UserError("the store holds no run of any preset as composed today; nothing to plot")
    cols = min(len(panels), 3)
    rows = math.ceil(len(panels) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(5.2 * cols, 4.0 * rows + 0.5), squeeze=False)
    for ax, pr in zip(axes.flat, panels):
        runs = []
        for r in pr.runs:
            c = np.array(store.curve(r["run_id"]))
            runs.append(data.Run(Path(r["run_id"]), seed=int(r["seed"]), steps=c[:, 0], returns=c[:, 1]))
            ax.plot(c[:, 0], c[:, 1], color="tab:blue", lw=0.6, alpha=0.35)
        steps, mean, lo, hi = group_curve(Group((), runs, pr.name), 0.95, 2000, 0)
        seeds = f"{len(runs)} seed{'s' if len(runs) > 1 else ''}"
        ax.plot(steps, mean, color="tab:blue", lw=2, label=f"sac_runner, mean of {seeds}")
        ax.fill_between(steps, lo, hi, color="tab:blue", alpha=0.2, lw=0)
        for i, a in enumerate(x for x in anchors if x["task"] == pr.name):
            label = f"{a['source']} {a['value']}"
            if a["kind"] == "published":
                budget = presets.format_steps(int(a["budget"])) if a["budget"] else "?"
                label += f" (at {budget}, {a['env_version']})"
            ax.axhline(float(a["value"]), color=plt.get_cmap("Dark2")(i % 8), ls="--", lw=1.2, label=label)
        ax.set_xlim(0, pr.budget)
        ax.set_title(f"{pr.name}: {presets.format_steps(pr.budget)} steps, {pr.networks}", fontsize=10)
        ax.set_xlabel("environment steps")
        ax.set_ylabel("evaluation return")
        ax.grid(alpha=0.3)
        ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _: presets.format_steps(int(x)) if x else "0"))
        ax.legend(fontsize=7, loc="best")
    for ax in axes.flat[len(panels) :]:
        ax.set_visible(False)
    sep = "\n" if cols == 1 else "; "
    fig.suptitle(
        f"sac_runner presets: mean over seeds, 95% bootstrap CI shaded{sep}each seed thin, anchors dashed", fontsize=9
    )
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(
        out,
        dpi=90,
        metadata={"Software": "scripts/results.py", "Comment": "panels: " + "; ".join(p.name for p in panels)},
    )
    plt.close(fig)
    return len(panels)


# ------------------------------------------------------------------------------------------ gif
def make_gif(run_dir: Path, out: Path, seconds: float = 4.0, fps: int = 12, width: int = 240, max_kb: int = 1000):
    """A short GIF from the run's videos/best_agent.mp4: its first `seconds`, `fps` frames a second, `width`
    pixels wide; shrunk (fewer frames a second, then narrower) until it is under `max_kb`. Returns (frames,
    size in bytes, width)."""
    import imageio.v2 as imageio
    from PIL import Image

    video = run_dir / "videos" / "best_agent.mp4" if run_dir.is_dir() else run_dir
    if not video.is_file():
        raise UserError(f"{video} does not exist; pass a run directory whose run recorded a video (save_video=true)")
    reader = imageio.get_reader(str(video), format="ffmpeg")
    src_fps = float(reader.get_meta_data().get("fps") or 30)
    frames = []
    for i, frame in enumerate(reader):
        if i >= seconds * src_fps:
            break
        frames.append(Image.fromarray(frame))
    reader.close()
    if not frames:
        raise UserError(f"{video} holds no frames")
    while True:
        step = max(1, round(src_fps / fps))
        h = round(frames[0].height * width / frames[0].width)
        picked = [f.resize((width, h), Image.Resampling.LANCZOS) for f in frames[::step]]
        # one palette for all frames (the first frame's), so that the background does not flicker
        palette = picked[0].quantize(colors=64, method=Image.Quantize.MEDIANCUT)
        quantized = [p.quantize(palette=palette, dither=Image.Dither.NONE) for p in picked]
        out.parent.mkdir(parents=True, exist_ok=True)
        quantized[0].save(
            out,
            save_all=True,
            append_images=quantized[1:],
            duration=round(1000 * step / src_fps),
            loop=0,
            optimize=True,
        )
        size = out.stat().st_size
        if size <= max_kb * 1000 or (fps <= 5 and width <= 120):
            return len(quantized), size, width
        if fps > 5:
            fps = max(5, fps * 2 // 3)
        else:
            width = max(120, width * 3 // 4)


# ------------------------------------------------------------------------------------------ random returns
def random_returns(envs: list[str], episodes: int, seed: int = 0) -> list[dict]:
    """The mean return of uniformly random actions over `episodes` episodes of each preset's environment
    (as configured by the preset: its kwargs and episode limit)."""
    import gymnasium as gym

    from sac_runner.config import compose
    from sac_runner.envs import make_env

    rows = []
    for name in envs:
        env = make_env(compose(f"env={name}").env)
        env.action_space.seed(seed)
        returns = []
        for ep in range(episodes):
            env.reset(seed=seed + ep)
            total, done = 0.0, False
            while not done:
                _, r, terminated, truncated, _ = env.step(env.action_space.sample())
                total += float(r)
                done = terminated or truncated
            returns.append(total)
        env.close()
        rows.append(
            {
                "task": name,
                "episodes": episodes,
                "mean": f"{np.mean(returns):.6g}",
                "std": f"{np.std(returns):.6g}",
                "gymnasium": gym.__version__,
                "measured": datetime.date.today().isoformat(),
            }
        )
        print(f"{PROG}: {name}: random actions return {np.mean(returns):.6g} over {episodes} episodes")
    return rows


# ------------------------------------------------------------------------------------------ command line
def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog=PROG, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--store", type=Path, default=STORE, help="the store's directory (default outputs/results)")
    sub = ap.add_subparsers(dest="command", required=True)
    p = sub.add_parser("add", help="store the runs in or under run or sweep directories")
    p.add_argument("paths", type=Path, nargs="+")
    p.add_argument("--machine", help="for runs that do not record theirs (older sac_runner), e.g. 'AMD EPYC'")
    p.add_argument("--commit", help="for runs that do not record theirs (older sac_runner)")
    p.add_argument("--context", help="how they were run, shown beside the machine: 'niced, on a shared core'")
    sub.add_parser("list", help="the stored runs, one line each")
    p = sub.add_parser("table", help="print the presets table and the per-suite aggregate")
    p.add_argument("--readme", type=Path, help="also fill this README's presets-table block")
    p = sub.add_parser("plot", help="learning curves of the presets' runs, anchors marked")
    p.add_argument("--out", type=Path, default=FIGURES / "learning_curves.png")
    p = sub.add_parser("gif", help="a short GIF from a run's best-agent video")
    p.add_argument("run_dir", type=Path)
    p.add_argument("--out", type=Path, required=True, help="e.g. outputs/figures/classic_control.gif")
    p.add_argument("--seconds", type=float, default=4.0)
    p.add_argument("--fps", type=int, default=12)
    p.add_argument("--width", type=int, default=240)
    p = sub.add_parser("random", help="measure the return of uniformly random actions (the score's zero)")
    p.add_argument("--envs", nargs="+", default=None, help="default: every preset")
    p.add_argument("--episodes", type=int, default=20)
    args = ap.parse_args(argv)

    try:
        store = Store(args.store)
        if args.command == "add":
            add_runs(store, args.paths, args.machine, args.commit, args.context)
            n = len(store.rows)
            print(f"{PROG}: {n} run{'' if n == 1 else 's'} in {store.runs_csv}")
        elif args.command == "list":
            for r in store.rows.values():
                done = f"{presets.format_steps(int(r['steps_done']))}/{presets.format_steps(int(r['budget']))}"
                print(f"{r['run_id']}  {r['status']:8s} {done:>10s}  final {r['final_return']:>9s}  {r['machine']}")
        elif args.command == "table":
            if args.readme is not None:
                check_readme(args.readme)
            block = readme_block(store)
            print(block)
            if args.readme is not None:
                fill_readme(args.readme, block)
                print(f"{PROG}: filled the presets table of {args.readme}")
        elif args.command == "plot":
            n = plot(store, args.out)
            print(f"{PROG}: wrote {args.out} ({n} panels)")
        elif args.command == "gif":
            frames, size, width = make_gif(args.run_dir, args.out, args.seconds, args.fps, args.width)
            print(f"{PROG}: wrote {args.out}: {frames} frames, {width} px wide, {size / 1000:.0f} kB")
        elif args.command == "random":
            envs = args.envs or list(presets.preset_names())
            unknown = [e for e in envs if e not in presets.preset_names()]
            if unknown:
                raise UserError(f"{unknown[0]} is not an env preset; use one of {', '.join(presets.preset_names())}")
            rows = random_returns(envs, args.episodes)
            path = store.root / "random.csv"
            old = {}
            if path.is_file():
                with path.open(newline="") as f:
                    old = {r["task"]: r for r in csv.DictReader(f)}
            old.update({r["task"]: r for r in rows})
            with path.open("w", newline="") as f:
                w = csv.DictWriter(f, fieldnames=RANDOM_FIELDS, lineterminator="\n")
                w.writeheader()
                w.writerows(old[k] for k in sorted(old))
            print(f"{PROG}: wrote {path}")
    except UserError as e:
        print(f"{PROG}: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
    sys.exit(main())
