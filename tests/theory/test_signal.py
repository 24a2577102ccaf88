import itertools
import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from poolwise.theory import (
    attention_weight_bounds,
    check_attention_weights,
    max_pool_signal_loss,
    mean_pool_signal_loss,
    optimal_pool,
    signal_loss,
    signal_spread,
    snr,
)


def _case(seed: int, b: int = 3, n: int = 9, d: int = 4):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(b, n, d, generator=gen, dtype=torch.float64)
    signal = torch.rand(b, n, generator=gen) < 0.4
    signal[:, 0] = True  # every row has a signal token
    return x, signal, gen


@given(seed=st.integers(0, 10_000))
def test_the_optimal_pool_beats_every_convex_combination(seed):
    x, signal, gen = _case(seed)
    best = signal_loss(x, signal, optimal_pool(x, signal))
    for _ in range(20):
        w = torch.rand(x.shape[:2], generator=gen, dtype=torch.float64)
        w = w / w.sum(1, keepdim=True)
        other = (w[..., None] * x).sum(1)
        assert (signal_loss(x, signal, other) >= best - 1e-12).all()


@given(seed=st.integers(0, 10_000))
def test_bias_variance_identity(seed):
    x, signal, gen = _case(seed)
    c = torch.randn(x.shape[0], x.shape[2], generator=gen, dtype=torch.float64)
    gap = ((c - optimal_pool(x, signal)) ** 2).mean(-1)
    torch.testing.assert_close(signal_loss(x, signal, c), signal_spread(x, signal) + gap)


@given(seed=st.integers(0, 10_000))
def test_closed_forms_match_direct_computation(seed):
    x, signal, _ = _case(seed)
    torch.testing.assert_close(mean_pool_signal_loss(x, signal), signal_loss(x, signal, x.mean(1)))
    torch.testing.assert_close(max_pool_signal_loss(x, signal), signal_loss(x, signal, x.amax(1)))


def test_closed_forms_respect_the_padding_mask():
    x, signal, _ = _case(1)
    mask = torch.ones(x.shape[:2], dtype=torch.bool)
    mask[:, -3:] = False
    x_pad = x.clone()
    x_pad[:, -3:] = 1e3  # padding that would dominate if it leaked
    mean_real = x[:, :-3].mean(1)
    torch.testing.assert_close(mean_pool_signal_loss(x_pad, signal, mask),
                               signal_loss(x, signal & mask, mean_real, mask))
    assert torch.allclose(snr(signal, mask), (signal & mask).sum(1) / 6.0)


def test_mean_pool_is_optimal_without_noise_and_max_with_a_single_dominant_signal():
    x = torch.randn(2, 5, 3, dtype=torch.float64)
    all_signal = torch.ones(2, 5, dtype=torch.bool)
    torch.testing.assert_close(mean_pool_signal_loss(x, all_signal), signal_spread(x, all_signal))
    x[:, 2] = 10.0  # token 2 holds every feature's max
    one = torch.zeros(2, 5, dtype=torch.bool)
    one[:, 2] = True
    assert torch.allclose(max_pool_signal_loss(x, one), torch.zeros(2, dtype=torch.float64))


def test_weight_bounds_hold_for_constructed_scores():
    k, n = 4, 20
    gen = torch.Generator().manual_seed(0)
    for eps, margin in [(0.0, 5.0), (0.5, 2.0), (2.0, 0.1), (1.0, -1.0)]:
        scores = torch.empty(n, dtype=torch.float64)
        scores[:k] = 3.0 + eps * torch.rand(k, generator=gen, dtype=torch.float64)
        scores[k:] = 3.0 - margin - 4.0 * torch.rand(n - k, generator=gen, dtype=torch.float64)
        signal = torch.zeros(n, dtype=torch.bool)
        signal[:k] = True
        (res,) = check_attention_weights(scores[None], signal[None])
        assert res["holds"] and res["eps_signal"] <= eps + 1e-12 and res["margin"] >= margin - 1e-12


@given(seed=st.integers(0, 10_000))
def test_weight_bounds_hold_for_random_scores(seed):
    gen = torch.Generator().manual_seed(seed)
    scores = 3 * torch.randn(4, 12, generator=gen)
    signal = torch.rand(4, 12, generator=gen) < 0.3
    signal[:, 0] = True
    signal[:, 1] = False
    assert all(r["holds"] for r in check_attention_weights(scores, signal))


