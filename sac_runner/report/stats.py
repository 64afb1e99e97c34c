"""sac-report's statistics: percentile bootstrap confidence intervals, the interquartile mean, and each
group's row of the report table and mean evaluation curve."""

from __future__ import annotations

import math

import numpy as np

from sac_runner.objectives import iqm
from sac_runner.report.groups import Group, show


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


def _nanmean_or_nan(values: list[float]) -> float:
    return float(np.nanmean(values)) if any(math.isfinite(v) for v in values) else math.nan


def group_stats(group: Group, threshold: float | None, confidence: float, n_resamples: int, seed: int) -> dict:
    """The group's row of report.csv: final and best return (mean, bootstrap CI; IQM of the final one),
    mean wall time and speed, and with a threshold how many runs reached it and after how many steps."""
    runs = group.runs
    finals = np.array([r.final for r in runs])
    bests = np.array([r.best for r in runs])
    final_ci = bootstrap_ci(finals, confidence, n_resamples, seed)
    best_ci = bootstrap_ci(bests, confidence, n_resamples, seed)
    row = {
        "group": group.label,
        "env": group.env_id or "",
        "settings": " ".join(f"{k}={show(v, short=False)}" for k, v in group.settings.items()),
        "runs": len(runs),
        "seeds": " ".join(str(r.seed) for r in runs),
        "final_mean": float(finals.mean()),
        "final_ci_low": final_ci[0],
        "final_ci_high": final_ci[1],
        "final_iqm": iqm(finals),
        "best_mean": float(bests.mean()),
        "best_ci_low": best_ci[0],
        "best_ci_high": best_ci[1],
        "wall_time_s": _nanmean_or_nan([r.wall_time_s for r in runs]),
        "steps_per_second": _nanmean_or_nan([r.steps_per_second for r in runs]),
    }
    if threshold is not None:
        hits = np.array([r.steps_to(threshold) for r in runs])
        reached = hits[np.isfinite(hits)]
        row["threshold"] = threshold
        row["reached"] = f"{reached.size}/{hits.size}"
        row["steps_to_threshold_mean"] = float(reached.mean()) if reached.size else math.nan
    return row


def group_curve(group: Group, confidence: float, n_resamples: int, seed: int):
    """(steps, mean, ci_low, ci_high) over the union of the group's evaluation steps; each step averages
    the runs that evaluated there (a step with one run gets its mean as both bounds)."""
    steps = np.unique(np.concatenate([r.steps for r in group.runs]))
    mean, lo, hi = [], [], []
    for s in steps:
        vals = [float(r.returns[r.steps == s][0]) for r in group.runs if np.any(r.steps == s)]
        mean.append(float(np.mean(vals)))
        ci = bootstrap_ci(vals, confidence, n_resamples, seed)
        lo.append(ci[0] if math.isfinite(ci[0]) else mean[-1])
        hi.append(ci[1] if math.isfinite(ci[1]) else mean[-1])
    return steps, np.array(mean), np.array(lo), np.array(hi)


def sort_groups(groups: list[Group], rows: list[dict], by: str) -> tuple[list[Group], list[dict]]:
    """Groups and their rows ordered by the mean `by` return ('final' or 'best'), highest first, stable;
    returns of different environments are not comparable, so each environment's groups are sorted
    among themselves and the environments keep their order."""
    first = {env: i for i, env in reversed(list(enumerate(g.env_id for g in groups)))}
    order = sorted(range(len(rows)), key=lambda i: (first[groups[i].env_id], -rows[i][f"{by}_mean"]))
    return [groups[i] for i in order], [rows[i] for i in order]
