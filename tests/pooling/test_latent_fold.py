"""latent_attention without its MLP projects after the mean: same result as per token."""

import pytest
import torch
import torch.nn.functional as F

import poolwise as pw


def test_folded_output_projection_equals_the_per_token_form():
    torch.manual_seed(0)
    pool = pw.get_pooler("latent_attention", dim=8, num_latents=5, num_heads=2, mlp_ratio=0.0)
    with torch.no_grad():
        pool.out_proj.bias.normal_()
    x = torch.randn(3, 6, 8)
    mask = torch.tensor([[1, 1, 1, 0, 0, 0], [0, 1, 1, 1, 1, 1], [1, 0, 1, 0, 1, 0]]).bool()
    b, n, d = x.shape
    q = pool.q_proj(pool.norm_x(x)).view(b, n, 2, 4).transpose(1, 2)
    k, v = pool.kv_proj(pool.norm_latents(pool.latents)).chunk(2, dim=-1)
    k, v = (t.view(1, -1, 2, 4).transpose(1, 2).expand(b, -1, -1, -1) for t in (k, v))
    tokens = x + pool.out_proj(F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(b, n, d))
    expected = (tokens * mask[..., None]).sum(1) / mask.sum(1, keepdim=True)
    torch.testing.assert_close(pool(x, mask), expected, atol=1e-5, rtol=1e-5)
    empty = pool(x, torch.zeros(3, 6, dtype=torch.bool))
    assert (empty == 0).all()  # the projection's bias does not leak into empty rows


def _per_token(pool, x, mask):
    """latent_attention by its definition: every token through the block, then the mean."""
    tokens = x + pool.out_proj(pool._attend(x))
    m = mask[..., None].to(x.dtype)
    return (tokens * m).sum(1) / m.sum(1).clamp(min=1)


@pytest.mark.parametrize("frozen", [False, True])
def test_folded_queries_give_the_definition_and_its_gradients_in_float64(frozen):
    """Output and every gradient equal the definition's; ``frozen``: features that need no
    gradient (the studies' case, where the fold skips the LayerNorm's backward pass)."""
    torch.manual_seed(1)
    pool = pw.get_pooler("latent_attention", dim=12, num_latents=7, num_heads=3, mlp_ratio=0.0).double()
    with torch.no_grad():
        for p in pool.parameters():
            p.add_(0.3 * torch.randn_like(p))  # move LayerNorm affines and biases off their init
    x = torch.randn(4, 9, 12, dtype=torch.float64, requires_grad=not frozen)
    mask = torch.rand(4, 9) > 0.3
    mask[:, 0] = True
    g = torch.randn(4, 12, dtype=torch.float64)
    grads = []
    for fn in (lambda: pool(x, mask), lambda: _per_token(pool, x, mask)):
        pool.zero_grad()
        x.grad = None
        out = fn()
        (out * g).sum().backward()
        x_grad = None if frozen else x.grad.clone()
        grads.append((out.detach(), x_grad, [p.grad.clone() for p in pool.parameters()]))
    (a, ax, ap), (b, bx, bp) = grads
    torch.testing.assert_close(a, b, atol=1e-12, rtol=1e-10)
    if not frozen:
        torch.testing.assert_close(ax, bx, atol=1e-12, rtol=1e-10)
    for pa, pb in zip(ap, bp):
        torch.testing.assert_close(pa, pb, atol=1e-12, rtol=1e-10)


def test_folded_dense_and_packed_routes_agree():
    """Eager CPU packs the real tokens; the dense route (what torch.compile traces) pools the
    padded batch under the mask: same values either way."""
    torch.manual_seed(2)
    pool = pw.get_pooler("latent_attention", dim=8, num_latents=4, num_heads=2, mlp_ratio=0.0)
    x = torch.randn(3, 6, 8)
    mask = torch.tensor([[1, 1, 0, 0, 0, 0], [1, 1, 1, 1, 1, 1], [0, 0, 1, 1, 1, 0]]).bool()
    packed = pool(x, mask)
    dense = pool._pool_folded(x, lambda t: (t * mask[..., None]).sum(1) / mask.sum(1, keepdim=True))
    torch.testing.assert_close(packed, dense, atol=1e-6, rtol=1e-5)
    half = pool.to(torch.bfloat16)(x.bfloat16(), mask)
    assert half.dtype == torch.bfloat16
    torch.testing.assert_close(half.float(), packed, atol=5e-2, rtol=5e-2)


def test_the_fold_is_used_only_where_it_costs_less_and_both_forms_agree():
    wide = pw.get_pooler("latent_attention", dim=384, num_latents=64, num_heads=4, mlp_ratio=0.0)
    narrow = pw.get_pooler("latent_attention", dim=64, num_latents=64, num_heads=4, mlp_ratio=0.0)
    with_mlp = pw.get_pooler("latent_attention", dim=384, num_latents=64, num_heads=4)
    assert wide._fold and not narrow._fold and not with_mlp._fold
    x = torch.randn(2, 5, 64)
    mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 0, 0, 0]]).bool()
    torch.testing.assert_close(narrow(x, mask), narrow._pool_folded(x[mask], lambda t: torch.stack(
        [t[:5].mean(0), t[5:].mean(0)])), atol=1e-5, rtol=1e-5)
