"""sac-report's output: the table as terminal text and as Markdown, report.csv and runs.csv, report.md, the
terminal summary, and report.png (matplotlib, imported only to draw it)."""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path

from sac_runner.report.data import Run
from sac_runner.report.groups import Group, env_ids
from sac_runner.report.stats import group_curve


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
    """The report table's header and formatted cells, one line per group row (stats.group_stats)."""
    pct = f"{confidence * 100:g}% CI"
    header = ["group", "runs", "seeds", f"final [{pct}]", "final IQM", f"best [{pct}]"]
    if rows and "threshold" in rows[0]:
        header.append(f"steps to {rows[0]['threshold']:g} (reached)")
    header += ["wall s", "steps/s"]
    body = []
    for r in rows:
        line = [r["group"], str(r["runs"]), r["seeds"], _with_ci(r, "final"), _fmt(r["final_iqm"]), _with_ci(r, "best")]
        if "threshold" in r:
            line.append(f"{_fmt(r['steps_to_threshold_mean'], 0)} ({r['reached']})")
        line += [_fmt(r["wall_time_s"]), _fmt(r["steps_per_second"], 0)]
        body.append(line)
    return header, body


def text_table(header: list[str], body: list[list[str]]) -> str:
    """The table as left-aligned columns for the terminal."""
    widths = [max(len(h), *(len(b[i]) for b in body)) for i, h in enumerate(header)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths)), "  ".join("-" * w for w in widths)]
    lines += ["  ".join(c.ljust(w) for c, w in zip(b, widths)) for b in body]
    return "\n".join(lines)


def markdown_table(header: list[str], body: list[list[str]]) -> str:
    """The table in Markdown, with '|' in cells escaped."""

    def esc(c):
        return c.replace("|", "\\|")

    lines = ["| " + " | ".join(esc(h) for h in header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(esc(c) for c in b) + " |" for b in body]
    return "\n".join(lines)


def write_csv(path: Path, rows: list[dict]) -> None:
    """Write the group rows (report.csv), columns named by the first row's keys."""
    with path.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)


def write_runs_csv(path: Path, runs: list[Run]) -> None:
    """Write one row per run (runs.csv): its group, seed, status and results, or why it was skipped."""
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(
            [
                "run_dir",
                "group",
                "seed",
                "status",
                "evaluations",
                "last_step",
                "final",
                "best",
                "wall_time_s",
                "steps_per_second",
                "skip_reason",
            ]
        )
        for r in runs:
            status = "skipped" if r.skip_reason else ("complete" if r.complete else "incomplete")
            ok = r.skip_reason is None
            w.writerow(
                [
                    r.path,
                    r.group_label or " ".join(r.own_overrides),
                    r.seed,
                    status,
                    len(r.steps),
                    int(r.steps[-1]) if ok else "",
                    r.final if ok else "",
                    r.best if ok else "",
                    r.wall_time_s if ok else "",
                    r.steps_per_second if ok else "",
                    r.skip_reason or "",
                ]
            )


def skipped_lines(skipped: list[Run]) -> list[str]:
    """One indented terminal line per skipped run: its directory and the reason."""
    return [f"  {r.path}: {r.skip_reason}" for r in skipped]


def count_runs(runs: list[Run]) -> str:
    """'3 run(s)', or '1 run(s) and 2 job(s) not started' when a stopped sweep never started some."""
    unstarted = sum(r.skip_reason is not None and r.skip_reason.startswith("not started") for r in runs)
    started = len(runs) - unstarted
    return f"{started} run(s)" + (f" and {unstarted} job(s) not started" if unstarted else "")


@dataclass
class Report:
    """What the Markdown file and the terminal summary both show: the runs used, their groups, the table
    (header and body rows), the overrides common to every group, and the runs skipped."""

    title: str
    used: list[Run]
    groups: list[Group]
    common: str
    header: list[str]
    body: list[list[str]]
    skipped: list[Run]
    trials: tuple[list[str], list[list[str]]] | None = None  # data.trial_table: the trials' searched values

    @property
    def headline(self) -> str:
        return f"{self.title}: {len(self.used)} run(s) in {len(self.groups)} group(s)"


