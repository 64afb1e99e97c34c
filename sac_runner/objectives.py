"""The number a run returns to a sweeper, from its evaluation history, and how a trial's seeds combine."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from sac_runner.rundir import read_evals

OBJECTIVES = ("final", "auc", "best")
AGGREGATES = ("mean", "iqm")


def objective(evals: list, metric: str = "final", last: int = 3) -> float:
    """The value a sweep maximises, from a run's evaluation history (in either form rundir.read_evals reads:
    summary.json's labelled records or [env_steps, mean, ...] rows).

    final: the mean of the last `last` evaluation means (less noisy than one evaluation, and not
           biased upwards like the best one);
    auc:   the area under the evaluation curve (trapezoids over env steps) divided by its span, i.e.
           the step-weighted average return over training, which also rewards learning fast;
    best:  the best evaluation mean.
    NaN when there is no evaluation or any evaluation mean is not finite (a diverged run).
    """
    history = read_evals(evals)
    means = [e.mean for e in history]
    if not means or not all(math.isfinite(m) for m in means):
        return float("nan")
    if metric == "final":
        tail = means[-max(1, int(last)) :]
        return sum(tail) / len(tail)
    if metric == "best":
        return max(means)
    if metric == "auc":
        steps = [float(e.env_steps) for e in history]
        if len(means) == 1 or steps[-1] <= steps[0]:
            return sum(means) / len(means)
        area = sum((steps[i + 1] - steps[i]) * (means[i + 1] + means[i]) / 2 for i in range(len(means) - 1))
        return area / (steps[-1] - steps[0])
    raise ValueError(f"unknown objective metric {metric!r}; use one of {', '.join(OBJECTIVES)}")


def iqm(x) -> float:
    """Interquartile mean: the mean of the middle 50% (25% trimmed from each end, as
    scipy.stats.trim_mean(x, 0.25)); the plain mean for fewer than 4 values."""
    x = np.sort(np.asarray(x, dtype=float))
    k = int(0.25 * x.size)
    return float(x[k : x.size - k].mean()) if x.size else math.nan


def aggregate(values: Sequence[float], how: str) -> float:
    """A trial's objective from its seeds' objectives: mean, or IQM (25% trimmed from each end)."""
    if not values or not all(math.isfinite(v) for v in values):
        return float("nan")
    if how == "iqm":
        return iqm(values)
    return sum(values) / len(values)
