"""The RL report's claim checks and drop table on hand-built final returns."""

from __future__ import annotations

import pandas as pd

from poolwise.report.rl import _drop_table, claim_lines, drops


def frame(returns: dict[tuple[str, str], list[float]], random: float | list[float] = 0.5) -> pd.DataFrame:
    snr = {"entities": 1.0, "pixels": 0.14}
    rand = random if isinstance(random, list) else [random] * 10
    return pd.DataFrame([{"env": "boxworld", "config": config, "snr": snr[config], "pooler": pooler,
                          "seed": seed, "final_return": r, "random_return": rand[seed]}
                         for (config, pooler), values in returns.items() for seed, r in enumerate(values)])


def test_boxworld_checks_are_tests_and_say_whether_anything_was_learned():
    unlearned = frame({("entities", "max"): [0.4, 0.6, 0.5], ("entities", "mean"): [0.3, 1.3, 0.8],
                       ("pixels", "adapool"): [0.45, 0.65, 0.55], ("pixels", "mean"): [0.45, 0.55, 0.5]},
                      random=[0.5, 0.52, 0.48])
    lines = "\n".join(claim_lines(unlearned))
    assert "boxworld: MaxPool best on entity tokens: **inconclusive** (max - mean = -0.3" in lines
    assert "(boxworld entities: the best pooler above the random policy): **inconclusive**" in lines
    assert "Over the claims: **inconclusive**" in lines

    learned = frame({("entities", "max"): [9.0, 11.0, 10.0], ("entities", "mean"): [5.0, 6.0, 5.5],
                     ("pixels", "adapool"): [8.0, 8.5, 8.2], ("pixels", "mean"): [1.0, 2.0, 1.5]},
                    random=[0.5, 0.52, 0.48])
    lines = "\n".join(claim_lines(learned))
    assert "MaxPool best on entity tokens: **holds**" in lines
    assert "AdaPool best on pixel tokens: **holds**" in lines
    assert "(boxworld entities: the best pooler above the random policy): **holds**" in lines
    assert "Over the claims: **agrees**" in lines

    reversed_ = frame({("entities", "max"): [5.0, 6.0, 5.5], ("entities", "mean"): [9.0, 11.0, 10.0]},
                      random=[0.5, 0.52, 0.48])
    assert "MaxPool best on entity tokens: **fails**" in "\n".join(claim_lines(reversed_))


def test_a_drop_without_a_margin_over_random_is_a_dash():
    below = frame({("entities", "max"): [0.3, 0.4], ("pixels", "max"): [0.2, 0.3]})
    row = _drop_table(drops(below)).splitlines()[-1]
    assert row == "| boxworld (entities → pixels) | MaxPool | 0.35 → 0.25 | 28.6% | - | - |"
