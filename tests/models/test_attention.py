import os

import pytest
import torch
import torch.nn.functional as F

from poolwise.models import PreLNEncoder
from poolwise.models import attention as attn_mod
from poolwise.models.attention import attention, kernel, kernel_error


def test_kernel_builds_on_this_machine():
    if os.environ.get("POOLWISE_NO_EXT"):
        pytest.skip("kernel disabled by POOLWISE_NO_EXT")
    assert kernel() is not None, kernel_error()


@pytest.mark.parametrize("shape", [(3, 2, 7, 2), (4, 8, 128, 2), (2, 3, 50, 4), (1, 1, 1, 2), (2, 4, 129, 1)])
def test_kernel_matches_sdpa_forward_and_backward(shape):
    if kernel() is None:
        pytest.skip(f"kernel unavailable: {kernel_error()}")
    gen = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(*shape, generator=gen).mul(2).requires_grad_() for _ in range(3))
    grad = torch.randn(*shape, generator=gen)
    out = attention(q, k, v)
    out.backward(grad)
    mine = [t.grad.clone() for t in (q, k, v)]
    for t in (q, k, v):
        t.grad = None
    ref = F.scaled_dot_product_attention(q, k, v)
    ref.backward(grad)
    torch.testing.assert_close(out, ref, atol=2e-5, rtol=1e-4)
    for a, t in zip(mine, (q, k, v)):
        torch.testing.assert_close(a, t.grad, atol=1e-4, rtol=1e-3)


def test_large_logits_stay_finite():
    if kernel() is None:
        pytest.skip(f"kernel unavailable: {kernel_error()}")
    q, k, v = (torch.randn(2, 2, 16, 2) * 100 for _ in range(3))
    out = attention(q, k, v)
    assert torch.isfinite(out).all()
    torch.testing.assert_close(out, F.scaled_dot_product_attention(q, k, v), atol=1e-3, rtol=1e-3)


def test_falls_back_to_sdpa_when_unavailable(monkeypatch):
    from poolwise import _ext

    monkeypatch.setattr(_ext, "_loaded", {})
    monkeypatch.setattr(_ext, "_errors", {"poolwise_small_head_attention": "no compiler"})
    q, k, v = (torch.randn(2, 2, 5, 2) for _ in range(3))
    assert torch.equal(attention(q, k, v), F.scaled_dot_product_attention(q, k, v))
    assert kernel_error() == "no compiler"


def test_wide_heads_and_other_dtypes_use_sdpa():
    q = torch.randn(1, 1, 4, 8)
    assert not attn_mod.use_kernel(q)
    assert not attn_mod.use_kernel(torch.randn(1, 1, 4, 2, dtype=torch.float64))
    assert torch.equal(attention(q, q, q), F.scaled_dot_product_attention(q, q, q))


def test_encoder_is_the_same_with_and_without_the_kernel():
    torch.manual_seed(0)
    enc = PreLNEncoder(16, depth=2, num_heads=8, ffn_dim=32)
    x = torch.randn(3, 20, 16)
    a = enc(x)
    for layer in enc.layers:
        layer.use_small_kernel = False
    torch.testing.assert_close(a, enc(x), atol=1e-5, rtol=1e-4)
