#!/usr/bin/env python
"""The learning table: train env presets over several seeds in one Hydra multirun, then sac-report it.

    python scripts/learning_table.py                                   # the default tasks, seeds 0 1 2
    python scripts/learning_table.py --envs Hopper-v5 Walker2d-v5 --jobs 2 --budget 300000
    python scripts/learning_table.py --all --readme README.md           # every preset; store them; fill the table
    python scripts/learning_table.py --report-only outputs/learning_table/2026-12-01_10-00-00 --readme README.md
    python scripts/learning_table.py --envs Pendulum-v1 --seeds 0 --budget 600 --figures /tmp/lt -- experiment=smoke
    python scripts/learning_table.py --envs CartPoleContinuous-v1 --seeds 0 1 2 3 4 --budget 30000 \
        --threshold 475 --min-pass 4 --jobs 2                           # a learning check

It runs one `sac-train -m env=A,B,... seed=0,1,2 save_video=false progress=false` (each preset's own
step budget unless --budget is given; --jobs N runs N jobs at a time with hydra/launcher=parallel), then
`sac-report` on the sweep directory (one group and one plot panel per task), and writes into --figures
(default outputs/figures/):

    learning.md    the table: budget, final and best evaluation return over the seeds, wall time, steps/s
    learning.png   sac-report's plot: evaluation return against env steps, one panel per task

With --store (or --readme) the sweep's runs go into the results store (outputs/results/, scripts/results.py);
with --readme the presets table of that file (between the `presets-table` markers) is then generated from the
store, which is the one way from runs to that table. Arguments after `--` are passed to sac-train as extra
overrides. Exit status: sac-train's if the sweep failed to start, else sac-report's.

A learning check: with --threshold R, sac-report counts per task the seeds whose evaluation return reached R
within the budget; with --min-pass N the exit status is 1 unless every task has at least N such seeds (no
figures are written then unless --figures is given).
"""

from __future__ import annotations

import argparse
import csv
import datetime
import os
import platform
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

from sac_runner import presets

sys.path.insert(0, str(Path(__file__).resolve().parent))
import results  # noqa: E402 - scripts/results.py: the store, and the presets table generated from it

ROOT = Path(__file__).resolve().parents[1]
# cheap to expensive, all three suites; a million-step MuJoCo run takes hours on a CPU core
DEFAULT_ENVS = [
    "MountainCarContinuous-v0",
    "InvertedPendulum-v5",
    "Reacher-v5",
    "InvertedDoublePendulum-v5",
    "LunarLanderContinuous-v3",
    "Hopper-v5",
]


def sac_train_command() -> list[str]:
    exe = shutil.which("sac-train")
    return [exe] if exe else [sys.executable, "-m", "sac_runner.cli"]


def sac_report_command() -> list[str]:
    exe = shutil.which("sac-report")
    return [exe] if exe else [sys.executable, "-m", "sac_runner.report"]


def sweep_command(args, sweep_dir: Path) -> list[str]:
    cmd = [
        *sac_train_command(),
        "-m",
        f"env={','.join(args.envs)}",
        f"seed={','.join(map(str, args.seeds))}",
        "save_video=false",
        "progress=false",
        f"hydra.sweep.dir={sweep_dir}",
    ]
    if args.budget is not None:
        cmd.append(f"algorithm.total_steps={args.budget}")
    if args.eval_interval is not None:
        cmd.append(f"algorithm.eval_interval={args.eval_interval}")
    if args.jobs > 1:
        cmd += ["hydra/launcher=parallel", f"hydra.launcher.n_jobs={args.jobs}"]
    return cmd + list(args.overrides)


def fmt_time(seconds: float) -> str:
    if seconds != seconds:  # NaN
        return "-"
    if seconds < 120:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.0f} min" if seconds < 7200 else f"{seconds / 3600:.1f} h"


