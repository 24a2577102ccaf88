"""The speed benchmarks' arithmetic: what their tables say follows from what they timed."""

from __future__ import annotations

import pytest
import torch


def test_attention_floor_adds_up_its_parts(benchmark_script):
    floor = benchmark_script("attention_floor")
    res = floor.run(rounds=1)
    ms = res["ms"]
    t = {k: ms[v] for k, v in {
        "mean": "mean (one read of the real tokens)", "gemm": "GEMM (B, D) x (D, D)",
        "fp": "fingerprint of four (D, D) weights", "k1": "attention kernel, 1 head",
        "k8": "attention kernel, 8 heads", "read": "read: sum() of a contiguous buffer of that size"}.items()}
    one, eight = res["designs"]["adapool"], res["designs"]["adapool[heads=8]"]
    assert one["parts_ms"] == pytest.approx(t["mean"] + t["k1"] + 2 * t["gemm"] + t["fp"])
    assert eight["parts_ms"] == pytest.approx(t["mean"] + t["k8"] + 4 * t["gemm"])
    assert one["measured_x_mean"] == pytest.approx(ms["adapool"] / t["mean"])
    assert one["target_x_mean"] == 2.5 and eight["target_x_mean"] == 4
    # the limits price the same work at the rates the run reports: reads at sum()'s speed,
    # FLOPs at the best GEMM rate, the eight-head kernel's read hidden under its FLOPs
    b, _, d = res["shape"]
    rate, read = res["best_gemm_gflops"] * 1e6, res["read_gbps"] * 1e6  # per ms
    gemm = 2 * b * d * d / rate
    kernel8 = 4 * res["real_tokens"] * d * 8 / rate
    fingerprint = 4 * d * d * 4 / read
    assert one["limit_ms"] == pytest.approx(t["read"] + max(t["read"], kernel8 / 8) + 2 * gemm + fingerprint)
    assert eight["limit_ms"] == pytest.approx(t["read"] + max(t["read"], kernel8) + 4 * gemm)
    text = floor.render(res)
    assert "| adapool |" in text and f"{one['parts_x_mean']:.2f}" in text


def test_operator_table_has_a_pure_read_column_and_reads_older_results(benchmark_script):
    ops = benchmark_script("ops")
    row = {"pooler": "mean", "ms": 2.0, "x_mean": 1.0, "recipe_ms": 64.0, "speedup_vs_recipe": 32.0,
           "valid_read_GBps": 31.0, "bw_vs_stream": 0.84, "bw_vs_read": 0.81}
    res = {"shape": {"batch": 64, "length": 512, "dim": 768, "real_token_fraction": 0.62},
           "stream_copy_ms": 7.75, "stream_read_ms": 2.0, "rows": [row],
           "machine": {"cpu": "some CPU", "processor": "", "threads": 2, "torch": torch.__version__}}
    md = ops.render_md(res)
    assert "/ pure read bandwidth" in md and "| mean | 2.00 | 1.00 | 32.0x faster | 0.84 | 0.81 |" in md
    assert "read 2.00 ms" in md
    del res["stream_read_ms"], row["bw_vs_read"]  # a result file written before the column
    assert "| mean | 2.00 | 1.00 | 32.0x faster | 0.84 |  |" in ops.render_md(res)


def test_frozen_stats_tests_the_claims_with_holm_and_three_outcomes(benchmark_script):
    import pandas as pd

    fs = benchmark_script("frozen_stats")
    rows = []
    for pooler, values in {"last": [80.0, 80.4, 79.8], "mean": [74.0, 74.5, 73.9],
                           "max": [79.0, 81.5, 78.0], "first": [57.0, 58.0, 57.5]}.items():
        rows += [{"task": "t", "metric": "accuracy", "pooler": pooler, "value": v, "seed": i}
                 for i, v in enumerate(values)]
    frame = pd.DataFrame(rows)
    assert fs.claims(frame) == [("t", "last", "max"), ("t", "last", "mean")]
    text = fs.table(frame)
    assert "| t | last vs max | last - max = +0.567, Welch p = 0.64" in text
    assert "| **inconclusive** |" in text
    assert "| t | last vs mean | last - mean = +5.93, Welch p = " in text and "**last better** |" in text
    # per-item hits on a small test set: the same seed means, but the paired bootstrap over the
    # 20 items (the two differ on one) keeps "last vs mean" inconclusive
    hits = {"last": "1" * 16 + "1000", "mean": "1" * 16 + "0000", "max": "1" * 20, "first": "0" * 20}
    items = fs.table(frame.assign(hits=frame.pooler.map(hits)))
    assert "| t | last vs mean | last - mean = +5.93, Welch p = " in items and "item bootstrap p = " in items
    assert "**last better**" not in items
    assert "| t | mean (paper: Avg) | 74.13 ± 0.32 [95% CI ± 0.80] | 3 |" in text
