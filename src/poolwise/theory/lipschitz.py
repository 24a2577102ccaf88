r"""Lipschitz constants of attention layers on a bounded domain: the :math:`C_1, C_2` of
*Pool Me Wisely*'s Theorem 4.2 estimated from a layer's weights, and the empirical ratio to
hold them against. The paper's exact constants were lost in our copy; the bound below is our
derivation, for inputs whose tokens all have norm at most :math:`B`.

For one head with :math:`s_{ij} = (W_Q x_i + b_q)^\top (W_K x_j + b_k)/\sqrt{d_h}`,
:math:`A = W_Q^\top W_K/\sqrt{d_h}` and values :math:`W_V x_j + b_v`, the softmax Jacobian
:math:`\operatorname{diag}(p) - pp^\top` gives, in Frobenius norm over the token matrix,

.. math::
    L_h \le \sqrt n\,\lVert W_V\rVert \big(1 + 2B(g + g')\big),\quad
    g = \lVert A\rVert B + \lVert W_Q^\top b_k\rVert/\sqrt{d_h},\quad
    g' = \lVert A\rVert B + \lVert W_K^\top b_q\rVert/\sqrt{d_h},

and :math:`\mathrm{Lip}(\mathrm{MHA}) \le \lVert W_O\rVert\sqrt{\sum_h L_h^2}`. Dot-product
attention has no global Lipschitz constant (Kim et al., ICML 2021), hence the radius
:math:`B`. With residuals, :math:`C_1 = 1 + \mathrm{Lip}(\mathrm{MHA})` and
:math:`C_2 = 1 + \mathrm{Lip}(\sigma)\lVert W_2\rVert\lVert W_1\rVert` (1.13 for GELU).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor, nn

GELU_LIPSCHITZ = 1.1289  # max of d/dx [x * Phi(x)]


def _spec(w: Tensor) -> float:
    return float(torch.linalg.matrix_norm(w.detach().double(), ord=2))


def mha_lipschitz_bound(q_w: Tensor, k_w: Tensor, v_w: Tensor, o_w: Tensor, num_heads: int, n: int,
                        radius: float, q_b: Tensor | None = None, k_b: Tensor | None = None) -> float:
    """Upper bound of :math:`\\lVert \\mathrm{MHA}(X') - \\mathrm{MHA}(X)\\rVert_F /
    \\lVert X' - X\\rVert_F` over token matrices of ``n`` rows with norms at most ``radius``.
    Weights are PyTorch ``Linear`` layouts ``(out, in)``."""
    d = q_w.shape[0]
    hd = d // num_heads
    total = 0.0
    for h in range(num_heads):
        rows = slice(h * hd, (h + 1) * hd)
        wq, wk, wv = (w.detach().double()[rows] for w in (q_w, k_w, v_w))
        a = _spec(wq.T @ wk) / math.sqrt(hd)
        g, g2 = a * radius, a * radius  # bounds of d s_ij / d x_i and d s_ij / d x_j
        if k_b is not None:
            g += float((wq.T @ k_b.detach().double()[rows]).norm()) / math.sqrt(hd)
        if q_b is not None:
            g2 += float((wk.T @ q_b.detach().double()[rows]).norm()) / math.sqrt(hd)
        total += (math.sqrt(n) * _spec(wv) * (1 + 2 * radius * (g + g2))) ** 2
    return _spec(o_w) * math.sqrt(total)


def layer_constants(layer: nn.Module, n: int, radius: float) -> dict[str, float]:
    """Spectral norms and :math:`C_1, C_2` of a ``torch.nn.TransformerEncoderLayer`` or a
    Hugging Face BERT layer (``BertLayer``)."""
    if isinstance(layer, nn.TransformerEncoderLayer):
        attn = layer.self_attn
        d = attn.embed_dim
        w, b = attn.in_proj_weight, attn.in_proj_bias
        q_w, k_w, v_w = w[:d], w[d:2 * d], w[2 * d:]
        q_b, k_b = (b[:d], b[d:2 * d]) if b is not None else (None, None)
        o_w, heads = attn.out_proj.weight, attn.num_heads
        w1, w2 = layer.linear1.weight, layer.linear2.weight
        act = 1.0 if layer.activation_relu_or_gelu == 1 else GELU_LIPSCHITZ
    elif hasattr(layer, "attention") and hasattr(layer, "intermediate"):  # transformers BertLayer
        sa = layer.attention.self
        q_w, k_w, v_w = sa.query.weight, sa.key.weight, sa.value.weight
        q_b, k_b = sa.query.bias, sa.key.bias
        o_w, heads = layer.attention.output.dense.weight, sa.num_attention_heads
        w1, w2 = layer.intermediate.dense.weight, layer.output.dense.weight
        act = GELU_LIPSCHITZ
    else:
        raise TypeError(f"layer_constants supports nn.TransformerEncoderLayer and BERT layers; "
                        f"got {type(layer).__name__}")
    lip_mha = mha_lipschitz_bound(q_w, k_w, v_w, o_w, heads, n, radius, q_b, k_b)
    return {
        "W_Q": _spec(q_w), "W_K": _spec(k_w), "W_V": _spec(v_w), "W_O": _spec(o_w),
        "W_ffn_1": _spec(w1), "W_ffn_2": _spec(w2), "lip_mha": lip_mha,
        "C1": 1 + lip_mha, "C2": 1 + act * _spec(w1) * _spec(w2),
    }


def empirical_lipschitz(f: Callable[[Tensor], Tensor], x: Tensor, epsilon: float, samples: int = 16,
                        seed: int = 0) -> float:
    """Largest observed :math:`\\lVert f(X+\\delta) - f(X)\\rVert_F / \\lVert\\delta\\rVert_F`
    over random :math:`\\delta` with :math:`\\lVert\\delta\\rVert_F = \\epsilon` (per sample in
    the batch ``x`` of shape ``(B, n, d)``)."""
    gen = torch.Generator().manual_seed(seed)
    best = 0.0
    with torch.no_grad():
        base = f(x)
        for _ in range(samples):
            delta = torch.randn(x.shape, generator=gen, dtype=x.dtype)
            delta = epsilon * delta / delta.flatten(1).norm(dim=1)[:, None, None]
            ratio = (f(x + delta) - base).flatten(1).norm(dim=1) / epsilon
            best = max(best, float(ratio.max()))
    return best
