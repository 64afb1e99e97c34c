"""`sac-report`: compare runs. Reads each run's evaluation curve from its TensorBoard event files,
groups the runs by their command-line overrides except the seed, and writes a table (terminal,
CSV, Markdown) and a plot of evaluation return against environment steps, one line per group.

    sac-report outputs/multirun/2026-11-25/10-00-00-000000-1234          # a sweep directory
    sac-report runA runB runC --threshold 475 --out reports/cartpole     # run directories
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

EVAL_TAG = "eval/return_mean"
SPS_TAG = "time/steps_per_second"
# overrides that do not change what is learned, so they never split a group (with the seed)
NOT_GROUPING = ("seed", "progress", "save_video", "resume")
RUN_MARKERS = (".hydra", "config.yaml", "summary.json", "tensorboard", "failed.json")


# ------------------------------------------------------------------------------------------ runs
@dataclass
class Run:
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
        return tuple(sorted(o for o in self.overrides if _override_key(o) not in NOT_GROUPING
                            and not _override_key(o).startswith(("hydra.", "hydra/"))))

    @property
    def final(self) -> float:
        return float(self.returns[-1])

    @property
    def best(self) -> float:
        return float(self.returns.max())

    def steps_to(self, threshold: float) -> float:
        hit = np.flatnonzero(self.returns >= threshold)
        return float(self.steps[hit[0]]) if hit.size else math.nan


def _override_key(override: str) -> str:
    return override.split("=", 1)[0].lstrip("+~")


def _natural(path: Path):
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", str(path))]


def find_runs(paths: list[Path]) -> list[Path]:
    """Run directories in or under `paths`: a directory holding any of RUN_MARKERS is a run (we do
    not look inside it); other directories are searched (a sweep directory, a folder of sweeps).
    A directory named by a number with no subdirectory (a sweep job that has not written anything
    yet) counts as a run too, to be reported as skipped."""
    found: list[Path] = []

    def visit(d: Path, depth: int) -> None:
        if any((d / m).exists() for m in RUN_MARKERS) or (d.name.isdigit() and not any(
                c.is_dir() for c in d.iterdir())):
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
    unique = list(dict.fromkeys(p.resolve() for p in found))
    return unique


def _read_yaml(path: Path):
    from omegaconf import OmegaConf

    return OmegaConf.to_container(OmegaConf.load(path))


def read_scalars(tb_dir: Path, tags: tuple[str, ...]) -> dict[str, list]:
    """{tag: [(wall_time, step, value), ...]} from every event file in tb_dir; a step logged twice
    (a run resumed from an earlier checkpoint) keeps its last value."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(tb_dir), size_guidance={"scalars": 0})
    acc.Reload()
    available = set(acc.Tags().get("scalars", []))
    out = {}
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
    if not any((path / m).exists() for m in RUN_MARKERS):
        run.skip_reason = "nothing written yet (not started, or failed before its config was saved)"
        return run
    hydra_overrides = path / ".hydra" / "overrides.yaml"
    try:
        if hydra_overrides.is_file():
            run.overrides = [str(o) for o in (_read_yaml(hydra_overrides) or [])]
        if (path / "config.yaml").is_file():
            cfg = _read_yaml(path / "config.yaml") or {}
            run.seed = cfg.get("seed")
            run.env_id = (cfg.get("env") or {}).get("id")
    except Exception as e:  # noqa: BLE001 - a damaged file only skips this run
        run.skip_reason = f"unreadable config ({type(e).__name__}: {e})"
        return run
    if run.seed is None:
        run.seed = next((int(o.split("=", 1)[1]) for o in run.overrides
                         if _override_key(o) == "seed" and o.split("=", 1)[1].isdigit()), None)

    failed = path / "failed.json"
    summary = path / "summary.json"
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
            if s.get("interrupted"):  # stopped by a signal, with a resumable checkpoint
                run.incomplete_reason = (f"interrupted by {s['interrupted']} at step {s.get('env_steps')} "
                                         f"(continue it with: sac-train resume={path})")
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


