"""Verdicts from tests on hand-made runs: a clear win, a tie, a reversal, several comparisons
at once, non-inferiority, Holm's correction and the paired bootstrap over test items."""

import numpy as np
import pytest
from scipy import stats

from poolwise.report.verdicts import (
    Check,
    all_of,
    beats_each,
    better,
    holm,
    item_bootstrap_p,
    not_worse,
    verdict,
)

WIN = {"a": [90.0, 91.0, 90.5], "b": [80.0, 81.0, 80.5]}
TIE = {"a": [80.0, 90.0, 85.0], "b": [82.0, 86.0, 84.0]}


def test_a_clear_win_holds_and_its_reverse_fails():
    c = better(WIN, "a", "b")
    ref = stats.ttest_ind(WIN["a"], WIN["b"], equal_var=False).pvalue  # scipy's Welch, directly
    assert c.outcome == "holds" and c.p == pytest.approx(ref)
    assert better(WIN, "b", "a").outcome == "fails"
    assert better(WIN, "a", "b", higher=False).outcome == "fails"  # an error: lower is better


def test_a_tie_is_inconclusive_and_one_seed_is_untested():
    assert better(TIE, "a", "b").outcome == "inconclusive"
    one = better({"a": [90.0], "b": [80.0]}, "a", "b")
    assert one.outcome == "inconclusive" and one.p is None and "untested" in one.detail


def test_beats_each_needs_every_comparison_and_fails_on_any_reversal():
    values = {"a": [90.0, 91.0, 90.5], "b": [80.0, 81.0, 80.5], "c": [89.0, 91.5, 90.0],
              "d": [95.0, 96.0, 95.5]}
    assert beats_each(values, "a", ["b"]).outcome == "holds"
    mixed = beats_each(values, "a", ["b", "c"])  # c ties a
    assert mixed.outcome == "inconclusive" and mixed.p == pytest.approx(better(values, "a", "c").p)
    rev = beats_each(values, "a", ["b", "c", "d"])
    assert rev.outcome == "fails" and rev.p == pytest.approx(better(values, "d", "a").p)


def test_all_of_takes_the_largest_p_when_everything_holds():
    a, b = Check("holds", 0.01, "x"), Check("holds", 0.03, "y")
    assert all_of([a, b]) == Check("holds", 0.03, "x; y")
    with pytest.raises(ValueError, match="at least one"):
        all_of([])


def test_not_worse_against_a_margin():
    close = {"a": [89.5, 90.0, 89.8, 90.1], "b": [90.0, 90.2, 89.9, 90.1]}
    assert not_worse(close, "a", "b", 1.0).outcome == "holds"
    far = {"a": [85.0, 85.5, 84.8, 85.1], "b": [90.0, 90.2, 89.9, 90.1]}
    assert not_worse(far, "a", "b", 1.0).outcome == "fails"
    assert not_worse(TIE, "a", "b", 1.0).outcome == "inconclusive"
    # lower is better: a's error 0.71 against b's 0.70 with a margin of 0.05
    err = {"a": [0.71, 0.712, 0.708], "b": [0.70, 0.701, 0.699]}
    assert not_worse(err, "a", "b", 0.05, higher=False).outcome == "holds"


def test_holm_demotes_what_does_not_survive_correction():
    checks = [Check("holds", 0.001, "x"), Check("holds", 0.02, "y"), Check("fails", 0.04, "z"),
              Check("inconclusive", 0.5, "w")]
    out = holm(checks)
    # thresholds 0.05/4, 0.05/3, 0.05/2: only the first survives
    assert [c.outcome for c in out] == ["holds", "inconclusive", "inconclusive", "inconclusive"]
    assert "fails at 0.05 alone, not after Holm" in out[2].detail
    assert holm([Check("holds", None, "no spread")])[0].outcome == "holds"


def test_verdict_over_settings():
    h, f, i = Check("holds", 0.01, ""), Check("fails", 0.01, ""), Check("inconclusive", 0.4, "")
    assert verdict([h, h]) == "agrees" and verdict([f]) == "disagrees" and verdict([i, i]) == "inconclusive"
    assert verdict([h, f, i]) == "mixed (1 agree, 1 disagree, 1 inconclusive)"
    assert verdict([h, i]) == "mixed (1 agree, 1 inconclusive)" and verdict([]) == "not run"


def test_item_bootstrap_against_a_paired_t_over_items():
    """Over many items the bootstrap's p matches the paired t-test's (a reference by another
    method); identical hits give p = 1; mismatched item counts are refused."""
    rng = np.random.default_rng(1)
    a = (rng.random((3, 2000)) < 0.80).astype(float)
    b = (rng.random((3, 2000)) < 0.78).astype(float)
    p = item_bootstrap_p(a, b, reps=4000)
    ref = stats.ttest_1samp(a.mean(0) - b.mean(0), 0.0).pvalue
    assert abs(p - ref) < 0.03
    assert item_bootstrap_p(a, a) == 1.0
    with pytest.raises(ValueError, match="same test items"):
        item_bootstrap_p(a, b[:, :10])
