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
    Hugging Face BERT layer (``BertLayer``), and ``norm="layernorm"``: both use standard
    LayerNorm, for which Theorem 4.2's CenterNorm factor is not a valid bound (pass it to
    :func:`~poolwise.theory.expressivity_bound` as ``norm=``)."""
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
        # standard LayerNorm: expressivity_bound needs its constant on the inputs (norm_lipschitz)
        "norm": "layernorm",
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


def lambert_w0(x: float) -> float:
    """Principal branch of the Lambert W function for ``x >= 0`` (Newton's method)."""
    if x < 0:
        raise ValueError(f"lambert_w0 needs x >= 0; got {x}")
    w = math.log1p(x)  # a start above the root for x >= 0; Newton then converges monotonically
    for _ in range(100):
        step = (w * math.exp(w) - x) / (math.exp(w) * (w + 1))
        w -= step
        if abs(step) < 1e-15 * max(1.0, w):
            break
    return w


def l2_mha_lipschitz_bound(layer: nn.Module, n: int) -> float:
    """*Pool Me Wisely* Lemma 4.3's attention term: Kim et al.'s (ICML 2021, Theorem 3.2)
    bound on the 2-norm Lipschitz constant of L2 multi-head attention
    (:class:`~poolwise.theory.attention_variants.L2MultiheadAttention`) over all of
    :math:`\\mathbb R^{N\\times D}`,

    .. math::
        \\frac{\\sqrt N}{\\sqrt{D/H}}\\big(4 W_0(N/e) + 1\\big)
        \\sqrt{\\textstyle\\sum_h \\lVert W_Q^h\\rVert^2 \\lVert W_V^h\\rVert^2}\\;\\lVert W_O\\rVert,

    with :math:`W_0(N/e) = \\phi^{-1}(N-1)`, :math:`\\phi(x) = x e^{x+1}`. It grows as
    :math:`\\sqrt N \\log N`: the price of tied query and key maps is that it holds for every
    input, where dot-product attention needs a bounded domain."""
    if n < 1:
        raise ValueError(f"n must be >= 1; got {n}")
    heads = sum(_spec(wq) ** 2 * _spec(wv) ** 2 for wq, wv in zip(layer.w_q, layer.w_v))
    return (math.sqrt(n) / math.sqrt(layer.head_dim) * (4 * lambert_w0(n / math.e) + 1)
            * math.sqrt(heads) * _spec(layer.w_o))


def scsa_lipschitz_bound(layer: nn.Module, n: int, radius: float) -> float:
    """*Pool Me Wisely* Lemma 4.4's attention term, our derivation (LipsFormer's appendix H.2
    is not in our copy): a bound on the Frobenius-norm Lipschitz constant of scaled cosine
    attention (:class:`~poolwise.theory.attention_variants.ScaledCosineAttention`) over ``n``
    tokens (a window) of norm at most ``radius``. Per head,

    .. math::
        L_h \\le \\nu\\sqrt n\\,\\lVert W_V^h\\rVert\\Big(1 + \\frac{\\tau R\\sqrt n\\,
        (\\lVert W_Q^h\\rVert + \\lVert W_K^h\\rVert)}{2\\nabla}\\Big):

    :math:`\\lVert P\\rVert_2 \\le \\sqrt n` for the value path; the normalisation
    :math:`q \\mapsto q/(\\lVert q\\rVert+\\nabla)` is :math:`1/\\nabla`-Lipschitz with
    outputs of norm below 1, so each score moves by at most
    :math:`\\tau(\\lVert\\delta\\hat q_i\\rVert + \\lVert\\delta\\hat k_j\\rVert)`; the softmax
    Jacobian :math:`\\operatorname{diag}(p) - pp^\\top` has norm at most 1/2 (Popoviciu);
    values have Frobenius norm at most :math:`\\sqrt n\\lVert W_V^h\\rVert R`. Heads combine
    as :math:`\\lVert W_O\\rVert\\sqrt{\\sum_h L_h^2}`. The scores are bounded whatever the
    input, so only the value path needs the radius."""
    if n < 1 or radius < 0:
        raise ValueError(f"need n >= 1 and radius >= 0; got n={n}, radius={radius}")
    e = layer.head_dim
    total = 0.0
    for h in range(layer.num_heads):
        rows = slice(h * e, (h + 1) * e)
        wq, wk, wv = (m.weight[rows] for m in (layer.q, layer.k, layer.v))
        scores = layer.tau * radius * math.sqrt(n) * (_spec(wq) + _spec(wk)) / (2 * layer.eps)
        total += (layer.nu * math.sqrt(n) * _spec(wv) * (1 + scores)) ** 2
    return _spec(layer.o.weight) * math.sqrt(total)


def local_lipschitz(f: Callable[[Tensor], Tensor], x: Tensor) -> Tensor:
    """Spectral norm of the Jacobian of ``f`` at one token matrix ``x`` ``(N, D)`` (``f`` maps
    ``(1, N, D)`` batches): the Frobenius-norm Lipschitz constant of ``f`` near ``x``, which
    every valid bound must exceed at every ``x`` in its domain. Differentiable in ``x`` when
    ``x`` requires grad (so tests can search for the worst input by gradient ascent); small
    shapes only."""
    jac = torch.autograd.functional.jacobian(lambda t: f(t[None])[0], x, create_graph=x.requires_grad,
                                             vectorize=True)
    return torch.linalg.matrix_norm(jac.reshape(jac.shape[0] * jac.shape[1], -1), ord=2)
