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


@pytest.mark.parametrize("shape", [(2, 3, 33, 1), (2, 8, 128, 2), (3, 2, 17, 3), (1, 4, 70, 4), (2, 1, 1, 2)])
def test_self_attention_from_fused_qkv_matches_sdpa_in_float64(shape):
    """The packed path reads (B, N, 3, H, E) and writes (B, N, H*E) through strides; checked
    against SDPA run in float64 on the same values, forward and all three gradients."""
    if kernel() is None:
        pytest.skip(f"kernel unavailable: {kernel_error()}")
    b, h, n, e = shape
    gen = torch.Generator().manual_seed(1)
    qkv = torch.randn(b, n, 3, h, e, generator=gen).mul(2).requires_grad_()
    grad = torch.randn(b, n, h * e, generator=gen)
    out = attn_mod.self_attention(qkv)
    out.backward(grad)
    ref_in = qkv.detach().double().requires_grad_()
    q, k, v = ref_in.permute(2, 0, 3, 1, 4)
    ref = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(b, n, h * e)
    ref.backward(grad.double())
    assert out.shape == (b, n, h * e) and out.dtype == torch.float32
    torch.testing.assert_close(out.double(), ref, atol=2e-6, rtol=1e-5)
    torch.testing.assert_close(qkv.grad.double(), ref_in.grad, atol=2e-5, rtol=1e-4)


def test_self_attention_paths_agree_and_sdpa_takes_what_the_kernel_cannot():
    gen = torch.Generator().manual_seed(2)
    qkv = torch.randn(2, 9, 3, 4, 2, generator=gen)
    kernel_out = attn_mod.self_attention(qkv)
    sdpa_out = attn_mod.self_attention(qkv, use_small_kernel=False)
    torch.testing.assert_close(kernel_out, sdpa_out, atol=2e-6, rtol=1e-5)
    # a non-contiguous qkv (a slice) and a wide head go to SDPA and still give the right values
    strided = torch.randn(2, 9, 3, 4, 4, generator=gen)[..., :2]
    torch.testing.assert_close(attn_mod.self_attention(strided),
                               attn_mod.self_attention(strided.contiguous(), use_small_kernel=False),
                               atol=2e-6, rtol=1e-5)
    wide = torch.randn(1, 5, 3, 2, 8, generator=gen)
    q, k, v = wide.permute(2, 0, 3, 1, 4)
    ref = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(1, 5, 16)
    assert torch.equal(attn_mod.self_attention(wide), ref)


def test_kernel_refuses_head_dimensions_it_has_no_path_for():
    if kernel() is None:
        pytest.skip(f"kernel unavailable: {kernel_error()}")
    with pytest.raises(RuntimeError, match="head dimension must be 1 to 4; got 5"):
        kernel().packed_forward(torch.randn(1, 3, 3, 1, 5), 1.0)
