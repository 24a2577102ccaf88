"""The kNN report's claim checks on hand-made frames (a win, a tie, a sweep cut short)."""

import pandas as pd

from poolwise.report.knn import claim_check, claim_checks


def frame(cells: dict[tuple[str, float], list[float]]) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                "pooler": p,
                "snr": s,
                "k": int(s * 128),
                "seed": seed,
                "test_signal_loss": v,
                "baseline_centroid": 0.05,
                "baseline_query": 0.04,
            }
            for (p, s), vals in cells.items()
            for seed, v in enumerate(vals)
        ]
    )


def test_a_clear_margin_holds_with_its_ratios():
    lines = claim_check(
        frame(
            {
                ("adapool", 0.125): [0.010, 0.011, 0.009],
                ("max", 0.125): [0.030, 0.031, 0.029],
                ("mean", 0.125): [0.050, 0.051, 0.049],
                ("cls_token", 0.125): [0.04, 0.04, 0.04],
            }
        )
    )
    assert lines[0].startswith(
        "SNR 0.125: AdaPool below mean and max (loss over AdaPool's: MaxPool 3.0x, "
        "AvgPool 5.0x, ClsToken (learned token) 4.0x): **holds** (adapool - mean = -0.04"
    )
    assert lines[-1] == "AdaPool lowest at SNR 0.03-0.25 over the settings tested: **agrees**"


def test_a_margin_inside_the_seed_noise_is_inconclusive():
    lines = claim_check(
        frame(
            {
                ("adapool", 0.125): [0.010, 0.030, 0.020],
                ("max", 0.125): [0.025, 0.012, 0.031],
                ("mean", 0.125): [0.050, 0.051, 0.049],
            }
        )
    )
    assert "**inconclusive**" in lines[0] and lines[-1].endswith("**inconclusive**")


def test_a_sweep_cut_short_still_reports_what_it_has():
    # SNR 0.125 lacks mean and ClsToken (killed mid-sweep); SNR 0.25 lacks AdaPool
    checks = claim_checks(
        frame(
            {
                ("adapool", 0.03125): [0.02, 0.021],
                ("max", 0.03125): [0.05, 0.051],
                ("mean", 0.03125): [0.06, 0.061],
                ("adapool", 0.125): [0.01, 0.011],
                ("max", 0.125): [0.03, 0.031],
                ("max", 0.25): [0.02, 0.021],
            }
        )
    )
    assert [what.split(" (")[0] for what, _ in checks] == [
        "SNR 0.0312: AdaPool below mean and max",
        "SNR 0.125: AdaPool below max",
    ]


def test_mean_at_snr_one_within_ten_percent_of_the_best():
    checks = claim_checks(
        frame({("max", 1.0): [0.0100, 0.0101, 0.0099], ("mean", 1.0): [0.0102, 0.0103, 0.0101]})
    )
    assert len(checks) == 1 and checks[0][1].outcome == "holds"
    checks = claim_checks(
        frame({("max", 1.0): [0.0100, 0.0101, 0.0099], ("mean", 1.0): [0.02, 0.0201, 0.0199]})
    )
    assert checks[0][1].outcome == "fails"
