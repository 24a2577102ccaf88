"""Lemmas 4.3 and 4.4 of *Pool Me Wisely* and the norm behind Theorem 4.2's (d/(d-1))^2 factor:
each bound is held against the worst input a gradient ascent on the local Lipschitz constant
(spectral norm of the Jacobian) finds, from several starts."""

import math

import pytest
import torch
from torch import nn

from poolwise.theory import (
    CenterNorm,
    L2MultiheadAttention,
    ScaledCosineAttention,
    centernorm_lipschitz,
    expressivity_bound,
    l2_mha_lipschitz_bound,
    lambert_w0,
    layer_constants,
    layernorm_lipschitz,
    local_lipschitz,
    pooling_factor,
    scsa_lipschitz_bound,
)

N, D = 4, 4


def _worst(f, starts: list[torch.Tensor], steps: int = 20, lr: float = 0.1,
           radius: float | None = None) -> float:
    """Largest local Lipschitz constant found by projected gradient ascent from ``starts``."""
    best = 0.0
    for x0 in starts:
        x = x0.clone().requires_grad_(True)
        opt = torch.optim.Adam([x], lr=lr)
        for _ in range(steps):
            value = local_lipschitz(f, x)
            best = max(best, float(value.detach()))
            opt.zero_grad()
            (-value).backward()
            opt.step()
            if radius is not None:  # stay in the ball the bound is stated on
                with torch.no_grad():
                    norms = x.norm(dim=-1, keepdim=True).clamp_min(radius)
                    x.mul_(radius / norms)
        best = max(best, float(local_lipschitz(f, x.detach())))
    return best


def test_lambert_w0():
    assert lambert_w0(0.0) == 0.0
    assert lambert_w0(math.e) == pytest.approx(1.0, abs=1e-14)
    for x in (1e-6, 0.3, 4 / math.e, 50.0, 1e6):
        w = lambert_w0(x)
        assert w * math.exp(w) == pytest.approx(x, rel=1e-12)
    with pytest.raises(ValueError, match="x >= 0"):
        lambert_w0(-0.1)


@pytest.mark.parametrize("seed", range(2))
def test_lemma_4_3_l2_attention_bound_holds_everywhere(seed):
    """Kim et al.'s bound is global: starts far from the origin included."""
    torch.manual_seed(seed)
    layer = L2MultiheadAttention(D, 2, dtype=torch.float64)
    starts = [torch.randn(N, D, dtype=torch.float64) * s for s in (0.3, 3.0, 10.0)]
    worst = _worst(layer, starts)
    bound = l2_mha_lipschitz_bound(layer, N)
    assert 0 < worst <= bound
    assert bound < 200 * worst  # not vacuous by orders of magnitude


def test_l2_attention_stays_bounded_where_dot_product_attention_does_not():
    torch.manual_seed(0)
    l2 = L2MultiheadAttention(D, 2, dtype=torch.float64)
    dot = nn.MultiheadAttention(D, 2, bias=False, batch_first=True, dtype=torch.float64)
    x = torch.randn(N, D, dtype=torch.float64)
    x[0] = 0  # Kim et al.'s construction: a zero token's softmax is uniform whatever the others
    bound = l2_mha_lipschitz_bound(l2, N)
    def self_attention(t):
        return dot(t, t, t, need_weights=False)[0]

    dot_lip = [float(local_lipschitz(self_attention, s * x)) for s in (1, 10, 100)]
    assert dot_lip[2] > 100 * dot_lip[0]  # grows with the others' scale: no global constant
    assert all(float(local_lipschitz(l2, s * x)) <= bound for s in (1, 10, 100))


@pytest.mark.parametrize("seed", range(2))
@pytest.mark.parametrize("tau", [1.0, 10.0])
def test_lemma_4_4_scaled_cosine_attention_bound_holds_on_the_ball(seed, tau):
    torch.manual_seed(seed)
    layer = ScaledCosineAttention(D, 2, tau=tau, nu=1.0, eps=0.5, dtype=torch.float64)
    radius = 2.0
    starts = []
    for s in (0.2, 1.0, 5.0):
        x = torch.randn(N, D, dtype=torch.float64) * s
        starts.append(x * (radius / x.norm(dim=-1, keepdim=True).clamp_min(radius)))
    worst = _worst(layer, starts, radius=radius)
    bound = scsa_lipschitz_bound(layer, N, radius)
    assert 0 < worst <= bound
    # a larger softmax scale makes the bound larger, as it must
    assert scsa_lipschitz_bound(layer, N, 2 * radius) > bound


def test_scaled_cosine_attention_checks_its_arguments():
    with pytest.raises(ValueError, match="num_heads must be a positive divisor"):
        ScaledCosineAttention(5, 2)
    with pytest.raises(ValueError, match="tau, nu and eps must be > 0"):
        ScaledCosineAttention(4, 2, eps=0.0)
    with pytest.raises(ValueError, match="num_heads must be a positive divisor"):
        L2MultiheadAttention(4, 3)


def test_centernorm_constant_is_exact():
    norm = CenterNorm(D, dtype=torch.float64)
    x = torch.randn(N, D, dtype=torch.float64)
    assert float(local_lipschitz(norm, x)) == pytest.approx(centernorm_lipschitz(D), rel=1e-12)
    with torch.no_grad():
        norm.weight.copy_(torch.tensor([0.5, -3.0, 1.0, 2.0]))
    assert float(local_lipschitz(norm, x)) <= centernorm_lipschitz(D, gamma_max=3.0) + 1e-12


def test_standard_layernorm_breaks_the_centernorm_factor_and_the_min_std_bound_holds():
    ln = nn.LayerNorm(D, eps=1e-5, dtype=torch.float64)
    x = torch.randn(N, D, dtype=torch.float64)
    flat = 1.0 + 1e-3 * x  # tokens whose features are nearly equal
    lip = float(local_lipschitz(ln, flat))
    assert lip > 100 * centernorm_lipschitz(D)
    min_std = float(flat.std(dim=-1, unbiased=False).min())
    assert lip <= layernorm_lipschitz(1.0, min_std, eps=1e-5) * (1 + 1e-9)


def test_expressivity_bound_refuses_standard_layernorm_without_its_constant():
    torch.manual_seed(0)
    layer = nn.TransformerEncoderLayer(D, 2, 8, dropout=0.0, batch_first=True, dtype=torch.float64)
    consts = layer_constants(layer, n=N, radius=2.0)
    assert consts["norm"] == "layernorm"
    with pytest.raises(ValueError, match="not a valid bound for standard LayerNorm"):
        expressivity_bound("mean", 0.1, 1.0, N, D, consts["C1"], consts["C2"], norm=consts["norm"])
    lip = layernorm_lipschitz(1.0, min_std=0.5)
    got = expressivity_bound("mean", 0.1, 1.0, N, D, 2.0, 3.0, norm="layernorm", norm_lipschitz=lip)
    assert got == pytest.approx(pooling_factor("mean", N, D) * 0.1 * lip ** 2 * 6.0)
    # the default is the theorem's CenterNorm factor
    assert expressivity_bound("sum", 0.1, 1.0, N, D) == pytest.approx(2 * 0.1 * (D / (D - 1)) ** 2)
    with pytest.raises(ValueError, match="norm must be one of"):
        expressivity_bound("sum", 0.1, 1.0, N, D, norm="rmsnorm")
