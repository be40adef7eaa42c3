"""Forward checks: the value model as it is used, judged at past dates on days it never saw.

A forecast is judged forward. At a cut C in the shop's own log, the model learns as it does in a
run (customers as of C - H, what they did in the H days to C) and forecasts the H days after C,
which it never saw; what the customers then did is in the log. Repeated at every cut the log
allows (`cut_dates`), the checks show how far the totals run from the actual, and their spread
gives every forecast total an interval (`ratio_interval`) whose coverage is measured on the same
checks, each left out in turn (`coverage`).
"""

from __future__ import annotations

import datetime

import numpy as np
import pandas as pd
from scipy.stats import t as student_t

LEVEL = 0.8
"""The share of forward checks a total's interval is meant to hold the actual in."""
FEWEST_CUTS = 3
"""Forward checks an interval needs: fewer give no spread worth the name."""
SEASON_CHECKS = 2
"""Forward checks reaching a year before their cut that decide whether the season corrects the
forecast: a point correction needs less than a spread, but more than one check's word."""


def cut_dates(
    first_at: datetime.datetime, as_of: datetime.datetime, horizon_days: int, *, step_days: int, most: int
) -> list[datetime.datetime]:
    """Every cut C of a forward check the log allows, newest first: T - H, T - H - step, ...

    At a cut the model learns on the customers as of C - H, who need H days of history before
    them (`custseg.backtest.history_reason`), and is scored on the H days after C, which must end
    by T: so H <= T - C and C >= the first order + 2H. At most ``most`` cuts.
    """
    horizon, step = datetime.timedelta(days=horizon_days), datetime.timedelta(days=step_days)
    cuts = []
    cut = as_of - horizon
    while len(cuts) < most and cut - first_at >= 2 * horizon:
        cuts.append(cut)
        cut -= step
    return cuts


def ratios(actual: np.ndarray, predicted: np.ndarray) -> np.ndarray:
    """Actual over predicted totals, each plus one unit of money so that a total of 0 stays finite."""
    return (np.asarray(actual, dtype=float) + 1) / (np.asarray(predicted, dtype=float) + 1)


def ratio_interval(past: np.ndarray, level: float = LEVEL) -> tuple[float, float] | None:
    """Return what a forecast total is multiplied by to hold the actual at ``level``, from past checks' ratios.

    A prediction interval of the log of actual over predicted (Student's t on the checks' mean
    and spread): where the next check's actual is expected to fall, relative to its forecast.
    None with fewer than `FEWEST_CUTS` checks.

    Parameters
    ----------
    past : ndarray of shape (n_checks,)
        Actual over predicted totals at past cuts (`ratios`).
    level : float
        The share the interval is meant to hold.

    Returns
    -------
    (low, high) : tuple of float, or None
        Multipliers of the forecast total.
    """
    logs = np.log(np.asarray(past, dtype=float))
    n = len(logs)
    if n < FEWEST_CUTS:
        return None
    half = student_t.ppf((1 + level) / 2, n - 1) * logs.std(ddof=1) * np.sqrt(1 + 1 / n)
    return float(np.exp(logs.mean() - half)), float(np.exp(logs.mean() + half))


def coverage(past: np.ndarray, level: float = LEVEL) -> tuple[int, int]:
    """How often the interval held the actual: each check left out, the interval from the others.

    Returns
    -------
    (held, tried) : tuple of int
        Checks whose ratio fell inside the interval of the others, and the checks tried (0 with
        too few to leave one out).
    """
    past = np.asarray(past, dtype=float)
    held = tried = 0
    for left_out in range(len(past)):
        interval = ratio_interval(np.delete(past, left_out), level)
        if interval is not None:
            tried += 1
            held += int(interval[0] <= past[left_out] <= interval[1])
    return held, tried


def season_factors(predicted: pd.DataFrame, actual: pd.DataFrame) -> dict[str, float]:
    """Actual over predicted totals of customers a model never saw, per target (`custseg.value.TARGETS`).

    Scored on the customers as of a year before the model's forecast, the factors say how the
    season ahead differs from the one the model learned on: a model that learned on the run-up to a
    peak and forecasts the quiet quarter after it overstates it, and a year earlier did the same.

    Parameters
    ----------
    predicted : DataFrame of shape (n_customers, 3)
        p_order_again, expected_orders and expected_revenue.
    actual : DataFrame of shape (n_customers, >= 2)
        next_orders and next_revenue (negative counts as 0), row for row.
    """
    returned = (actual.next_orders.to_numpy() > 0).sum()
    return {
        "p_order_again": float((returned + 1) / (predicted.p_order_again.sum() + 1)),
        "expected_orders": float((actual.next_orders.sum() + 1) / (predicted.expected_orders.sum() + 1)),
        "expected_revenue": float(ratios(actual.next_revenue.clip(lower=0).sum(), predicted.expected_revenue.sum())),
    }
