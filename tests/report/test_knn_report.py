"""The kNN report's claim check on hand-made frames, including a sweep cut short."""

import pandas as pd

from poolwise.report.knn import claim_check


def frame(cells: dict[tuple[str, float], float]) -> pd.DataFrame:
    return pd.DataFrame([{"pooler": p, "snr": s, "k": int(s * 128), "seed": 0, "test_signal_loss": v,
                          "baseline_centroid": 0.05, "baseline_query": 0.04} for (p, s), v in cells.items()])


def test_margins_against_each_baseline():
    lines = claim_check(frame({("adapool", 0.125): 0.01, ("max", 0.125): 0.03, ("mean", 0.125): 0.05,
                               ("cls_token", 0.125): 0.04}))
    assert lines == ["SNR 0.125: best of mean/max / AdaPool = 3.0x (each over AdaPool: MaxPool 3.0x, "
                     "AvgPool 5.0x, ClsToken (learned token) 4.0x)"]


def test_a_sweep_cut_short_still_reports_what_it_has():
    # SNR 0.125 lacks mean and ClsToken (killed mid-sweep); SNR 0.25 lacks AdaPool
    lines = claim_check(frame({("adapool", 0.03125): 0.02, ("max", 0.03125): 0.05, ("mean", 0.03125): 0.06,
                               ("adapool", 0.125): 0.01, ("max", 0.125): 0.03, ("max", 0.25): 0.02}))
    assert lines[0].startswith("SNR 0.0312: best of mean/max / AdaPool = 2.5x")
    assert lines[1] == "SNR 0.125: max / AdaPool = 3.0x (each over AdaPool: MaxPool 3.0x)"
    assert len(lines) == 2
