"""Statistics for verdicts across seeds: labelled spreads and a test with an "inconclusive" outcome.

* :func:`summary`: mean, **sample** standard deviation (ddof = 1) and the half-width of the 95%
  Student-t interval of the mean.
* :func:`compare_runs`: Welch's t-test (unequal variances) of two sets of per-seed results, and a
  three-way outcome at level ``alpha``: ``"A better"``, ``"B better"`` or ``"inconclusive"``.
* :func:`holm`: Holm's step-down correction over the claims of one report.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Summary:
    """``mean``, ``std`` (sample, ddof = 1; None for one value), ``ci95`` (half-width of the
    95% t-interval of the mean; None for one value) and ``n``."""

    mean: float
    std: float | None
    ci95: float | None
    n: int

    def text(self, digits: int = 2) -> str:
        """``"74.08 ± 0.99 [95% CI ± 1.23]"`` (sample std), or the mean alone for one value."""
        if self.std is None:
            return f"{self.mean:.{digits}f} (1 seed)"
        return f"{self.mean:.{digits}f} ± {self.std:.{digits}f} [95% CI ± {self.ci95:.{digits}f}]"


def summary(values: Sequence[float]) -> Summary:
    """Mean, sample std and the 95% t-interval of ``values`` (at least one)."""
    xs = [float(v) for v in values]
    if not xs:
        raise ValueError("summary needs at least one value")
    n = len(xs)
    mean = sum(xs) / n
    if n == 1:
        return Summary(mean, None, None, 1)
    from scipy import stats

    std = math.sqrt(sum((x - mean) ** 2 for x in xs) / (n - 1))
    return Summary(mean, std, float(stats.t.ppf(0.975, n - 1)) * std / math.sqrt(n), n)


@dataclass(frozen=True)
class Comparison:
    """Welch's test of A against B: the difference of means (A - B), its p-value (two-sided;
    None when it cannot be computed), Cohen's d on the pooled sample std, and the outcome."""

    diff: float
    p: float | None
    effect: float | None
    outcome: str

    def text(self, a: str = "A", b: str = "B") -> str:
        p = "n/a" if self.p is None else f"{self.p:.2g}"
        d = "n/a" if self.effect is None else f"{self.effect:.2g}"
        said = {"A better": f"{a} better", "B better": f"{b} better"}.get(self.outcome, "inconclusive")
        return f"{said} (difference {self.diff:+.2f}, Welch p = {p}, d = {d})"


def compare_runs(a: Sequence[float], b: Sequence[float], alpha: float = 0.05,
                 higher_is_better: bool = True) -> Comparison:
    """Welch's t-test of per-seed results ``a`` against ``b``. The outcome is a win only when
    p < ``alpha``; with fewer than two values on a side, or no spread on either, it is
    ``"inconclusive"`` (nothing can be tested) unless every value of one side beats every value
    of the other with no spread at all."""
    xs, ys = [float(v) for v in a], [float(v) for v in b]
    if not xs or not ys:
        raise ValueError("compare_runs needs values on both sides")
    diff = sum(xs) / len(xs) - sum(ys) / len(ys)
    sign = 1 if higher_is_better else -1
    if len(xs) < 2 or len(ys) < 2:
        return Comparison(diff, None, None, "inconclusive")
    sa, sb = summary(xs).std, summary(ys).std
    if sa == 0 and sb == 0:
        outcome = "inconclusive" if diff == 0 else ("A better" if sign * diff > 0 else "B better")
        return Comparison(diff, None, None, outcome)
    from scipy import stats

    with warnings.catch_warnings():  # nearly equal values: scipy warns, the p-value stands
        warnings.simplefilter("ignore", RuntimeWarning)
        p = float(stats.ttest_ind(xs, ys, equal_var=False).pvalue)
    pooled = math.sqrt(((len(xs) - 1) * sa ** 2 + (len(ys) - 1) * sb ** 2) / (len(xs) + len(ys) - 2))
    effect = diff / pooled if pooled > 0 else None
    if p < alpha:
        outcome = "A better" if sign * diff > 0 else "B better"
    else:
        outcome = "inconclusive"
    return Comparison(diff, p, effect, outcome)


def holm(pvalues: Sequence[float | None], alpha: float = 0.05) -> list[bool]:
    """Holm's step-down procedure: which of ``pvalues`` are significant at family-wise level
    ``alpha`` (None counts as not significant)."""
    order = sorted((p, i) for i, p in enumerate(pvalues) if p is not None)
    keep = [False] * len(pvalues)
    m = len(order)
    for rank, (p, i) in enumerate(order):
        if p > alpha / (m - rank):
            break
        keep[i] = True
    return keep


def describe(groups: object) -> Any:
    """``mean``, ``std`` (sample, ddof = 1; NaN for one value), ``ci95`` (half-width of the
    95% t-interval; NaN for one value) and ``n`` of each group of a pandas ``SeriesGroupBy``."""
    import pandas as pd
    from scipy import stats

    n = groups.size()  # type: ignore[attr-defined]
    std = groups.std(ddof=1)  # type: ignore[attr-defined]
    tq = pd.Series(stats.t.ppf(0.975, (n - 1).clip(lower=1)), index=n.index)
    ci = (tq * std / n.pow(0.5)).where(n > 1)
    return pd.DataFrame({"mean": groups.mean(), "std": std, "ci95": ci, "n": n})  # type: ignore[attr-defined]


def cell(mean: float, std: float | None, ci95: float | None, n: int, digits: str = ".4g",
         spread_digits: str = ".2g") -> str:
    """A table cell: ``mean ± std [± ci95]`` (sample std, 95% t-interval), or ``mean (1 seed)``."""
    if n < 2 or std is None or math.isnan(std):
        return f"{mean:{digits}} (1 seed)"
    return f"{mean:{digits}} ± {std:{spread_digits}} [±{ci95:{spread_digits}}]"
