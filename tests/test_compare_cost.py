"""benchmarks/compare_cost.py: the GEMM lower bound's arithmetic (the widths each pooler's
per-token projection has at the study's setting, and the passes no run avoids)."""

from __future__ import annotations

import pytest


@pytest.fixture()
def cost(benchmark_script):
    return benchmark_script("compare_cost")


def test_widths_at_the_study_setting(cost):
    assert cost.gemm_width("gated", 384, 128) == 256  # gate and value halves of hidden 128
    assert cost.gemm_width("gated", 96, 128) == 192  # hidden = min(dim, 128)
    assert cost.gemm_width("latent_attention", 384, 128) == 4 * 64  # folded: heads x latents
    assert cost.gemm_width("latent_attention", 96, 128) == 96 + 2 * 64  # unfolded: projection + attention


def test_passes_no_run_avoids(cost):
    tokens = {"train": 100, "val": 10, "test": 20}
    assert cost.unavoidable_passes(tokens, epochs=3, budgets=2) == 2 * 3 * 100 + 3 * 10 + 4 * 20

