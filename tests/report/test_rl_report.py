"""The RL report's claim checks and drop table on hand-built final returns."""

from __future__ import annotations

import pandas as pd

from poolwise.report.rl import _drop_table, claim_lines, drops


def frame(returns: dict[tuple[str, str], list[float]], random: float = 0.5) -> pd.DataFrame:
    snr = {"entities": 1.0, "pixels": 0.14}
    return pd.DataFrame([{"env": "boxworld", "config": config, "snr": snr[config], "pooler": pooler,
                          "seed": seed, "final_return": r, "random_return": random}
                         for (config, pooler), values in returns.items() for seed, r in enumerate(values)])


def test_boxworld_checks_say_when_no_pooler_is_above_random():
    unlearned = frame({("entities", "max"): [0.4, 0.6], ("entities", "mean"): [0.3, 1.3],
                       ("pixels", "adapool"): [0.45, 0.65], ("pixels", "mean"): [0.45, 0.55]})
    lines = "\n".join(claim_lines(unlearned))
    assert "MaxPool best on entity tokens: **disagrees** (best: AvgPool 0.80)" in lines
    assert "no pooler is clearly above the random policy at entities (best: AvgPool 0.80 ± 0.50" in lines
    assert "no pooler is clearly above the random policy at pixels" in lines

    learned = frame({("entities", "max"): [9.0, 11.0], ("entities", "mean"): [5.0, 6.0],
                     ("pixels", "adapool"): [8.0, 8.5], ("pixels", "mean"): [1.0, 2.0]})
    lines = "\n".join(claim_lines(learned))
    assert "MaxPool best on entity tokens: **agrees**" in lines
    assert "AdaPool best on pixel tokens: **agrees**" in lines
    assert "clearly above the random policy" not in lines


def test_a_drop_without_a_margin_over_random_is_a_dash():
    below = frame({("entities", "max"): [0.3, 0.4], ("pixels", "max"): [0.2, 0.3]})
    row = _drop_table(drops(below)).splitlines()[-1]
    assert row == "| boxworld (entities → pixels) | MaxPool | 0.35 → 0.25 | 28.6% | - | - |"