# ------------------------------------------------------------------------------------------ statistics
def bootstrap_ci(x, confidence: float = 0.95, n_resamples: int = 10000, seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap confidence interval of the mean of x (NaN, NaN for fewer than 2 values)."""
    x = np.asarray(x, dtype=float)
    if x.size < 2:
        return math.nan, math.nan
    rng = np.random.default_rng(seed)
    means = x[rng.integers(0, x.size, size=(n_resamples, x.size))].mean(axis=1)
    alpha = (1.0 - confidence) / 2
    lo, hi = np.quantile(means, [alpha, 1.0 - alpha])
    return float(lo), float(hi)


def iqm(x) -> float:
    """Interquartile mean: the mean of the middle 50% (25% trimmed from each end, as
    scipy.stats.trim_mean(x, 0.25)); the plain mean for fewer than 4 values."""
    x = np.sort(np.asarray(x, dtype=float))
    k = int(0.25 * x.size)
    return float(x[k:x.size - k].mean()) if x.size else math.nan


@dataclass
class Group:
    key: tuple[str, ...]
    runs: list[Run]
    label: str = ""

    def stats(self, threshold: float | None, confidence: float, n_resamples: int, seed: int) -> dict:
        finals = np.array([r.final for r in self.runs])
        bests = np.array([r.best for r in self.runs])
        row = {
            "group": self.label,
            "overrides": " ".join(self.key),
            "runs": len(self.runs),
            "seeds": " ".join(str(r.seed) for r in self.runs),
            "final_mean": float(finals.mean()),
            "final_ci_low": bootstrap_ci(finals, confidence, n_resamples, seed)[0],
            "final_ci_high": bootstrap_ci(finals, confidence, n_resamples, seed)[1],
            "final_iqm": iqm(finals),
            "best_mean": float(bests.mean()),
            "best_ci_low": bootstrap_ci(bests, confidence, n_resamples, seed)[0],
            "best_ci_high": bootstrap_ci(bests, confidence, n_resamples, seed)[1],
            "wall_time_s": float(np.nanmean([r.wall_time_s for r in self.runs])) if any(
                math.isfinite(r.wall_time_s) for r in self.runs) else math.nan,
            "steps_per_second": float(np.nanmean([r.steps_per_second for r in self.runs])) if any(
                math.isfinite(r.steps_per_second) for r in self.runs) else math.nan,
        }
        if threshold is not None:
            hits = np.array([r.steps_to(threshold) for r in self.runs])
            reached = hits[np.isfinite(hits)]
            row["threshold"] = threshold
            row["reached"] = f"{reached.size}/{hits.size}"
            row["steps_to_threshold_mean"] = float(reached.mean()) if reached.size else math.nan
        return row

    def curve(self, confidence: float, n_resamples: int, seed: int):
        """(steps, mean, ci_low, ci_high) over the union of the runs' evaluation steps; each step
        averages the runs that evaluated there."""
        steps = np.unique(np.concatenate([r.steps for r in self.runs]))
        mean, lo, hi = [], [], []
        for s in steps:
            vals = [float(r.returns[r.steps == s][0]) for r in self.runs if np.any(r.steps == s)]
            mean.append(float(np.mean(vals)))
            ci = bootstrap_ci(vals, confidence, n_resamples, seed)
            lo.append(ci[0] if math.isfinite(ci[0]) else mean[-1])
            hi.append(ci[1] if math.isfinite(ci[1]) else mean[-1])
        return steps, np.array(mean), np.array(lo), np.array(hi)


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
    """Runs with the same overrides (except the seed) form one group, in order of first appearance.
    A group's label shows only the overrides that differ between groups."""
    groups: dict[tuple, Group] = {}
    for r in runs:
        groups.setdefault(r.group_key, Group(r.group_key, [])).runs.append(r)
    out = list(groups.values())
    common = common_overrides(out)
    for g in out:
        g.label = " ".join(_short(o) for o in g.key if o not in common) or "(all runs)"
    return out


def common_overrides(groups: list[Group]) -> list[str]:
    """The overrides that every group shares (not shown in the group labels)."""
    if not groups:
        return []
    shared = set.intersection(*(set(g.key) for g in groups))
    return [o for o in groups[0].key if o in shared]


# ------------------------------------------------------------------------------------------ output
def _fmt(v, digits: int = 1) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "-"
    if isinstance(v, float):
        return f"{v:.{digits}f}"
    return str(v)


def _with_ci(row: dict, name: str) -> str:
    lo, hi = row[f"{name}_ci_low"], row[f"{name}_ci_high"]
    mean = _fmt(row[f"{name}_mean"])
    return mean if not math.isfinite(lo) else f"{mean} [{_fmt(lo)}, {_fmt(hi)}]"


def table_rows(rows: list[dict], confidence: float) -> tuple[list[str], list[list[str]]]:
    pct = f"{confidence * 100:g}% CI"
    header = ["group", "runs", "seeds", f"final [{pct}]", "final IQM", f"best [{pct}]"]
    if rows and "threshold" in rows[0]:
        header.append(f"steps to {rows[0]['threshold']:g} (reached)")
    header += ["wall s", "steps/s"]
    body = []
    for r in rows:
        line = [r["group"], str(r["runs"]), r["seeds"], _with_ci(r, "final"), _fmt(r["final_iqm"]),
                _with_ci(r, "best")]
        if "threshold" in r:
            line.append(f"{_fmt(r['steps_to_threshold_mean'], 0)} ({r['reached']})")
        line += [_fmt(r["wall_time_s"]), _fmt(r["steps_per_second"], 0)]
        body.append(line)
    return header, body


def text_table(header: list[str], body: list[list[str]]) -> str:
    widths = [max(len(h), *(len(b[i]) for b in body)) for i, h in enumerate(header)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths)),
             "  ".join("-" * w for w in widths)]
    lines += ["  ".join(c.ljust(w) for c, w in zip(b, widths)) for b in body]
    return "\n".join(lines)


