r"""Pooling as vector quantisation (Brothers, *Robust Noise Attenuation via Adaptive Pooling of
Transformer Outputs*, ICML 2025).

A row holds real tokens :math:`x_1..x_n \in \mathbb R^D`; a subset :math:`S`, :math:`|S| = k`,
is signal and the rest noise, so :math:`\mathrm{SNR} = k/n`. The signal loss of a pooled vector
:math:`c` is the mean squared error to the signal vectors (averaged over features too),

.. math::
    L(c) = \frac{1}{kD}\sum_{i\in S}\lVert x_i - c\rVert^2
         = \underbrace{\frac{1}{kD}\sum_{i\in S}\lVert x_i - c^*\rVert^2}_{\text{spread}}
           + \frac{1}{D}\lVert c - c^*\rVert^2,

with :math:`c^*` the signal centroid, the signal-optimal pool. Every closed form below follows
from this bias-variance identity. The bounds on attention weights are our derivation (the
paper's Theorem 3.12 constants were not available to us); see
:func:`attention_weight_bounds`.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from ..pooling import MaxPooling, MeanPooling
from ..pooling.functional import keep_mask

_MEAN, _MAX = MeanPooling(), MaxPooling()


def _check(x: Tensor, signal_mask: Tensor, mask: Tensor | None = None) -> tuple[Tensor, Tensor]:
    if x.dim() != 3:
        raise ValueError(f"x must be (B, N, D); got shape {tuple(x.shape)}")
    if signal_mask.shape != x.shape[:2]:
        raise ValueError(f"signal_mask must be (B, N) = {tuple(x.shape[:2])}; got {tuple(signal_mask.shape)}")
    keep = torch.ones_like(signal_mask, dtype=torch.bool) if mask is None else mask.bool()
    signal = signal_mask.bool() & keep
    if not bool(signal.any(1).all()):
        rows = (~signal.any(1)).nonzero().squeeze(1)[:5].tolist()
        raise ValueError(f"rows {rows} have no signal token; the signal loss is undefined there")
    return signal, keep


def snr(signal_mask: Tensor, mask: Tensor | None = None) -> Tensor:
    """Signal-to-noise ratio :math:`k/n` per row (``mask``: the real tokens, default all)."""
    keep = torch.ones_like(signal_mask, dtype=torch.bool) if mask is None else mask.bool()
    n = keep.sum(1).clamp_min(1)
    return (signal_mask.bool() & keep).sum(1) / n


def optimal_pool(x: Tensor, signal_mask: Tensor, mask: Tensor | None = None) -> Tensor:
    """The signal centroid :math:`c^*` ``(B, D)``: the pool with the lowest signal loss."""
    signal, _ = _check(x, signal_mask, mask)
    return _MEAN(x, signal)


def signal_loss(x: Tensor, signal_mask: Tensor, pooled: Tensor, mask: Tensor | None = None) -> Tensor:
    """:math:`L(c)` per row ``(B,)``: mean over signal vectors and features of ``(x_s - c)^2``."""
    signal, _ = _check(x, signal_mask, mask)
    if pooled.shape != (x.shape[0], x.shape[2]):
        raise ValueError(f"pooled must be (B, D) = {(x.shape[0], x.shape[2])}; got {tuple(pooled.shape)}")
    sq = ((x.double() - pooled.double()[:, None]) ** 2).mean(-1)  # (B, N)
    return ((sq * signal).sum(1) / signal.sum(1)).to(x.dtype)


def signal_spread(x: Tensor, signal_mask: Tensor, mask: Tensor | None = None) -> Tensor:
    """The irreducible part of the signal loss: :math:`L(c^*)`."""
    return signal_loss(x, signal_mask, optimal_pool(x, signal_mask, mask), mask)


def mean_pool_signal_loss(x: Tensor, signal_mask: Tensor, mask: Tensor | None = None) -> Tensor:
    r"""Closed form for AvgPool. With :math:`s = k/n` and the noise centroid :math:`c_\eta`,
    the mean is :math:`s c^* + (1-s) c_\eta`, so

    .. math:: L_{avg} = \text{spread} + \frac{(1-s)^2}{D}\lVert c_\eta - c^*\rVert^2 ,

    which grows as the SNR falls unless noise and signal share a centroid. Rows without
    noise give the spread."""
    signal, keep = _check(x, signal_mask, mask)
    s = snr(signal, keep).double()
    noise = keep & ~signal
    c_star = optimal_pool(x, signal, keep).double()
    c_noise = _MEAN(x, noise).double()  # zeros for rows without noise; (1-s) = 0 there
    gap = ((c_noise - c_star) ** 2).sum(-1) / x.shape[-1]
    return (signal_spread(x, signal, keep).double() + (1 - s) ** 2 * gap).to(x.dtype)


def max_pool_signal_loss(x: Tensor, signal_mask: Tensor, mask: Tensor | None = None) -> Tensor:
    r"""Closed form for MaxPool: :math:`L_{max} = \text{spread} + \frac1D\lVert m - c^*\rVert^2`
    with :math:`m` the feature-wise max over the real tokens. It is optimal only when one
    signal token holds every feature's maximum (``k = 1``); each added signal token moves
    :math:`c^*` away from the max."""
    signal, keep = _check(x, signal_mask, mask)
    c_star = optimal_pool(x, signal, keep).double()
    top = _MAX(x, keep).double()
    gap = ((top - c_star) ** 2).sum(-1) / x.shape[-1]
    return (signal_spread(x, signal, keep).double() + gap).to(x.dtype)


def attention_weight_bounds(k: int, n: int, eps_signal: float, margin: float) -> dict[str, float]:
    r"""Bounds on softmax weights when the ``k`` signal scores lie in an interval of width
    :math:`\epsilon_s` and every noise score is at least :math:`M` below every signal score
    (our derivation, in the spirit of the paper's Theorem 3.12):

    .. math::
        \frac{1}{k e^{\epsilon_s} + (n-k) e^{-M}} \le w_i \le \frac{e^{\epsilon_s}}{k}
        \quad (i \in S), \qquad 0 \le w_j \le \frac{e^{-M}}{k} \quad (j \notin S).

    So the error to the optimal weights :math:`w^* = 1/k` on signal and 0 on noise vanishes as
    :math:`\epsilon_s \to 0` and :math:`M \to \infty`."""
    if not 1 <= k <= n:
        raise ValueError(f"need 1 <= k <= n; got k={k}, n={n}")
    if eps_signal < 0:
        raise ValueError(f"eps_signal must be >= 0; got {eps_signal}")
    return {
        "signal_low": 1.0 / (k * math.exp(eps_signal) + (n - k) * math.exp(-margin)),
        "signal_high": math.exp(eps_signal) / k,
        "noise_low": 0.0,
        "noise_high": math.exp(-margin) / k,
    }


def check_attention_weights(scores: Tensor, signal_mask: Tensor, weights: Tensor | None = None,
                            tol: float = 1e-6) -> list[dict[str, float | bool]]:
    """Measure :math:`\\epsilon_s` and :math:`M` on real attention ``scores`` ``(B, N)`` and
    check the weights (``softmax(scores)`` unless given) against
    :func:`attention_weight_bounds`, row by row."""
    w = torch.softmax(scores.double(), -1) if weights is None else weights.double()
    out = []
    for b in range(scores.shape[0]):
        sig = signal_mask[b].bool()
        s_sig, s_noise = scores[b][sig].double(), scores[b][~sig].double()
        eps = float(s_sig.max() - s_sig.min())
        margin = float(s_sig.min() - s_noise.max()) if s_noise.numel() else math.inf
        bound = attention_weight_bounds(int(sig.sum()), scores.shape[1], eps, margin)
        ws, wn = w[b][sig], w[b][~sig]
        ok = bool((ws >= bound["signal_low"] - tol).all() and (ws <= bound["signal_high"] + tol).all()
                  and (wn <= bound["noise_high"] + tol).all())
        out.append({"eps_signal": eps, "margin": margin, "holds": ok, **bound})
    return out


def check_adapool_weights(pool: Any, x: Tensor, signal_mask: Tensor, mask: Tensor | None = None,
                          tol: float = 1e-6) -> list[dict[str, float | bool | int]]:
    """:func:`check_attention_weights` on an actual :class:`~poolwise.pooling.AdaPool`: its
    per-head scores and softmax weights over the real tokens of each row of ``x``."""
    keep = keep_mask(x, None if mask is None else mask.bool())
    out = []
    with torch.no_grad():
        q = pool.q_proj(pool.compute_query(x, keep))  # (B, D)
        k = pool.k_proj(x)  # (B, N, D)
        b, n, d = x.shape
        h, hd = pool.num_heads, d // pool.num_heads
        scores = torch.einsum("bhe,bnhe->bhn", q.view(b, h, hd), k.view(b, n, h, hd)) * pool.scaling
        for row in range(b):
            real = keep[row]
            sig = signal_mask[row].bool()[real]
            if not bool(sig.any()):
                raise ValueError(f"row {row} has no real signal token")
            for head in range(h):
                s = scores[row, head][real]
                (res,) = check_attention_weights(s[None], sig[None], torch.softmax(s.double(), -1)[None], tol)
                out.append({"row": row, "head": head, **res})
    return out
