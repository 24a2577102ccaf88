"""The verdict statistics on hand-made runs: a clear win, a tie, a reversal, one seed."""

from __future__ import annotations

import math

import pytest

from poolwise.report.stats import compare_runs, holm, summary

scipy_stats = pytest.importorskip("scipy.stats")


def test_summary_uses_the_sample_std_and_the_t_interval():
    s = summary([1.0, 2.0, 3.0, 4.0])
    assert s.mean == 2.5 and s.std == pytest.approx(math.sqrt(5 / 3))  # ddof=1, not sqrt(5/4)
    low, high = scipy_stats.t.interval(0.95, 3, loc=2.5, scale=s.std / 2)
    assert s.ci95 == pytest.approx((high - low) / 2)
    assert "± 1.29 [95% CI ± 2.05]" in s.text()
    one = summary([7.0])
    assert one.std is None and one.text() == "7.00 (1 seed)"
    with pytest.raises(ValueError, match="at least one value"):
        summary([])


def test_a_clear_win_a_tie_and_a_reversal():
    win = compare_runs([80.1, 79.8, 80.4, 79.9, 80.2], [74.0, 74.9, 73.5, 74.3, 73.8])
    assert win.outcome == "A better" and win.p < 1e-4 and win.effect > 5
    tie = compare_runs([76.9, 75.1, 78.2, 76.0, 77.9], [76.5, 77.0, 75.8, 78.0, 76.4])
    assert tie.outcome == "inconclusive" and tie.p > 0.05
    reversal = compare_runs([70.0, 70.5, 69.8], [75.0, 75.2, 74.9])
    assert reversal.outcome == "B better" and reversal.diff < 0
    lower = compare_runs([0.01, 0.011, 0.012], [0.03, 0.031, 0.029], higher_is_better=False)
    assert lower.outcome == "A better"
    assert "inconclusive" in tie.text("last", "mean") and "Welch p" in tie.text()


def test_one_seed_is_inconclusive_and_zero_spread_is_decided():
    assert compare_runs([90.0], [10.0]).outcome == "inconclusive"
    assert compare_runs([1.0, 1.0], [0.0, 0.0]).outcome == "A better"
    assert compare_runs([1.0, 1.0], [1.0, 1.0]).outcome == "inconclusive"


def test_holm_steps_down():
    assert holm([0.01, 0.04, 0.03], alpha=0.05) == [True, False, False]  # 0.01 < 0.05/3; 0.03 > 0.05/2
    assert holm([0.001, 0.02, None], alpha=0.05) == [True, True, False]
    assert holm([]) == []
