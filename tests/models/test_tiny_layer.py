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


@pytest.mark.parametrize("d,h,ff,n", [(3, 3, 12, 32), (8, 8, 32, 7), (6, 6, 24, 50), (4, 2, 8, 5),
                                      (8, 2, 16, 1)])
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


def test_fused_dropout_applies_its_mask_forward_and_backward():
    torch.manual_seed(0)
    layer = PreLNLayer(3, 3, 12, dropout=0.5).train()
    x = torch.randn(4, 6, 3, requires_grad=True)
    torch.manual_seed(1)
    seed = int(torch.randint(0, 2**31 - 1, (1,)).item())   # what fused_layer draws
    torch.manual_seed(1)
    y = layer(x)
    g = torch.randn_like(y)
    y.backward(g)
    mask = tiny_layer.dropout_mask(tuple(x.shape), 0.5, seed)
    assert set(mask.unique().tolist()) == {0.0, 2.0}
    # the reference: the op-by-op layer with that mask on the feed-forward output
    xr = x.detach().clone().requires_grad_(True)
    h = layer.norm1(xr)
    b, n, d = xr.shape
    q, k, v = layer.qkv(h).view(b, n, 3, 3, 1).permute(2, 0, 3, 1, 4)
    att = torch.nn.functional.scaled_dot_product_attention(q, k, v)
    x1 = xr + layer.proj(att.transpose(1, 2).reshape(b, n, d))
    ref = x1 + layer.fc2(torch.nn.functional.gelu(layer.fc1(layer.norm2(x1)))) * mask
    torch.testing.assert_close(y, ref, atol=1e-5, rtol=1e-5)
    ref.backward(g)
    torch.testing.assert_close(x.grad, xr.grad, atol=1e-5, rtol=1e-4)


def test_fused_dropout_rate_and_seeding():
    m = tiny_layer.dropout_mask((64, 32, 8), 0.1, 12345)
    assert abs(float((m == 0).float().mean()) - 0.1) < 0.01
    assert torch.equal(m, tiny_layer.dropout_mask((64, 32, 8), 0.1, 12345))
    assert not torch.equal(m, tiny_layer.dropout_mask((64, 32, 8), 0.1, 12346))
    layer = PreLNLayer(3, 3, 12, dropout=0.1).train()
    x = torch.randn(8, 5, 3)
    torch.manual_seed(3)
    a = layer(x)
    torch.manual_seed(3)
    assert torch.equal(a, layer(x))


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
