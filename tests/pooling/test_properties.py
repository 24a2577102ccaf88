"""Property tests over random shapes, lengths and layouts, for every registered pooler."""

from __future__ import annotations

import json

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import poolwise as pw
from poolwise.pooling import use_dense
from poolwise.pooling.dispatch import row_step

from .helpers import ALL, D, build, layout

TOL = {"atol": 2e-5, "rtol": 2e-5}


@st.composite
def token_sets(draw, min_len: int = 0, max_rows: int = 4, max_len: int = 10):
    """A batch as a list of per-row real-token tensors ``(n_b, D)`` plus a random seed."""
    lengths = draw(st.lists(st.integers(min_len, max_len), min_size=1, max_size=max_rows))
    seed = draw(st.integers(0, 2**16))
    gen = torch.Generator().manual_seed(seed)
    return [torch.randn(n, D, generator=gen) for n in lengths], seed


def right(rows, extra=0):
    length = max([len(r) for r in rows] + [1]) + extra
    return layout(rows, length, [list(range(len(r))) for r in rows])


def left(rows, extra=0, pad_value=-7.5):
    length = max([len(r) for r in rows] + [1]) + extra
    return layout(rows, length, [list(range(length - len(r), length)) for r in rows], pad_value)


def holes(rows, seed):
    """Real tokens scattered in order among padding, padding also inside the sequence."""
    gen = torch.Generator().manual_seed(seed)
    length = 2 * max([len(r) for r in rows] + [1]) + 1
    pos = [sorted(torch.randperm(length, generator=gen)[: len(r)].tolist()) for r in rows]
    return layout(rows, length, pos, pad_value=1234.0)


def nonempty(rows):
    return [r if len(r) else torch.randn(1, D) for r in rows]


@pytest.mark.parametrize("name", ALL)
@given(data=token_sets(), extra=st.integers(0, 3), grad=st.booleans())
def test_padding_side_length_and_holes_do_not_matter(name, data, extra, grad):
    """Under ``no_grad`` the eager CPU path uses the segment kernels, with grad the dense ones."""
    rows, seed = data
    pooler = build(name)
    with torch.set_grad_enabled(grad):
        ref = pooler(*right(rows))
        torch.testing.assert_close(pooler(*right(rows, extra)), ref, **TOL)
        torch.testing.assert_close(pooler(*left(rows, extra)), ref, **TOL)
        torch.testing.assert_close(pooler(*holes(rows, seed)), ref, **TOL)


@pytest.mark.parametrize("name", ALL)
@given(data=token_sets(min_len=1))
def test_batch_neighbours_do_not_matter(name, data):
    rows, _ = data
    pooler = build(name)
    batch = pooler(*left(rows, extra=2))
    for b, r in enumerate(rows):
        alone = pooler(r[None])  # no mask, no padding
        torch.testing.assert_close(batch[b], alone[0], **TOL)


@pytest.mark.parametrize("name", [n for n in ALL if build(n).is_set_function])
@given(data=token_sets(min_len=1))
def test_set_poolers_are_permutation_invariant(name, data):
    rows, seed = data
    pooler = build(name)
    gen = torch.Generator().manual_seed(seed)
    shuffled = [r[torch.randperm(len(r), generator=gen)] for r in rows]
    torch.testing.assert_close(pooler(*right(shuffled)), pooler(*right(rows)), **TOL)


def test_order_dependent_poolers_are_flagged():
    flagged = {n for n in ALL if not build(n).is_set_function}
    assert flagged == {"first", "last", "weighted_mean", "wavg"}
    assert not build("adapool", query=0).is_set_function


@pytest.mark.parametrize("name", ALL)
@given(data=token_sets())
def test_packed_agrees_with_padded(name, data):
    rows, _ = data
    pooler = build(name)
    packed = torch.cat(rows) if rows else torch.zeros(0, D)
    cu = torch.tensor([0, *torch.tensor([len(r) for r in rows]).cumsum(0).tolist()])
    torch.testing.assert_close(pooler.packed(packed, cu), pooler(*left(rows)), **TOL)


@pytest.mark.parametrize("name", ALL)
@given(data=token_sets())
def test_dense_and_segment_kernels_agree(name, data):
    rows, seed = data
    pooler = build(name)
    x, mask = holes(rows, seed)
    with torch.no_grad():  # segment kernels serve inference only
        with use_dense():
            dense = pooler(x, mask)
        torch.testing.assert_close(pooler(x, mask), dense, **TOL)


@pytest.mark.parametrize("name", ALL)
@given(data=token_sets(min_len=0))
def test_empty_row_policy(name, data):
    rows, _ = data
    rows = [*rows, torch.zeros(0, D)]  # at least one empty row
    empty = torch.tensor([len(r) == 0 for r in rows])
    x, mask = right(rows)
    zero = build(name, empty="zero")(x, mask)
    nan = build(name, empty="nan")(x, mask)
    assert torch.isfinite(zero).all()
    assert (zero[empty] == 0).all()
    assert torch.isnan(nan[empty]).all()
    torch.testing.assert_close(nan[~empty], zero[~empty])
    with pytest.raises(ValueError, match="no real token"):
        build(name, empty="raise")(x, mask)