def markdown_table(header: list[str], body: list[list[str]]) -> str:
    def esc(c):
        return c.replace("|", "\\|")
    lines = ["| " + " | ".join(esc(h) for h in header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(esc(c) for c in b) + " |" for b in body]
    return "\n".join(lines)


def write_csv(path: Path, rows: list[dict]) -> None:
    with path.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)


def plot(groups: list[Group], path: Path, confidence: float, n_resamples: int, seed: int,
         threshold: float | None, title: str) -> int:
    """Draw one line per group with its shaded confidence band; return the number of group lines.
    The PNG's Description text chunk records them ("<n> groups: label; label; ...")."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 5.5))
    colors = plt.get_cmap("tab10" if len(groups) <= 10 else "tab20")
    drawn = []
    for i, g in enumerate(groups):
        steps, mean, lo, hi = g.curve(confidence, n_resamples, seed)
        c = colors(i % colors.N)
        label = g.label if len(g.label) <= 70 else g.label[:67] + "..."
        ax.plot(steps, mean, color=c, lw=1.8, marker="o" if steps.size < 3 else None, ms=3,
                label=f"{label} (n={len(g.runs)})")
        ax.fill_between(steps, lo, hi, color=c, alpha=0.2, lw=0)
        drawn.append(g.label)
    if threshold is not None:
        ax.axhline(threshold, color="grey", ls="--", lw=1, label=f"threshold {threshold:g}")
    ax.set_xlabel("environment steps")
    ax.set_ylabel("evaluation return (mean over episodes)")
    ax.set_title(f"{title}: mean over seeds, {confidence * 100:g}% bootstrap CI shaded")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7 if len(groups) > 6 else 9, loc="best")
    fig.tight_layout()
    fig.savefig(path, dpi=120, metadata={"Title": title, "Software": "sac-report",
                                         "Description": f"{len(drawn)} groups: " + "; ".join(drawn)})
    plt.close(fig)
    return len(drawn)


# ------------------------------------------------------------------------------------------ main
def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="sac-report", description=__doc__.split("\n\n")[0],
        epilog="Writes report.csv (one row per group), runs.csv (one row per run, skipped ones with "
               "the reason), report.md and report.png into --out.")
    ap.add_argument("paths", nargs="+", type=Path, help="sweep directories and/or run directories")
    ap.add_argument("--out", type=Path, default=None,
                    help="output directory (default: <the sweep dir>/report for one sweep directory, else ./report)")
    ap.add_argument("--threshold", type=float, default=None,
                    help="report the first evaluation step whose mean return reached this value")
    ap.add_argument("--include-incomplete", action="store_true",
                    help="also use runs without summary.json (still running or interrupted), with the evaluations so far")
    ap.add_argument("--confidence", type=float, default=0.95, help="bootstrap confidence level (default 0.95)")
    ap.add_argument("--resamples", type=int, default=10000, help="bootstrap resamples (default 10000)")
    ap.add_argument("--seed", type=int, default=0, help="seed of the bootstrap (default 0)")
    ap.add_argument("--sort", choices=["none", "final", "best"], default="none",
                    help="order of the groups: as found (default), or by mean final or best return, highest first")
    ap.add_argument("--no-plot", action="store_true", help="skip report.png (matplotlib is then not needed)")
    args = ap.parse_args(argv)

    def error(msg: str, code: int = 2) -> int:
        print(f"sac-report: error: {msg}", file=sys.stderr)
        return code

    missing = [str(p) for p in args.paths if not p.is_dir()]
    if missing:
        return error(f"not a directory: {', '.join(missing)}")
    if not 0.0 < args.confidence < 1.0:
        return error(f"--confidence={args.confidence} is outside (0, 1); use e.g. --confidence 0.95")
    if args.resamples < 1:
        return error(f"--resamples={args.resamples} must be positive; use e.g. --resamples 10000")
    if not args.no_plot:
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            return error("matplotlib is needed for the plot: pip install 'sac_runner[report]' (or pass --no-plot)")

    run_dirs = find_runs(args.paths)
    if not run_dirs:
        return error(f"no run directories in {', '.join(map(str, args.paths))} "
                     f"(a run directory holds config.yaml, .hydra/ or tensorboard/)", 1)
    runs = [load_run(d) for d in run_dirs]
    for r in runs:
        if r.skip_reason is None and not r.complete and not args.include_incomplete:
            r.skip_reason = (f"incomplete: {r.incomplete_reason}; {len(r.steps)} evaluation(s) so far, "
                             f"--include-incomplete counts them")
    used = [r for r in runs if r.skip_reason is None]
    skipped = [r for r in runs if r.skip_reason is not None]

    if args.out is not None:
        out = args.out
    elif len(args.paths) == 1 and args.paths[0].resolve() not in run_dirs:
        out = args.paths[0] / "report"
    else:
        out = Path("report")
    out.mkdir(parents=True, exist_ok=True)

    with (out / "runs.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["run_dir", "group", "seed", "status", "evaluations", "last_step", "final", "best",
                    "wall_time_s", "steps_per_second", "skip_reason"])
        for r in runs:
            status = "skipped" if r.skip_reason else ("complete" if r.complete else "incomplete")
            ok = r.skip_reason is None
            w.writerow([r.path, " ".join(r.group_key), r.seed, status, len(r.steps),
                        int(r.steps[-1]) if ok else "", r.final if ok else "", r.best if ok else "",
                        r.wall_time_s if ok else "", r.steps_per_second if ok else "", r.skip_reason or ""])

    skipped_lines = [f"  {r.path}: {r.skip_reason}" for r in skipped]
    if not used:
        print(f"sac-report: no usable run among {len(runs)}; skipped:", file=sys.stderr)
        print("\n".join(skipped_lines), file=sys.stderr)
        return 1

    groups = make_groups(used)
    rows = [g.stats(args.threshold, args.confidence, args.resamples, args.seed) for g in groups]
    if args.sort != "none":
        order = sorted(range(len(rows)), key=lambda i: -rows[i][f"{args.sort}_mean"])
        groups, rows = [groups[i] for i in order], [rows[i] for i in order]
    header, body = table_rows(rows, args.confidence)
    envs = sorted({r.env_id for r in used if r.env_id}) or ["runs"]
    title = ", ".join(envs)

    write_csv(out / "report.csv", rows)
    common = " ".join(common_overrides(groups)) or "none"
    md = [f"# {title}: {len(used)} run(s) in {len(groups)} group(s)", "",
          f"Runs are grouped by their overrides except the seed. Overrides common to all groups: `{common}`.", "",
          f"Final: the last evaluation's mean return; best: the best one; mean over the group's runs "
          f"with a {args.confidence * 100:g}% percentile bootstrap confidence interval of the mean "
          f"({args.resamples} resamples); IQM: interquartile mean of the final returns.", ""]
    if args.threshold is not None:
        md += [f"Steps to {args.threshold:g}: the first evaluation at or above it, averaged over "
               f"the runs that reached it (reached/runs in brackets).", ""]
    md += [markdown_table(header, body), ""]
    if skipped:
        md += [f"Skipped {len(skipped)} run(s):", ""] + [f"- `{r.path}`: {r.skip_reason}" for r in skipped] + [""]
    if not args.no_plot:
        plot(groups, out / "report.png", args.confidence, args.resamples, args.seed, args.threshold, title)
        md += ["![evaluation return against environment steps](report.png)", ""]
    (out / "report.md").write_text("\n".join(md))

    print(f"{title}: {len(used)} run(s) in {len(groups)} group(s); common overrides: {common}")
    print(text_table(header, body))
    if skipped:
        print(f"\nskipped {len(skipped)} run(s):")
        print("\n".join(skipped_lines))
    written = ["report.csv", "runs.csv", "report.md"] + ([] if args.no_plot else ["report.png"])
    print(f"\nwrote {', '.join(str(out / w) for w in written)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
