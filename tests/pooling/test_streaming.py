"""Pooling in chunks equals pooling the concatenated tokens, for every mergeable pooler and any
chunking, padding side, holes and empty rows."""

from __future__ import annotations

import itertools

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import poolwise as pw
from poolwise.pooling import mergeable, pool_chunks

MERGEABLE = ["sum", "mean", "mean_sqrt_len", "weighted_mean", "max", "min", "first", "last", "softmax"]


@st.composite
def chunked_batches(draw):
    b, n, d = draw(st.integers(1, 4)), draw(st.integers(0, 24)), draw(st.integers(1, 6))
    seed = draw(st.integers(0, 2**16))
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(b, n, d, generator=gen) * 3
    mask = torch.rand(b, n, generator=gen) < draw(st.floats(0.0, 1.0))
    cuts = sorted(draw(st.lists(st.integers(0, n), max_size=5)))
    bounds = [0, *cuts, n]
    return x, mask, list(itertools.pairwise(bounds))


@pytest.mark.parametrize("name", MERGEABLE)
@given(batch=chunked_batches())
def test_chunked_pooling_equals_one_shot(name, batch):
    x, mask, spans = batch
    pooler = pw.get_pooler(name)
    if name == "softmax":
        with torch.no_grad():
            pooler.temperature.fill_(0.7)
    with torch.no_grad():
        whole = pooler(x, mask)
        chunked = pool_chunks(pooler, [(x[:, i:j], mask[:, i:j]) for i, j in spans])
    torch.testing.assert_close(chunked, whole, atol=2e-6, rtol=2e-5)


@pytest.mark.parametrize("query,heads", [("mean", 1), ("mean", 2), (0, 2), (1, 1), ([0, 2], 2)])
@settings(max_examples=10)
@given(batch=chunked_batches())
def test_adapool_in_two_passes_equals_one_shot(query, heads, batch):
    x, mask, spans = batch
    d = x.shape[-1] * heads
    x = x.repeat(1, 1, heads)  # a feature size the heads divide
    if isinstance(query, (int, list)):  # every row holds the indexed tokens, or none
        need = (max(query) if isinstance(query, list) else query) + 1
        mask[mask.sum(1) < need] = False
    torch.manual_seed(0)
    pooler = pw.get_pooler("adapool", dim=d, num_heads=heads, query=query).eval()
    chunks = [(x[:, i:j], mask[:, i:j]) for i, j in spans]
    with torch.no_grad():
        torch.testing.assert_close(pool_chunks(pooler, chunks), pooler(x, mask), atol=2e-5, rtol=2e-5)


@pytest.mark.parametrize("kwargs", [{}, {"num_heads": 2, "num_queries": 3},
                                    {"num_queries": 2, "flatten": True}, {"num_heads": 2, "mlp_ratio": 2.0}])
@settings(max_examples=10)
@given(batch=chunked_batches())
def test_attention_pooling_in_chunks_equals_one_shot(kwargs, batch):
    x, mask, spans = batch
    x = x.repeat(1, 1, 2)
    torch.manual_seed(0)
    pooler = pw.get_pooler("attention", dim=x.shape[-1], **kwargs)
    with torch.no_grad():
        chunked = pool_chunks(pooler, [(x[:, i:j], mask[:, i:j]) for i, j in spans])
        torch.testing.assert_close(chunked, pooler(x, mask), atol=2e-5, rtol=2e-5)


def test_adapool_refuses_what_it_cannot_pool_in_chunks():
    x = torch.randn(2, 6, 4)
    for pooler, why in ((pw.get_pooler("adapool", dim=4, query=-1), "negative query index"),
                        (pw.get_pooler("adapool", dim=4, dropout=0.1).train(), "attention dropout")):
        assert not mergeable(pooler)
        with pytest.raises(TypeError, match=why):
            pool_chunks(pooler, [(x, None)])
    with pytest.raises(TypeError, match="reads the chunks twice"):
        pool_chunks(pw.get_pooler("adapool", dim=4), iter([(x, None)]))
    with pytest.raises(ValueError, match="needs query="):
        pw.get_pooler("adapool", dim=4).init_state(2, 4)
    short = torch.tensor([[1, 1, 0, 0, 0, 0], [1, 0, 0, 0, 0, 0]])
    with pytest.raises(ValueError, match=r"query index 1 does not exist in row\(s\) \[1\]"):
        chunks = [(x[:, :3], short[:, :3]), (x[:, 3:], short[:, 3:])]
        pool_chunks(pw.get_pooler("adapool", dim=4, query=1), chunks)


def test_empty_rows_follow_the_policy_and_dtype_is_the_inputs():
    x = torch.randn(2, 4, 3, dtype=torch.float16)
    mask = torch.tensor([[1, 1, 0, 0], [0, 0, 0, 0]])
    for name in MERGEABLE:
        chunks = [(x[:, :2], mask[:, :2]), (x[:, 2:], mask[:, 2:])]
        out = pool_chunks(pw.get_pooler(name, empty="nan"), chunks)
        assert out.dtype == torch.float16 and torch.isnan(out[1]).all() and torch.isfinite(out[0]).all()
        with pytest.raises(ValueError, match=r"rows \[1\] have no real token"):
            pool_chunks(pw.get_pooler(name, empty="raise"), [(x, mask)])


def test_weighted_mean_ranks_count_across_chunks():
    x = torch.tensor([[[1.0], [2.0], [4.0]]])  # ranks 1, 2, 3: (1 + 4 + 12) / 6
    out = pool_chunks(pw.get_pooler("weighted_mean"), [(x[:, :1], None), (x[:, 1:], None)])
    assert out.item() == pytest.approx(17 / 6)


def test_poolers_without_a_state_say_why():
    assert not mergeable(pw.get_pooler("gem"))
    with pytest.raises(TypeError, match="GeMPooling cannot pool in chunks: it shifts by each row's minimum"):
        pw.get_pooler("gem").init_state(2, 4)
    pooler = pw.get_pooler("mean")
    state = pooler.init_state(2, 4)
    with pytest.raises(ValueError, match=r"chunk of shape \(3, 5, 4\) does not fit a state of batch=2"):
        pooler.update(state, torch.zeros(3, 5, 4))
    with pytest.raises(ValueError, match="pool_chunks got no chunk"):
        pool_chunks(pooler, [])
