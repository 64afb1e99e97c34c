"""`sac-report`: compare runs. Reads each run's evaluation curve from its TensorBoard event files,
groups the runs by environment and by the config values they ran with except the seed, and writes a table
(terminal, CSV, Markdown) and a plot of evaluation return against environment steps, one line per group
and one panel per environment. The trials of an Optuna search are labelled by number, their values in a
second table. The jobs a stopped grid sweep never started are listed with the command that runs them.

    sac-report outputs/multirun/2026-11-25/10-00-00-000000-1234          # a sweep directory
    sac-report runA runB runC --threshold 475 --out reports/cartpole     # run directories
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from sac_runner.errors import print_error
from sac_runner.report import render
from sac_runner.report.data import find_runs, load_run, report_title, skip_incomplete, unstarted_runs
from sac_runner.report.groups import common_overrides, make_groups, trial_table
from sac_runner.report.stats import group_stats, sort_groups


def main(argv: list[str] | None = None) -> int:
    """sac-report: load the runs, group them, write report.csv, runs.csv, report.md and report.png into
    --out and print the table; return the exit status (0; 1: no usable run; 2: bad arguments)."""
    ap = argparse.ArgumentParser(
        prog="sac-report",
        description=__doc__.split("\n\n")[0],
        epilog="Writes report.csv (one row per group), runs.csv (one row per run, skipped ones with "
        "the reason, and one per job a stopped sweep never started), report.md and report.png into --out.",
    )
    ap.add_argument("paths", nargs="+", type=Path, help="sweep directories and/or run directories")
    ap.add_argument(
        "--out",
        type=Path,
        default=None,
        help="output directory (default: <the sweep dir>/report for one sweep directory, else ./report)",
    )
    ap.add_argument(
        "--threshold",
        type=float,
        default=None,
        help="report the first evaluation step whose mean return reached this value",
    )
    ap.add_argument(
        "--include-incomplete",
        action="store_true",
        help="also use runs without summary.json (still running or interrupted), with the evaluations so far",
    )
    ap.add_argument("--confidence", type=float, default=0.95, help="bootstrap confidence level (default 0.95)")
    ap.add_argument("--resamples", type=int, default=10000, help="bootstrap resamples (default 10000)")
    ap.add_argument("--seed", type=int, default=0, help="seed of the bootstrap (default 0)")
    ap.add_argument(
        "--sort",
        choices=["none", "final", "best"],
        default="none",
        help="order of the groups: as found (default), or by mean final or best return, highest first",
    )
    ap.add_argument("--no-plot", action="store_true", help="skip report.png (matplotlib is then not needed)")
    args = ap.parse_args(argv)

    def error(msg: str, code: int = 2) -> int:
        print_error(msg, prog="sac-report")
        return code

    missing = [str(p) for p in args.paths if not p.is_dir()]
    if missing:
        return error(f"not a directory: {', '.join(missing)}")
    if not 0.0 < args.confidence < 1.0:
        return error(f"--confidence={args.confidence} is outside (0, 1); use e.g. --confidence 0.95")
    if args.resamples < 1:
        return error(f"--resamples={args.resamples} must be positive; use e.g. --resamples 10000")
    if not args.no_plot:
        try:  # here, not at the top: an optional extra (report), and slow to import
            import matplotlib  # noqa: F401
        except ImportError:
            return error("matplotlib is needed for the plot: pip install 'sac_runner[report]' (or pass --no-plot)")

    run_dirs = find_runs(args.paths)
    runs = [load_run(d) for d in run_dirs] + unstarted_runs(args.paths)
    if not runs:
        return error(
            f"no run directories in {', '.join(map(str, args.paths))} "
            f"(a run directory holds config.yaml, .hydra/ or tensorboard/)",
            1,
        )
    if not args.include_incomplete:
        skip_incomplete(runs)
    used = [r for r in runs if r.skip_reason is None]
    skipped = [r for r in runs if r.skip_reason is not None]

    if args.out is not None:
        out = args.out
    elif len(args.paths) == 1 and args.paths[0].resolve() not in run_dirs:
        out = args.paths[0] / "report"
    else:
        out = Path("report")
    out.mkdir(parents=True, exist_ok=True)
    if not used:
        render.write_runs_csv(out / "runs.csv", runs)
        print(f"sac-report: no usable run among {render.count_runs(runs)}; skipped:", file=sys.stderr)
        print("\n".join(render.skipped_lines(skipped)), file=sys.stderr)
        return 1

    groups = make_groups(used)  # also labels each run with its group, for runs.csv
    render.write_runs_csv(out / "runs.csv", runs)
    rows = [group_stats(g, args.threshold, args.confidence, args.resamples, args.seed) for g in groups]
    if args.sort != "none":
        groups, rows = sort_groups(groups, rows, args.sort)
    header, body = render.table_rows(rows, args.confidence)
    title = report_title(used)
    common = " ".join(common_overrides(groups)) or "none"

    render.write_csv(out / "report.csv", rows)
    if not args.no_plot:
        render.plot(groups, out / "report.png", args.confidence, args.resamples, args.seed, args.threshold, title)
    report = render.Report(title, used, groups, common, header, body, skipped, trial_table(groups))
    plot_file = None if args.no_plot else "report.png"
    render.write_markdown(out / "report.md", report, args.confidence, args.resamples, args.threshold, plot_file)
    written = ["report.csv", "runs.csv", "report.md"] + ([] if args.no_plot else ["report.png"])
    print(render.summary_text(report, [out / w for w in written]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
