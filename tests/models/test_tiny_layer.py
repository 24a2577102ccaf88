"""The fused tiny-width layer computes the same function as PreLNLayer's op-by-op path,
forward and backward, and is used only where it applies."""

import pytest
import torch

from poolwise.models import tiny_layer
from poolwise.models.encoder import PreLNEncoder, PreLNLayer

pytestmark = pytest.mark.skipif(tiny_layer.kernel() is None, reason="the C++ kernel could not be built here")


def _pair(layer, x, g):
    """Output and gradients of ``layer`` fused and op-by-op on the same input."""
    out = []
    for fused in (True, False):
        layer.use_fused = fused
        xi = x.clone().requires_grad_(True)
        layer.zero_grad()
        y = layer(xi)
        y.backward(g)
        out.append((y.detach(), xi.grad, [p.grad.clone() for p in layer.parameters()]))
    layer.use_fused = True
    return out


@pytest.mark.parametrize("d,h,ff,n", [(3, 3, 12, 32), (8, 8, 32, 7), (6, 6, 24, 50), (4, 2, 8, 5), (8, 2, 16, 1)])
def test_fused_layer_matches_the_op_by_op_path(d, h, ff, n):
    torch.manual_seed(d * 100 + n)
    layer = PreLNLayer(d, h, ff).eval()
    for p in layer.parameters():
        torch.nn.init.normal_(p, std=0.4)
    x = torch.randn(5, n, d) * 2
    assert tiny_layer.can_fuse(layer, x)
    (y1, dx1, dp1), (y2, dx2, dp2) = _pair(layer, x, torch.randn(5, n, d))
    torch.testing.assert_close(y1, y2, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(dx1, dx2, atol=1e-5, rtol=1e-4)
    for a, b in zip(dp1, dp2):
        torch.testing.assert_close(a, b, atol=5e-5, rtol=1e-4)


def test_fused_dropout_applies_its_mask_to_the_feed_forward_output():
    torch.manual_seed(0)
    layer = PreLNLayer(3, 3, 12, dropout=0.5).train()
    x = torch.randn(4, 6, 3)
    torch.manual_seed(1)
    y = layer(x)
    torch.manual_seed(1)
    mask = torch.empty_like(x).bernoulli_(0.5).div_(0.5)   # the mask fused_layer draws
    layer.eval()
    layer.use_fused = False
    h = layer.norm1(x)
    b, n, d = x.shape
    q, k, v = layer.qkv(h).view(b, n, 3, 3, 1).permute(2, 0, 3, 1, 4)
    att = torch.nn.functional.scaled_dot_product_attention(q, k, v)
    x1 = x + layer.proj(att.transpose(1, 2).reshape(b, n, d))
    ffn = layer.fc2(torch.nn.functional.gelu(layer.fc1(layer.norm2(x1))))
    torch.testing.assert_close(y, x1 + ffn * mask, atol=1e-5, rtol=1e-5)
    assert (mask == 0).any()


def test_fused_path_is_used_only_where_it_applies():
    x = torch.randn(2, 4, 8)
    assert tiny_layer.can_fuse(PreLNLayer(8, 8, 16), x)
    assert not tiny_layer.can_fuse(PreLNLayer(16, 8, 16), torch.randn(2, 4, 16))       # too wide
    assert not tiny_layer.can_fuse(PreLNLayer(8, 8, 16), x.double())                    # float64
    assert not tiny_layer.can_fuse(PreLNLayer(8, 8, 16, attn_dropout=0.1).train(), x)  # attention dropout
    assert tiny_layer.can_fuse(PreLNLayer(8, 8, 16, attn_dropout=0.1).eval(), x)
    off = PreLNLayer(8, 8, 16)
    off.use_fused = False
    assert not tiny_layer.can_fuse(off, x)


def test_fused_encoder_trains_like_the_op_by_op_one():
    """A few Adam steps on the same data land on the same weights (float32 tolerance)."""
    torch.manual_seed(0)
    a = PreLNEncoder(3, 3, 3, 12, init_std=0.2)
    b = PreLNEncoder(3, 3, 3, 12, init_std=0.2)
    b.load_state_dict(a.state_dict())
    for layer in b.layers:
        layer.use_fused = False
    x, target = torch.randn(64, 10, 3), torch.randn(64, 10, 3)
    for enc in (a, b):
        opt = torch.optim.Adam(enc.parameters(), 1e-2)
        for _ in range(5):
            opt.zero_grad()
            torch.nn.functional.mse_loss(enc(x), target).backward()
            opt.step()
    for p, q in zip(a.parameters(), b.parameters()):
        torch.testing.assert_close(p, q, atol=1e-4, rtol=1e-4)
