"""latent_attention without its MLP projects after the mean: same result as per token."""

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