def write_markdown(
    path: Path, r: Report, confidence: float, resamples: int, threshold: float | None, plot_file: str | None
) -> None:
    """Write report.md: what the columns mean, the table, the skipped runs, and the plot when there is one."""
    md = [
        f"# {r.headline}",
        "",
        (
            "Runs are grouped by the config values they ran with (their config.yaml), except the seed and the "
            f"keys that never split groups (sac_runner/keys.py). Overrides common to all runs: `{r.common}`."
        ),
        "",
        (
            f"Final: the last evaluation's mean return; best: the best one; mean over the group's runs "
            f"with a {confidence * 100:g}% percentile bootstrap confidence interval of the mean "
            f"({resamples} resamples); IQM: interquartile mean of the final returns."
        ),
        "",
    ]
    if threshold is not None:
        md += [
            (
                f"Steps to {threshold:g}: the first evaluation at or above it, averaged over "
                f"the runs that reached it (reached/runs in brackets)."
            ),
            "",
        ]
    md += [markdown_table(r.header, r.body), ""]
    if r.trials is not None:
        md += ["Trials of the Optuna search and the values they ran with:", "", markdown_table(*r.trials), ""]
    if r.skipped:
        md += [f"Skipped {len(r.skipped)} run(s):", ""] + [f"- `{s.path}`: {s.skip_reason}" for s in r.skipped] + [""]
    if plot_file is not None:
        md += [f"![evaluation return against environment steps]({plot_file})", ""]
    path.write_text("\n".join(md))


def summary_text(r: Report, written: list[Path]) -> str:
    """What sac-report prints: the headline, the table, the skipped runs and the files written."""
    lines = [
        f"{r.headline}; common overrides: {r.common}",
        text_table(r.header, r.body),
    ]
    if r.trials is not None:
        lines += ["\ntrial values:", text_table(*r.trials)]
    if r.skipped:
        lines += [f"\nskipped {len(r.skipped)} run(s):", "\n".join(skipped_lines(r.skipped))]
    lines.append(f"\nwrote {', '.join(str(w) for w in written)}")
    return "\n".join(lines)


def plot(
    groups: list[Group], path: Path, confidence: float, n_resamples: int, seed: int, threshold: float | None, title: str
) -> int:
    """Draw one line per group with its shaded confidence band, in one panel per environment (a sweep over
    env=... gets a grid of panels); return the number of group lines. The PNG's Description text chunk
    records them ("<n> groups: label; label; ..."), its Comment chunk the panels ("panels: env; env")."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    envs = env_ids(groups)
    n = len(envs)
    cols = min(n, 3)
    rows = math.ceil(n / cols)
    size = (9, 5.5) if n == 1 else (5.2 * cols, 4.2 * rows + 0.6)
    fig, axes = plt.subplots(rows, cols, figsize=size, squeeze=False)
    colors = plt.get_cmap("tab10" if len(groups) <= 10 else "tab20")
    band = f"mean over seeds, {confidence * 100:g}% bootstrap CI shaded"
    drawn = []
    for ax, env in zip(axes.flat, envs):
        panel = [g for g in groups if g.env_id == env]
        for i, g in enumerate(panel):
            steps, mean, lo, hi = group_curve(g, confidence, n_resamples, seed)
            c = colors(i % colors.N)
            text = g.label if n == 1 else (g.detail or "all runs")
            text = text if len(text) <= 70 else text[:67] + "..."
            marker = "o" if steps.size < 3 else None
            ax.plot(steps, mean, color=c, lw=1.8, marker=marker, ms=3, label=f"{text} (n={len(g.runs)})")
            ax.fill_between(steps, lo, hi, color=c, alpha=0.2, lw=0)
            drawn.append(g.label)
        if threshold is not None:
            ax.axhline(threshold, color="grey", ls="--", lw=1, label=f"threshold {threshold:g}")
        ax.set_xlabel("environment steps")
        ax.set_ylabel("evaluation return (mean over episodes)")
        ax.set_title(f"{title}: {band}" if n == 1 else str(env or "unknown env"))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7 if len(panel) > 6 or n > 1 else 9, loc="best")
    for ax in axes.flat[n:]:
        ax.set_visible(False)
    if n > 1:
        fig.suptitle(band)
    fig.tight_layout()
    fig.savefig(
        path,
        dpi=120 if n == 1 else 100,
        metadata={
            "Title": title,
            "Software": "sac-report",
            "Description": f"{len(drawn)} groups: " + "; ".join(drawn),
            "Comment": "panels: " + "; ".join(str(e) for e in envs),
        },
    )
    plt.close(fig)
    return len(drawn)
