"""Verdicts on claims from tests, never from a gap against a spread.

A claim about one setting ("AdaPool beats MaxPool at SNR 0.03") becomes a :class:`Check` with
three outcomes: ``holds`` (the data show it at level ``alpha``), ``fails`` (the data show the
reverse) and ``inconclusive`` (neither). Each check carries the p-value that decided it:

* two poolers: Welch's t-test over seeds (:func:`~poolwise.report.stats.compare_runs`); where
  per-item test results exist for both (one 0/1 per test item and seed), also a paired bootstrap
  over test items of the seed-averaged difference, and the larger of the two p-values decides,
  so a win must stand against both the training seeds and the finite test set;
* "A beats each of B, C, ...": an intersection-union test, every comparison must hold and the
  largest p decides; any reversal makes the claim fail (smallest reversed p decides);
* "A is not worse than B by more than a margin": two one-sided Welch tests against the margin.

:func:`holm` then corrects the checks of one report together (Holm's step-down over their
deciding p-values): a check whose p does not survive becomes ``inconclusive``. :func:`verdict`
turns the checks of one claim across settings into ``agrees``, ``disagrees``, ``inconclusive`` or
``mixed (...)``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

import numpy as np

from .stats import compare_runs
from .stats import holm as holm_keep

ALPHA = 0.05
BOOTSTRAP_REPS = 4000


@dataclass(frozen=True)
class Check:
    """One claim on one setting: ``outcome`` (holds / fails / inconclusive), the deciding
    two-sided ``p`` (None where nothing could be tested) and a one-line ``detail``."""

    outcome: str
    p: float | None
    detail: str

    def text(self) -> str:
        return f"**{self.outcome}** ({self.detail})"


def _p(p: float | None) -> str:
    return "n/a" if p is None else f"{p:.2g}"


def item_bootstrap_p(a: np.ndarray, b: np.ndarray, reps: int = BOOTSTRAP_REPS, seed: int = 0) -> float:
    """Two-sided p-value of a paired bootstrap over test items: ``a`` and ``b`` are
    ``(seeds, items)`` 0/1 (or score) arrays on the same items; the statistic is the difference
    of their seed-averaged means, resampled over items (``reps`` draws, fixed ``seed``)."""
    a, b = np.atleast_2d(np.asarray(a, float)), np.atleast_2d(np.asarray(b, float))
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"paired items need the same test items: {a.shape[1]} vs {b.shape[1]}")
    d = a.mean(axis=0) - b.mean(axis=0)
    if not d.any():
        return 1.0
    rng = np.random.default_rng(seed)
    means = np.empty(reps)
    for lo in range(0, reps, 500):  # chunks keep the index array small on large test sets
        idx = rng.integers(0, len(d), size=(min(500, reps - lo), len(d)))
        means[lo:lo + len(idx)] = d[idx].mean(axis=1)
    tail = min(float((means <= 0).mean()), float((means >= 0).mean()))
    return min(1.0, max(2 * tail, 1.0 / reps))


def better(values: Mapping[str, Sequence[float]], a: str, b: str, *, higher: bool = True,
           items: Mapping[str, np.ndarray] | None = None, alpha: float = ALPHA, unit: str = "") -> Check:
    """``a`` beats ``b`` (per-seed ``values[name]``; ``higher``: larger is better; ``items``:
    optional ``(seeds, items)`` per-item results for the paired bootstrap)."""
    c = compare_runs(values[a], values[b], alpha=alpha, higher_is_better=higher)
    p, how = c.p, f"Welch p = {_p(c.p)}"
    if items is not None and a in items and b in items and c.p is not None:
        pb = item_bootstrap_p(items[a], items[b])
        p, how = max(c.p, pb), f"Welch p = {_p(c.p)}, item bootstrap p = {_p(pb)}"
    if p is None:
        outcome = {"A better": "holds", "B better": "fails"}.get(c.outcome, "inconclusive")
    elif p < alpha:
        outcome = "holds" if (c.diff > 0) == higher else "fails"
    else:
        outcome = "inconclusive"
    n = min(len(values[a]), len(values[b]))
    if n < 2:
        how = f"{n} seed: untested"
    effect = "" if c.effect is None else f", d = {c.effect:.2g}"
    return Check(outcome, p, f"{a} - {b} = {c.diff:+.3g}{unit}, {how}{effect}")


def beats_each(values: Mapping[str, Sequence[float]], a: str, others: Sequence[str], *,
               higher: bool = True, items: Mapping[str, np.ndarray] | None = None,
               alpha: float = ALPHA) -> Check:
    """``a`` beats every one of ``others`` (an intersection-union test)."""
    checks = [better(values, a, o, higher=higher, items=items, alpha=alpha) for o in others]
    return all_of(checks)


def below_each(values: Mapping[str, Sequence[float]], a: str, others: Sequence[str], *,
               higher: bool = True, items: Mapping[str, np.ndarray] | None = None,
               alpha: float = ALPHA) -> Check:
    """``a`` is worse than every one of ``others``."""
    return all_of([better(values, o, a, higher=higher, items=items, alpha=alpha) for o in others])


def all_of(checks: Sequence[Check]) -> Check:
    """Every check holds (largest p decides); any failure fails the whole (smallest failing p)."""
    if not checks:
        raise ValueError("all_of needs at least one check")
    detail = "; ".join(c.detail for c in checks)
    failed = [c for c in checks if c.outcome == "fails"]
    if failed:
        ps = [c.p for c in failed if c.p is not None]
        return Check("fails", min(ps) if ps else None, detail)
    ps = [c.p for c in checks]
    p = None if any(q is None for q in ps) else max(ps)  # type: ignore[type-var]
    if all(c.outcome == "holds" for c in checks):
        return Check("holds", p, detail)
    return Check("inconclusive", p, detail)


def not_worse(values: Mapping[str, Sequence[float]], a: str, b: str, margin: float, *,
              higher: bool = True, alpha: float = ALPHA) -> Check:
    """``a`` is no worse than ``b`` by more than ``margin`` (> 0, in the values' units): holds
    when the one-sided Welch test rejects "worse by the margin or more", fails when it shows
    "worse by more than the margin", inconclusive otherwise."""
    from scipy import stats

    xs, ys = [float(v) for v in values[a]], [float(v) for v in values[b]]
    sign = 1.0 if higher else -1.0
    diff = sign * (np.mean(xs) - np.mean(ys))
    head = f"{a} - {b} = {sign * diff:+.3g} against a margin of {margin:.3g}"
    if len(xs) < 2 or len(ys) < 2:
        return Check("inconclusive", None, head + ", one seed: untested")
    va, vb = np.var(xs, ddof=1) / len(xs), np.var(ys, ddof=1) / len(ys)
    se = math.sqrt(va + vb)
    if se == 0:
        outcome = "holds" if diff > -margin else "fails"
        return Check(outcome, None, head + ", no spread")
    dof = (va + vb) ** 2 / (va ** 2 / (len(xs) - 1) + vb ** 2 / (len(ys) - 1)) if va and vb else \
        (len(xs) - 1 if va else len(ys) - 1)
    t = (diff + margin) / se
    p_ok, p_bad = float(stats.t.sf(t, dof)), float(stats.t.cdf(t, dof))
    # "worse by more than the margin" needs the difference below -margin
    if p_ok < alpha:
        return Check("holds", p_ok, head + f", one-sided Welch p = {_p(p_ok)}")
    if p_bad < alpha:
        return Check("fails", p_bad, head + f", one-sided Welch p = {_p(p_bad)} for worse")
    return Check("inconclusive", min(p_ok, p_bad), head + f", one-sided Welch p = {_p(p_ok)}")


def holm(checks: Sequence[Check], alpha: float = ALPHA) -> list[Check]:
    """The checks of one report after Holm's step-down correction over their deciding
    p-values: a holds/fails whose p does not survive becomes inconclusive. Checks decided
    without a p (no spread at all) keep their outcome."""
    keep = holm_keep([c.p for c in checks], alpha)
    out = []
    for c, kept in zip(checks, keep):
        if c.outcome != "inconclusive" and c.p is not None and not kept:
            c = replace(c, outcome="inconclusive",
                        detail=c.detail + f"; {c.outcome} at {alpha:g} alone, not after Holm")
        out.append(c)
    return out


def verdict(checks: Sequence[Check]) -> str:
    """One claim across its settings: ``agrees`` (it holds on every one), ``disagrees`` (it
    fails on every one), ``inconclusive`` (neither on any), ``mixed (h agree, f disagree,
    i inconclusive)`` otherwise, ``not run`` without a check."""
    if not checks:
        return "not run"
    n = {o: sum(c.outcome == o for c in checks) for o in ("holds", "fails", "inconclusive")}
    if n["holds"] == len(checks):
        return "agrees"
    if n["fails"] == len(checks):
        return "disagrees"
    if n["inconclusive"] == len(checks):
        return "inconclusive"
    parts = [f"{n['holds']} agree", f"{n['fails']} disagree", f"{n['inconclusive']} inconclusive"]
    return "mixed (" + ", ".join(p for p in parts if not p.startswith("0 ")) + ")"


RULE = ("Verdicts come from tests, not from gaps: Welch's t-test across seeds (and, where per-item "
        "test results were stored, a paired bootstrap over test items, the larger p deciding), "
        "Holm-corrected over the claims of this report at family-wise level 0.05; a claim *agrees* "
        "where it holds on every setting, *disagrees* where the reverse holds on every setting, "
        "*inconclusive* where neither is shown, *mixed* otherwise.")
SPREAD = "± sample std over seeds (ddof = 1); [95% t-interval of the mean]"