def read_measurements(sweep_dir: Path, report_csv: Path) -> dict[str, dict]:
    """{env id: row of report.csv plus the budget its runs had}, for the groups of the sweep."""
    budgets: dict[str, int] = {}
    for cfg_file in sweep_dir.glob("*/config.yaml"):
        cfg = yaml.safe_load(cfg_file.read_text()) or {}
        steps = (cfg.get("algorithm") or {}).get("total_steps")
        if steps is not None:
            budgets[(cfg.get("env") or {}).get("id")] = int(steps)
    with report_csv.open(newline="") as f:
        rows = list(csv.DictReader(f))
    out = {}
    for row in rows:
        env = row["env"]
        if env in out:  # several groups for one task (extra overrides that differ): keep the first
            continue
        out[env] = {**row, "budget": budgets.get(env)}
    return out


def _num(row: dict, key: str) -> float:
    try:
        return float(row[key])
    except (KeyError, ValueError):
        return float("nan")


def _int(x: float) -> str:
    text = f"{x:.0f}"
    return "0" if text == "-0" else text


def return_cell(row: dict) -> str:
    mean, lo, hi = _num(row, "final_mean"), _num(row, "final_ci_low"), _num(row, "final_ci_high")
    return _int(mean) if lo != lo else f"{_int(mean)} [{_int(lo)}, {_int(hi)}]"


def learning_markdown(measured: dict[str, dict], command: list[str], sweep_dir: Path) -> str:
    when = datetime.date.today().isoformat()
    machine = f"{platform.machine()}, {os.cpu_count()} CPU cores, Python {platform.python_version()}"
    lines = [
        "# Learning table",
        "",
        f"Measured {when} on {machine} by `python scripts/learning_table.py`, which ran",
        "",
        "```",
        " ".join(command),
        "```",
        "",
        f"and `sac-report {sweep_dir}`. Final: the last evaluation's mean return (over algorithm.nb_evals",
        "deterministic episodes, 10 in every preset), averaged over the seeds, with a 95% bootstrap confidence",
        "interval; best: the best evaluation, averaged likewise. Wall time and steps/s are per run, evaluations",
        "included.",
        "",
        "| task | budget (env steps) | seeds | final return [95% CI] | best return | wall time per run | steps/s |",
        "|---|---|---|---|---|---|---|",
    ]
    for env, row in measured.items():
        budget = presets.format_steps(row["budget"]) if row.get("budget") else "-"
        lines.append(
            f"| {env} | {budget} | {row['seeds']} | {return_cell(row)} | {_int(_num(row, 'best_mean'))} | "
            f"{fmt_time(_num(row, 'wall_time_s'))} | {_num(row, 'steps_per_second'):.0f} |"
        )
    lines += ["", "![evaluation return against env steps, one panel per task](learning.png)", ""]
    return "\n".join(lines)


def check_threshold(report_csv: Path, threshold: float, min_pass: int) -> bool:
    """Print, per task, how many seeds reached `threshold` (sac-report's "reached" column); whether every task
    has at least `min_pass` of them."""
    with report_csv.open(newline="") as f:
        rows = list(csv.DictReader(f))
    ok = bool(rows)
    for row in rows:
        reached, runs = (int(x) for x in row["reached"].split("/"))
        ok &= reached >= min_pass
        print(f"learning check: {row['env']}: {reached}/{runs} seeds reached {threshold:g} (need {min_pass})")
    return ok