def test_bounds_tighten_to_the_optimum():
    b = attention_weight_bounds(4, 128, eps_signal=1e-9, margin=60.0)
    assert b["signal_low"] == pytest.approx(0.25) and b["signal_high"] == pytest.approx(0.25)
    assert b["noise_high"] < 1e-20
    with pytest.raises(ValueError, match="1 <= k <= n"):
        attention_weight_bounds(0, 5, 0.1, 1.0)


def test_rows_without_signal_are_refused():
    x = torch.randn(2, 3, 2)
    signal = torch.tensor([[1, 0, 0], [0, 0, 0]])
    with pytest.raises(ValueError, match=r"rows \[1\] have no signal token"):
        signal_loss(x, signal, x[:, 0])
    assert math.isclose(float(snr(signal)[0]), 1 / 3, rel_tol=1e-6)


def test_bounds_hold_for_a_real_adapool_and_tighten_when_it_separates_signal():
    import poolwise as pw
    from poolwise.theory import check_adapool_weights

    torch.manual_seed(0)
    pool = pw.get_pooler("adapool", dim=4, num_heads=2, query=0)
    x = torch.randn(3, 10, 4)
    signal = torch.zeros(3, 10, dtype=torch.bool)
    signal[:, :3] = True
    mask = torch.ones(3, 10, dtype=torch.bool)
    mask[2, 7:] = False
    results = check_adapool_weights(pool, x, signal, mask)
    assert len(results) == 6 and all(r["holds"] for r in results)
    # an AdaPool whose scores separate signal from noise: identity projections, signal near the query
    sharp = pw.get_pooler("adapool", dim=4, num_heads=1, query=0, scale=20.0)
    with torch.no_grad():
        for lin in (sharp.q_proj, sharp.k_proj):
            lin.weight.copy_(torch.eye(4))
    y = -torch.ones(1, 10, 4)
    y[0, :3] = 1.0
    (res,) = check_adapool_weights(sharp, y, signal[:1])
    assert res["holds"] and res["margin"] > 100 and res["noise_high"] < 1e-40


def _sharpened_adapool(dim: int, c: float):
    """AdaPool with one head per feature whose score is ``c * x_ih`` (W_Q = 0 with query bias
    c, W_K = W_V = W_O = I, scale 1): as ``c`` grows, each head's softmax concentrates on the
    token with that feature's largest value."""
    import poolwise as pw

    pool = pw.get_pooler("adapool", dim=dim, num_heads=dim, bias=True, scale=1.0).double()
    with torch.no_grad():
        for lin in (pool.q_proj, pool.k_proj, pool.v_proj, pool.out_proj):
            lin.weight.copy_(torch.eye(dim, dtype=torch.float64))
            lin.bias.zero_()
        pool.q_proj.weight.zero_()
        pool.q_proj.bias.fill_(c)
    return pool.eval()


@given(seed=st.integers(0, 10_000))
def test_max_pool_is_the_sharpened_limit_of_adapool(seed):
    """MaxPool is a limit of AdaPool, beside the AvgPool special case (W_Q = 0): sharpening
    per-feature scores moves AdaPool's output and its signal loss monotonically to max
    pooling's closed form (padding included), and at c = 0 it is the mean."""
    x, signal, _ = _case(seed)
    mask = torch.ones(x.shape[:2], dtype=torch.bool)
    mask[1, -3:] = False
    x = x.masked_fill(~mask[..., None], 1e3)  # padding larger than any real value must not win
    signal = signal & mask
    real = x.masked_fill(~mask[..., None], -math.inf)
    top = real.max(1).values
    mean = (x * mask[..., None]).sum(1) / mask.sum(1, keepdim=True)
    torch.testing.assert_close(_sharpened_adapool(4, 0.0)(x, mask), mean)
    gaps = []
    for c in (1.0, 10.0, 100.0, 1e4):
        with torch.no_grad():
            gaps.append(float((_sharpened_adapool(4, c)(x, mask) - top).abs().max()))
    # d/dc of a softmax(c x)-weighted mean of x is its weighted variance >= 0: monotone to the max
    assert all(b <= a + 1e-12 for a, b in itertools.pairwise(gaps))
    # a gap of delta between the two largest values leaves a weight of about exp(-c * delta)
    second = real.topk(2, dim=1).values
    delta = float((second[:, 0] - second[:, 1]).min())
    if delta > 1e-2:
        assert gaps[-1] < 1e-6
        with torch.no_grad():
            pooled = _sharpened_adapool(4, 1e4)(x, mask)
        torch.testing.assert_close(signal_loss(x, signal, pooled, mask),
                                   max_pool_signal_loss(x, signal, mask), rtol=1e-5, atol=1e-8)