@pytest.mark.parametrize("name", ALL)
@given(data=token_sets(min_len=0))
def test_empty_row_policy_packed(name, data):
    rows, _ = data
    rows = [torch.zeros(0, D), *rows]  # at least one empty row, possibly more
    empty = torch.tensor([len(r) == 0 for r in rows])
    packed = torch.cat(rows)
    cu = torch.tensor([0, *torch.tensor([len(r) for r in rows]).cumsum(0).tolist()])
    zero = build(name, empty="zero").packed(packed, cu)
    nan = build(name, empty="nan").packed(packed, cu)
    assert (zero[empty] == 0).all() and torch.isnan(nan[empty]).all()
    torch.testing.assert_close(nan[~empty], zero[~empty])
    with pytest.raises(ValueError, match="no real token"):
        build(name, empty="raise").packed(packed, cu)
    if len(rows) > 1 and not empty[1:].any():  # no empty row left: nothing to refuse
        build(name, empty="raise").packed(packed[:], cu[1:] - cu[1])


@pytest.mark.parametrize("name", ALL)
@given(data=token_sets(min_len=0))
def test_gradients_are_finite_with_empty_rows(name, data):
    rows, _ = data
    rows = [*rows, torch.zeros(0, D)]
    x, mask = left(rows)
    x.requires_grad_(True)
    pooler = build(name).train()
    out = pooler(x, mask)
    (out * torch.linspace(-1, 1, out.shape[-1])).sum().backward()
    assert torch.isfinite(x.grad).all()
    assert (x.grad[~mask] == 0).all(), "padding must receive no gradient"
    for pname, p in pooler.named_parameters():
        assert p.grad is None or torch.isfinite(p.grad).all(), pname


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=["fp16", "bf16"])
@pytest.mark.parametrize("name", ALL)
@given(data=token_sets(min_len=0))
def test_half_precision_matches_fp32(name, dtype, data):
    rows, _ = data
    x, mask = right([*rows, torch.zeros(0, D)])
    pooler = build(name)
    ref = pooler(x, mask)
    out = pooler.to(dtype)(x.to(dtype), mask)
    assert out.dtype == dtype
    assert torch.isfinite(out).all()
    tol = 2e-2 if dtype == torch.float16 else 8e-2
    torch.testing.assert_close(out.float(), ref, atol=tol * (1 + ref.abs().max().item()), rtol=tol)


@pytest.mark.parametrize("name", ALL)
@given(data=token_sets(min_len=1))
def test_integer_and_bool_masks_agree(name, data):
    rows, _ = data
    x, mask = left(rows, extra=1)
    pooler = build(name)
    torch.testing.assert_close(pooler(x, mask.long()), pooler(x, mask), **TOL)
    torch.testing.assert_close(pooler(x, mask.int()), pooler(x, mask), **TOL)


@pytest.mark.parametrize("name", ALL)
def test_config_round_trip_gives_identical_outputs(name):
    pooler = build(name)
    cfg = json.loads(json.dumps(pooler.config()))
    clone = pw.Pooler.from_config(cfg).eval()
    clone.load_state_dict(pooler.state_dict())
    assert clone.config() == pooler.config()
    assert repr(clone) == repr(pooler)
    x, mask = right([torch.randn(3, D), torch.randn(5, D)])
    assert torch.equal(clone(x, mask), pooler(x, mask))


@pytest.mark.parametrize("name", ALL)
def test_no_mask_means_every_token_is_real(name):
    pooler = build(name)
    x = torch.randn(3, 5, D)
    full = torch.ones(3, 5, dtype=torch.bool)
    torch.testing.assert_close(pooler(x), pooler(x, full), **TOL)


@pytest.mark.parametrize("name", ALL)
def test_empty_batch_gives_an_empty_result(name):
    pooler = build(name)
    full = pooler(torch.randn(3, 4, D), torch.ones(3, 4, dtype=torch.bool))
    for mask in (None, torch.ones(0, 4, dtype=torch.bool)):
        out = pooler(torch.zeros(0, 4, D), mask)
        assert out.shape == (0, *full.shape[1:])
    assert pooler.packed(torch.zeros(0, D), torch.tensor([0])).shape == (0, *full.shape[1:])


@pytest.mark.parametrize("name", ALL)
def test_zero_length_input_is_all_empty(name):
    pooler = build(name)
    out = pooler(torch.zeros(2, 0, D))
    assert out.shape[0] == 2 and (out == 0).all()
    out = pooler(torch.zeros(2, 0, D), torch.zeros(2, 0, dtype=torch.bool))
    assert (out == 0).all()


@pytest.mark.parametrize("name", ALL)
@given(data=token_sets(min_len=0, max_rows=5))
def test_row_chunks_change_nothing(name, data):
    """Pooling rows in chunks (``row_chunk_bytes``) gives the same outputs and gradients."""
    rows, seed = data
    x, mask = holes(rows, seed)
    pooler = build(name)
    cls = type(pooler)
    grads, outs = [], []
    saved = cls.__dict__.get("row_chunk_bytes", None)
    for chunk in (None, 4 * x[0].numel() * 2):  # whole batch, then two rows a chunk
        cls.row_chunk_bytes = chunk
        try:
            if chunk is not None:  # the chunked path is really taken
                assert row_step(x, pooler.row_chunk_bytes) == (2 if len(rows) > 2 else None)
            xg = x.clone().requires_grad_(True)
            out = pooler(xg, mask)
            out.sum().backward()
        finally:
            if saved is None:
                del cls.row_chunk_bytes
            else:
                cls.row_chunk_bytes = saved
        outs.append(out)
        grads.append(xg.grad)
    torch.testing.assert_close(outs[1], outs[0], **TOL)
    torch.testing.assert_close(grads[1], grads[0], **TOL)