def store_and_fill(sweep_dir: Path, store_dir: Path, readme: Path | None) -> None:
    """Add the sweep's runs to the results store; with `readme`, fill its presets table from the store."""
    store = results.Store(store_dir)
    try:
        results.add_runs(store, [sweep_dir])
        if readme is not None:
            results.fill_readme(readme, results.readme_block(store))
            print(f"learning_table.py: filled the presets table of {readme} from {store.runs_csv}")
    except results.UserError as e:
        raise SystemExit(f"learning_table.py: error: {e}") from None


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--envs", nargs="+", default=DEFAULT_ENVS, help="env presets (or any ids) to train")
    ap.add_argument("--all", action="store_true", help="every env preset in conf/env/")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--budget", type=int, default=None, help="env steps for every task (default: each preset's)")
    ap.add_argument("--eval-interval", type=int, default=None, help="for every task (default: each preset's)")
    ap.add_argument("--jobs", type=int, default=1, help="jobs at a time (hydra/launcher=parallel; needs .[sweep])")
    ap.add_argument("--sweep-dir", type=Path, default=None, help="default: outputs/learning_table/<date>_<time>")
    ap.add_argument("--report-only", type=Path, default=None, help="skip training: report this finished sweep")
    ap.add_argument("--figures", type=Path, default=None, help="where the table and plot go (outputs/figures/)")
    ap.add_argument("--threshold", type=float, default=None, help="count the seeds whose return reached this")
    ap.add_argument("--min-pass", type=int, default=None, help="with --threshold: seeds per task that must reach it")
    ap.add_argument("--store", type=Path, default=None, help="add the sweep's runs to this results store")
    ap.add_argument("--readme", type=Path, default=None, help="store the runs, then fill this README's presets table")
    ap.add_argument("--print-presets-table", action="store_true", help="print the store's presets table and exit")
    ap.add_argument("overrides", nargs="*", help="extra sac-train overrides, after --")
    args = ap.parse_args()
    if args.min_pass is not None and args.threshold is None:
        ap.error("--min-pass needs --threshold")
    if args.figures is None and args.min_pass is None:
        args.figures = ROOT / "outputs" / "figures"
    if args.readme is not None and args.store is None:
        args.store = results.STORE
    if args.print_presets_table:
        print(results.presets_table(results.Store(args.store or results.STORE)))
        return 0
    if args.all:
        args.envs = list(presets.preset_names())

    if args.report_only is not None:
        sweep_dir = args.report_only
        try:  # the command that made it, from Hydra's record of the sweep
            task = yaml.safe_load((sweep_dir / "multirun.yaml").read_text())["hydra"]["overrides"]["task"]
        except (OSError, KeyError, TypeError, yaml.YAMLError):
            task = ["..."]
        command = ["sac-train", "-m", *task, f"hydra.sweep.dir={sweep_dir}"]
    else:
        stamp = datetime.datetime.now().strftime("%Y-%m-%d_%H-%M-%S")
        sweep_dir = args.sweep_dir or Path("outputs") / "learning_table" / stamp
        command = sweep_command(args, sweep_dir)
        runs = len(args.envs) * len(args.seeds)
        print(f"learning_table.py: {runs} runs into {sweep_dir}\n  {' '.join(command)}", flush=True)
        status = subprocess.run(command).returncode
        command = ["sac-train", *command[len(sac_train_command()) :]]  # as a user types it
        if status != 0 and not any(sweep_dir.glob("*/summary.json")):
            return status  # nothing to report (a failed jobs' list is printed by sac-train, and reported below)

    report_dir = sweep_dir / "report"
    threshold = [] if args.threshold is None else ["--threshold", str(args.threshold)]
    status = subprocess.run([*sac_report_command(), str(sweep_dir), "--out", str(report_dir), *threshold]).returncode
    if status != 0:
        return status
    measured = read_measurements(sweep_dir, report_dir / "report.csv")
    if args.figures is not None:
        args.figures.mkdir(parents=True, exist_ok=True)
        (args.figures / "learning.md").write_text(learning_markdown(measured, command, sweep_dir))
        shutil.copyfile(report_dir / "report.png", args.figures / "learning.png")
        print(f"learning_table.py: wrote {args.figures / 'learning.md'} and {args.figures / 'learning.png'}")
    if args.store is not None:
        store_and_fill(sweep_dir, args.store, args.readme)
    if args.min_pass is not None and not check_threshold(report_dir / "report.csv", args.threshold, args.min_pass):
        return 1
    return 0


if __name__ == "__main__":
    os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
    sys.exit(main())
