"""Exact values on a hand-computed fixture (padding holds the sentinel 99)."""

import math

import pytest
import torch

import poolwise as pw
from poolwise.pooling import use_dense

S = 99.0
# row 0: right padded, tokens (1, 2), (3, -4), (5, 6); row 1: left padded, (-1, 0), (2, 8)
X = torch.tensor([
    [[1.0, 2.0], [3.0, -4.0], [5.0, 6.0], [S, S]],
    [[S, S], [S, S], [-1.0, 0.0], [2.0, 8.0]],
])
MASK = torch.tensor([[1, 1, 1, 0], [0, 0, 1, 1]])
R3, R2 = math.sqrt(3), math.sqrt(2)

EXPECTED = {
    "first": [[1, 2], [-1, 0]],
    "last": [[5, 6], [2, 8]],
    "mean": [[3, 4 / 3], [0.5, 4]],
    "sum": [[9, 4], [1, 8]],
    "max": [[5, 6], [2, 8]],
    "min": [[1, -4], [-1, 0]],
    "mean_sqrt_len": [[9 / R3, 4 / R3], [1 / R2, 8 / R2]],
    # weights 1:2:3 over 6 and 1:2 over 3
    "weighted_mean": [[22 / 6, 12 / 6], [3 / 3, 16 / 3]],
}


@pytest.mark.parametrize("dense", [False, True], ids=["segment", "dense"])
@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_exact_values(name, dense):
    with use_dense(dense):
        out = pw.get_pooler(name)(X, MASK)
    torch.testing.assert_close(out, torch.tensor(EXPECTED[name], dtype=torch.float32))


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_exact_values_packed(name):
    packed = torch.tensor([[1.0, 2.0], [3.0, -4.0], [5.0, 6.0], [-1.0, 0.0], [2.0, 8.0]])
    out = pw.get_pooler(name).packed(packed, torch.tensor([0, 3, 5]))
    torch.testing.assert_close(out, torch.tensor(EXPECTED[name], dtype=torch.float32))


def test_aliases_give_the_same_operator():
    torch.testing.assert_close(pw.get_pooler("avg")(X, MASK), pw.get_pooler("mean")(X, MASK))
    torch.testing.assert_close(pw.get_pooler("cls")(X, MASK), pw.get_pooler("first")(X, MASK))


def test_gem_at_p1_is_mean_and_large_p_approaches_max():
    gem1 = pw.get_pooler("gem", p=1.0, learn=False)
    torch.testing.assert_close(gem1(X, MASK), torch.tensor(EXPECTED["mean"]))
    gem_big = pw.get_pooler("gem", p=400.0, learn=False, p_max=400.0)
    torch.testing.assert_close(gem_big(X, MASK), torch.tensor(EXPECTED["max"], dtype=torch.float32),
                               atol=0.1, rtol=0.02)


def test_softmax_temperature_limits():
    t0 = pw.get_pooler("softmax", t=0.0, learn=False)
    torch.testing.assert_close(t0(X, MASK), torch.tensor(EXPECTED["mean"]))
    hot = pw.get_pooler("softmax", t=60.0, learn=False)
    torch.testing.assert_close(hot(X, MASK), torch.tensor(EXPECTED["max"], dtype=torch.float32))
    cold = pw.get_pooler("softmax", t=-60.0, learn=False)
    torch.testing.assert_close(cold(X, MASK), torch.tensor(EXPECTED["min"], dtype=torch.float32))


def test_wavg_starts_as_mean_and_follows_its_logits():
    wavg = pw.get_pooler("wavg", max_len=4)
    torch.testing.assert_close(wavg(X, MASK), torch.tensor(EXPECTED["mean"]))
    with torch.no_grad():
        wavg.logits.copy_(torch.tensor([0.0, math.log(2), math.log(3), 5.0]))
    # weights 1:2:3 by rank from the first real token, as weighted_mean
    torch.testing.assert_close(wavg(X, MASK), torch.tensor(EXPECTED["weighted_mean"]))
    end = pw.get_pooler("wavg", max_len=4, align="end")
    with torch.no_grad():
        end.logits.copy_(torch.tensor([50.0, 0.0, 0.0, 0.0]))  # all weight on the last token
    torch.testing.assert_close(end(X, MASK), torch.tensor(EXPECTED["last"], dtype=torch.float32))


def test_adapool_with_zero_query_and_identity_maps_is_mean():
    """The paper's special case: W_Q = 0 gives uniform weights; W_V = W_O = I."""
    pool = pw.get_pooler("adapool", dim=2)
    with torch.no_grad():
        pool.q_proj.weight.zero_()
        pool.v_proj.weight.copy_(torch.eye(2))
        pool.out_proj.weight.copy_(torch.eye(2))
    torch.testing.assert_close(pool(X, MASK), torch.tensor(EXPECTED["mean"]))
    token = pw.get_pooler("adapool", dim=2, query=-1)  # residual: mean + last real token
    token.load_state_dict(pool.state_dict())
    want = torch.tensor(EXPECTED["mean"]) + torch.tensor(EXPECTED["last"], dtype=torch.float32)
    torch.testing.assert_close(token(X, MASK), want)


@pytest.mark.parametrize("shape", [(3, 4, 2), (1, 1, 3), (2, 0, 2), (0, 3, 2)])
def test_segments_without_mask_equal_an_all_real_mask(shape):
    """``Segments.of(x, None)`` (built by arithmetic) addresses the same tokens as the view of
    an all-true mask, field by field; spans are contiguous whole rows."""
    from poolwise.pooling.functional import Segments

    x = torch.randn(*shape)
    fast = Segments.of(x, None)
    ref = Segments.from_mask(x, torch.ones(shape[:2], dtype=torch.bool))
    for field in ("table", "index", "offsets", "counts", "row", "rank"):
        assert torch.equal(getattr(fast, field), getattr(ref, field)), field
    assert fast.keep is None
    b, n = shape[:2]
    assert fast.spans() == [(i * n, (i + 1) * n, True) for i in range(b)]
