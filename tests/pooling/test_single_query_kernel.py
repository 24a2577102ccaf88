"""The one-pass single-query attention kernel against the PyTorch path."""

import os

import pytest
import torch

import poolwise as pw
from poolwise import _ext
from poolwise.pooling.attention_core import folded_attention
from poolwise.pooling.dispatch import _SINGLE_QUERY_SOURCE, route
from poolwise.pooling.functional import Segments


@pytest.fixture
def kernel():
    if os.environ.get("POOLWISE_NO_EXT"):
        pytest.skip("kernels disabled by POOLWISE_NO_EXT")
    ext = _ext.load_extension("poolwise_single_query", _SINGLE_QUERY_SOURCE)
    assert ext is not None, _ext.extension_error("poolwise_single_query")
    return ext


def _batch():
    torch.manual_seed(0)
    x = torch.randn(5, 9, 16) * 3
    mask = torch.tensor([
        [1, 1, 1, 1, 1, 1, 1, 1, 1],
        [0, 0, 0, 1, 1, 1, 1, 1, 1],   # left padding
        [1, 0, 1, 0, 1, 0, 1, 0, 1],   # holes
        [0, 0, 0, 0, 0, 0, 0, 0, 0],   # empty
        [0, 0, 0, 0, 1, 0, 0, 0, 0],   # one token
    ]).bool()
    return x, mask


def test_kernel_equals_masked_softmax_weighted_sum(kernel):
    x, mask = _batch()
    u = torch.randn(5, 16)
    seg = Segments.from_mask(x, mask)
    got = kernel.attend(seg.table, seg.index, seg.offsets, seg.counts, u)
    scores = torch.einsum("bnd,bd->bn", x, u).masked_fill(~mask, float("-inf"))
    weights = torch.softmax(scores, dim=1).nan_to_num(0.0)
    torch.testing.assert_close(got, torch.einsum("bn,bnd->bd", weights, x), atol=1e-5, rtol=1e-5)
    assert (got[3] == 0).all()


@pytest.mark.parametrize("heads", [2, 3, 8, 13])
@pytest.mark.parametrize("dim", [16, 40])  # 40: a tail after the 16-float vectors
def test_multi_head_kernel_equals_masked_softmax_weighted_sum(kernel, heads, dim):
    x, mask = _batch()
    x = torch.randn(5, 9, dim) * 3
    u = torch.randn(5, heads, dim)
    seg = Segments.from_mask(x, mask)
    got = kernel.attend_heads(seg.table, seg.index, seg.offsets, seg.counts, u)
    scores = torch.einsum("bnd,bhd->bhn", x, u).masked_fill(~mask[:, None], float("-inf"))
    weights = torch.softmax(scores, dim=2).nan_to_num(0.0)
    assert got.shape == (5, heads, dim)
    torch.testing.assert_close(got, torch.einsum("bhn,bnd->bhd", weights, x), atol=1e-5, rtol=1e-5)
    assert (got[3] == 0).all()


@pytest.mark.parametrize("name, kwargs", [
    ("adapool", {}), ("adapool", {"query": 0}), ("adapool", {"num_heads": 4}), ("attention", {}),
    ("attention", {"num_heads": 8}), ("attention", {"num_queries": 3}),
    ("attention", {"num_queries": 2, "num_heads": 2}),
])
def test_poolers_agree_with_and_without_the_kernel(kernel, name, kwargs, monkeypatch):
    x, mask = _batch()
    pool = pw.get_pooler(name, dim=16, **kwargs).eval()
    if kwargs.get("query") == 0:
        mask[3, 0] = True  # an index query needs its token in every row
    with torch.no_grad():
        fast = pool(x, mask)
        monkeypatch.setattr(_ext, "_loaded", {})
        monkeypatch.setattr(_ext, "_errors", {"poolwise_single_query": "off for this test"})
        slow = pool(x, mask)
        grad_free = pool.train()(x, mask)  # with grad disabled but training mode: same answer
    torch.testing.assert_close(fast, slow, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(grad_free, slow, atol=1e-5, rtol=1e-5)


def test_kernel_path_returns_no_weights_and_needs_float32(kernel):
    x, mask = _batch()
    lin = torch.nn.Linear(16, 16, bias=False)
    seg = Segments.from_mask(x, mask)
    q = torch.randn(5, 1, 16)
    with torch.no_grad():
        fast = route(x, kernel=True).kernel
        out, attn = folded_attention(x, mask, q, lin, lin, 1, 0.25, seg=seg, kernel=fast)
        ref, ref_attn = folded_attention(x, mask, q, lin, lin, 1, 0.25, seg=seg)
        xd = x.double()
        _, half_attn = folded_attention(xd, mask, q.double(), lin.double(), lin.double(), 1, 0.25,
                                        seg=Segments.from_mask(xd, mask),
                                        kernel=route(xd, kernel=True).kernel)
    assert attn is None and ref_attn is not None and half_attn is not None  # float64: PyTorch path
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("bias", [False, True])
@pytest.mark.parametrize("edit", ["optimizer", "data_mul", "data_copy", "ema", "load_state_dict"])
def test_kernel_adapool_follows_every_kind_of_weight_update(kernel, bias, edit, monkeypatch):
    """Weights changed by an optimiser, through ``.data`` (which moves no version counter), by
    an EMA update under no_grad or by load_state_dict: the next call uses the new weights."""
    x, mask = _batch()
    pool = pw.get_pooler("adapool", dim=16, bias=bias).eval()

    def reference():
        monkeypatch.setattr(_ext, "_loaded", {})
        monkeypatch.setattr(_ext, "_errors", {"poolwise_single_query": "off for this test"})
        with torch.no_grad():
            out = pool(x, mask)
        monkeypatch.undo()
        return out

    with torch.no_grad():
        before = pool(x, mask)
    assert "_folded_cache" in pool.__dict__  # the two-projection path ran and cached its matrices
    torch.testing.assert_close(before, reference(), atol=1e-5, rtol=1e-5)
    if edit == "optimizer":
        opt = torch.optim.SGD(pool.parameters(), lr=0.5)
        pool(x, mask).pow(2).sum().backward()
        opt.step()
    elif edit == "data_mul":
        pool.k_proj.weight.data.mul_(3)
    elif edit == "data_copy":
        pool.q_proj.weight.data.copy_(torch.randn(16, 16))
    elif edit == "ema":
        teacher = pw.get_pooler("adapool", dim=16, bias=bias)
        with torch.no_grad():
            for p, t in zip(pool.parameters(), teacher.parameters()):
                p.data.mul_(0.5).add_(t.data, alpha=0.5)
    else:
        pool.load_state_dict({k: torch.randn_like(v) for k, v in pool.state_dict().items()})
    with torch.no_grad():
        after = pool(x, mask)
    assert not torch.allclose(after, before)
    torch.testing.assert_close(after, reference(), atol=1e-4, rtol=1e-4)


def test_kernel_adapool_across_inference_mode(kernel):
    """Built and first run under inference_mode (serving), then used in plain no_grad, and
    the reverse: same outputs, no 'inference tensors' error."""
    x, mask = _batch()
    with torch.inference_mode():
        served = pw.get_pooler("adapool", dim=16, bias=True).eval()
        inside = served(x, mask)
    with torch.no_grad():
        outside = served(x, mask)
    torch.testing.assert_close(outside, inside)
    plain = pw.get_pooler("adapool", dim=16).eval()
    with torch.no_grad():
        ref = plain(x, mask)
    with torch.inference_mode():
        torch.testing.assert_close(plain(x, mask), ref)
