import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from poolwise.theory import expressivity_bound, pooling_factor, pooling_lipschitz_ratio

CLOSED = ["mean", "sum", "first", "last", "max"]


def test_factors():
    assert pooling_factor("mean", 16, 8) == pytest.approx(0.25)
    assert pooling_factor("avg", 16, 8) == pytest.approx(0.25)
    assert pooling_factor("sum", 16, 8) == pytest.approx(4.0)
    assert pooling_factor("cls", 16, 8) == pooling_factor("last", 16, 8) == 1.0
    assert pooling_factor("max", 16, 8) == pytest.approx(math.sqrt(8))
    with pytest.raises(ValueError, match="no closed-form pooling factor for 'gem'"):
        pooling_factor("gem", 4, 4)


def test_bound_orders_the_poolers_as_the_paper():
    n, d = 128, 64  # max is below sum when d < n, equal to it when d >= n
    g = {p: expressivity_bound(p, 0.1, 1.0, n, d, c1=2.0, c2=3.0) for p in CLOSED}
    assert g["mean"] < g["first"] == g["last"] < g["max"] < g["sum"]
    assert expressivity_bound("max", 0.1, 1.0, 64, 768) == expressivity_bound("sum", 0.1, 1.0, 64, 768)
    assert g["last"] == pytest.approx(0.1 * (d / (d - 1)) ** 2 * 6.0)


@pytest.mark.parametrize("name", CLOSED)
@given(seed=st.integers(0, 10_000), n=st.integers(1, 12), d=st.integers(2, 12))
def test_measured_ratio_never_exceeds_the_factor(name, seed, n, d):
    gen = torch.Generator().manual_seed(seed)
    z = torch.randn(4, n, d, generator=gen, dtype=torch.float64)
    scale = 10 ** torch.empty(1, dtype=torch.float64).uniform_(-3, 1, generator=gen)
    delta = torch.randn(4, n, d, generator=gen, dtype=torch.float64) * scale
    ratio = pooling_lipschitz_ratio(name, z, delta)
    assert (ratio <= pooling_factor(name, n, d) * (1 + 1e-9)).all()


@pytest.mark.parametrize("name", ["mean", "sum", "last"])
def test_factor_is_attained(name):
    """A perturbation that moves every token (or the last one) by the same vector attains it."""
    n, d = 9, 5
    z = torch.randn(1, n, d, dtype=torch.float64)
    delta = torch.zeros(1, n, d, dtype=torch.float64)
    if name == "last":
        delta[0, -1] = 0.3
    else:
        delta[0, :] = 0.3
    ratio = pooling_lipschitz_ratio(name, z, delta)
    assert float(ratio) == pytest.approx(pooling_factor(name, n, d))
