"""Half precision and other numerical promises of the contract."""

import pytest
import torch

import poolwise as pw
from poolwise.pooling import AdaPool, use_dense
from poolwise.pooling.attention_core import folded_attention, standard_attention

from .helpers import ALL, build


@pytest.mark.parametrize("dense", [False, True], ids=["segment", "dense"])
def test_fp16_mean_of_large_activations_is_finite(dense):
    x = torch.full((2, 512, 4), 200.0, dtype=torch.float16)
    with use_dense(dense):
        out = pw.get_pooler("mean")(x, torch.ones(2, 512, dtype=torch.bool))
    assert out.dtype == torch.float16
    torch.testing.assert_close(out, torch.full((2, 4), 200.0, dtype=torch.float16))


@pytest.mark.parametrize("dense", [False, True], ids=["segment", "dense"])
def test_fp16_weighted_mean_over_600_tokens_is_not_zero(dense):
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(2, 600, 4, generator=gen) + 1.0
    ref = pw.get_pooler("weighted_mean")(x)
    with use_dense(dense):
        out = pw.get_pooler("weighted_mean")(x.half())
    assert (out != 0).all()
    torch.testing.assert_close(out.float(), ref, atol=2e-3, rtol=2e-3)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("name", ALL)
def test_half_all_padding_row_is_zero_not_nan(name, dtype):
    pooler = build(name).to(dtype)
    x = torch.randn(3, 5, 8, dtype=dtype)
    mask = torch.tensor([[1, 1, 0, 0, 0], [0] * 5, [1] * 5])
    out = pooler(x, mask)
    assert torch.isfinite(out).all() and (out[1] == 0).all()


def test_fp16_sum_accumulates_in_fp32():
    # 4096 ones: an fp16 accumulator would stall at 2048
    out = pw.get_pooler("sum")(torch.ones(1, 4096, 2, dtype=torch.float16))
    assert out.tolist() == [[4096.0, 4096.0]]


def test_max_does_not_touch_the_input():
    x = torch.randn(2, 4, 3)
    copy = x.clone()
    pw.get_pooler("max")(x, torch.tensor([[1, 1, 0, 0], [1, 0, 1, 0]]))
    assert torch.equal(x, copy)


def test_max_of_all_negative_row_ignores_padding():
    x = torch.full((1, 4, 2), -5.0)
    x[0, 2:] = 0.0  # zero padding must not win the max
    assert pw.get_pooler("max")(x, torch.tensor([[1, 1, 0, 0]])).tolist() == [[-5.0, -5.0]]


@pytest.mark.parametrize("query", ["mean", 0, -1, [0, 2]])
@pytest.mark.parametrize("heads", [1, 2, 4])
def test_adapool_folded_equals_standard_attention(query, heads):
    torch.manual_seed(0)
    pool = AdaPool(8, num_heads=heads, query=query, bias=True)
    x = torch.randn(3, 6, 8)
    mask = torch.tensor([[1] * 6, [0, 0, 1, 1, 1, 1], [1, 1, 1, 0, 1, 0]])
    folded = pool(x, mask)
    pool.folded = False
    torch.testing.assert_close(pool(x, mask), folded, atol=1e-5, rtol=1e-5)


def test_attention_core_paths_agree_with_many_queries():
    torch.manual_seed(0)
    lin = [torch.nn.Linear(8, 8) for _ in range(2)]
    x, q = torch.randn(2, 5, 8), torch.randn(1, 3, 8)
    mask = torch.tensor([[1, 1, 1, 0, 0], [1] * 5]).bool()
    a, wa = folded_attention(x, mask, q, *lin, num_heads=2, scale=0.3)
    b, wb = standard_attention(x, mask, q, *lin, num_heads=2, scale=0.3)
    torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(wa, wb)
    assert (wa[0, ..., 3:] == 0).all()


def test_adapool_residual_only_for_a_single_token_query():
    assert AdaPool(4, query=0).residual
    assert not AdaPool(4, query=[0, 1]).residual
    assert not AdaPool(4, query="mean").residual


def test_adapool_scale_options():
    assert AdaPool(16, num_heads=4).scaling == pytest.approx(0.25)
    assert AdaPool(16, num_heads=4, scale="head_dim").scaling == pytest.approx(0.5)
    assert AdaPool(16, scale=0.1).scaling == pytest.approx(0.1)


def test_adapool_attention_follows_the_query():
    """With K = Q = I and a sharp scale, the weight goes to the token most like the query."""
    pool = AdaPool(4, query=0, scale=50.0)
    with torch.no_grad():
        for lin in (pool.q_proj, pool.k_proj, pool.v_proj, pool.out_proj):
            lin.weight.copy_(torch.eye(4))
    x = torch.tensor([[[1.0, 0, 0, 0], [0, 1, 0, 0], [0.9, 0, 0.1, 0], [0, 0, 0, 1]]])
    weights = pool.attention_weights(x)[0, 0]
    assert weights.argmax().item() == 0 and weights[1] < 1e-6 and weights[3] < 1e-6


def test_adapool_callable_and_list_queries():
    torch.manual_seed(0)
    x = torch.randn(2, 5, 4)
    first = AdaPool(4, query=lambda t, m: t[:, 0])
    mean_of_two = AdaPool(4, query=[0, 1])
    ref = AdaPool(4, query=lambda t, m: (t[:, 0] + t[:, 1]) / 2)
    mean_of_two.load_state_dict(first.state_dict())
    ref.load_state_dict(first.state_dict())
    torch.testing.assert_close(mean_of_two(x), ref(x))


def test_latent_attention_padding_does_not_leak():
    pool = build("latent_attention")
    x = torch.randn(1, 4, 8)
    mask = torch.tensor([[1, 1, 0, 0]])
    a = pool(x, mask)
    x[0, 2:] = 1e4
    torch.testing.assert_close(pool(x, mask), a)


def test_gem_is_shift_equivariant_and_between_mean_and_max():
    gem = pw.get_pooler("gem", p=4.0)
    x = torch.randn(3, 7, 5) - 10.0  # all negative: classic GeM would clamp it all away
    y = gem(x)
    torch.testing.assert_close(gem(x + 25.0), y + 25.0, atol=1e-4, rtol=1e-5)
    assert (y >= x.mean(1) - 1e-5).all() and (y <= x.amax(1) + 1e-5).all()


def test_gem_power_stays_bounded_under_training():
    gem = pw.get_pooler("gem", p=3.0, p_min=1.0, p_max=6.0)
    opt = torch.optim.SGD(gem.parameters(), lr=100.0)
    x = torch.randn(4, 6, 3)
    for _ in range(20):
        opt.zero_grad()
        (-gem(x).sum()).backward()  # pushes p up as far as it can go
        opt.step()
    assert 1.0 < gem.power.item() <= 6.0 and torch.isfinite(gem.p_raw).all()
