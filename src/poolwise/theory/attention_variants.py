r"""The two Lipschitz-friendly attention layers behind *Pool Me Wisely*'s Lemmas 4.3 and 4.4, and
the LayerNorm variant its bounds assume, written out so that their bounds can be measured.

* :class:`L2MultiheadAttention` (Kim, Papamakarios & Mnih, ICML 2021): scores are negative
  squared distances with **tied** query and key maps, and the values carry the factor
  :math:`A_h = W_Q^h {W_Q^h}^\top/\sqrt{D/H}`,

  .. math::
      P^h_{ij} = \operatorname{softmax}_j\Big(-\lVert W_Q^h x_i - W_Q^h x_j\rVert^2/\sqrt{D/H}\Big),
      \qquad f^h(X) = P^h X A_h W_V^h,\qquad F(X) = [f^1, \dots, f^H]\,W_O.

  It is Lipschitz on all of :math:`\mathbb R^{N\times D}`, unlike dot-product attention.
* :class:`ScaledCosineAttention` (LipsFormer's scaled cosine-similarity attention, Qi et al.
  2023, without Swin's windows: run it per window and :math:`N` is the window size):
  queries and keys are normalised, :math:`\hat q = q/(\lVert q\rVert + \nabla)`, and
  :math:`\mathrm{SCSA}(X) = \nu\,\operatorname{softmax}(\tau \hat Q \hat K^\top)\,V`.
* :class:`CenterNorm` (LipsFormer): :math:`\gamma \odot \tfrac{D}{D-1}(x - \bar x) + \beta`,
  Lipschitz constant :math:`\tfrac{D}{D-1}\max|\gamma|`: the source of the
  :math:`(d/(d-1))^2` factor of Theorem 4.2 (two norms per block). A standard LayerNorm
  divides by each token's standard deviation and has no global Lipschitz constant.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn


def _check(dim: int, num_heads: int, who: str) -> None:
    if dim < 1 or num_heads < 1 or dim % num_heads:
        raise ValueError(f"{who}: num_heads must be a positive divisor of dim; got dim={dim}, "
                         f"num_heads={num_heads}")


class L2MultiheadAttention(nn.Module):
    """L2 self-attention with tied query/key maps (Kim et al. 2021, eq. for L2-MHA).

    Weights follow the paper's layout: ``w_q`` and ``w_v`` are ``(H, D, D/H)`` (right
    multiplication, ``x^T W``), ``w_o`` is ``(D, D)``. Input ``(B, N, D)``."""

    def __init__(self, dim: int, num_heads: int, *, dtype: torch.dtype | None = None) -> None:
        super().__init__()
        _check(dim, num_heads, "L2MultiheadAttention")
        self.dim, self.num_heads, self.head_dim = dim, num_heads, dim // num_heads
        self.w_q = nn.Parameter(torch.empty(num_heads, dim, self.head_dim, dtype=dtype))
        self.w_v = nn.Parameter(torch.empty(num_heads, dim, self.head_dim, dtype=dtype))
        self.w_o = nn.Parameter(torch.empty(dim, dim, dtype=dtype))
        for w in (self.w_q, self.w_v, self.w_o):
            nn.init.normal_(w, std=dim ** -0.5)

    def forward(self, x: Tensor) -> Tensor:
        scale = math.sqrt(self.head_dim)
        q = torch.einsum("bnd,hde->bhne", x, self.w_q)  # (B, H, N, D/H)
        sq = q.pow(2).sum(-1)
        # -||x_i W - x_j W||^2 / sqrt(D/H), expanded (cdist has no second derivative)
        scores = -(sq[..., :, None] + sq[..., None, :] - 2 * q @ q.transpose(-1, -2)) / scale
        p = torch.softmax(scores, dim=-1)
        a = torch.einsum("hde,hfe->hdf", self.w_q, self.w_q) / scale  # A_h = W_Q W_Q^T / sqrt(D/H)
        heads = torch.einsum("bhij,bjd,hdf,hfe->bhie", p, x, a, self.w_v)  # P X A_h W_V
        return heads.transpose(1, 2).reshape(x.shape[0], x.shape[1], self.dim) @ self.w_o


class ScaledCosineAttention(nn.Module):
    """LipsFormer's scaled cosine-similarity self-attention (no windows, no bias).

    Args:
        tau: softmax scale of the cosine scores (they lie in ``[-tau, tau]``).
        nu: output scale.
        eps: the :math:`\\nabla` added to the norms (keeps the normalisation Lipschitz).
    """

    def __init__(self, dim: int, num_heads: int, tau: float = 10.0, nu: float = 1.0, eps: float = 1.0,
                 *, dtype: torch.dtype | None = None) -> None:
        super().__init__()
        _check(dim, num_heads, "ScaledCosineAttention")
        if not (tau > 0 and nu > 0 and eps > 0):
            raise ValueError(f"ScaledCosineAttention: tau, nu and eps must be > 0; got {tau}, {nu}, {eps}")
        self.dim, self.num_heads, self.head_dim = dim, num_heads, dim // num_heads
        self.tau, self.nu, self.eps = float(tau), float(nu), float(eps)
        self.q = nn.Linear(dim, dim, bias=False, dtype=dtype)
        self.k = nn.Linear(dim, dim, bias=False, dtype=dtype)
        self.v = nn.Linear(dim, dim, bias=False, dtype=dtype)
        self.o = nn.Linear(dim, dim, bias=False, dtype=dtype)

    def _heads(self, t: Tensor) -> Tensor:
        b, n, _ = t.shape
        return t.view(b, n, self.num_heads, self.head_dim).transpose(1, 2)

    def forward(self, x: Tensor) -> Tensor:
        q, k, v = (self._heads(f(x)) for f in (self.q, self.k, self.v))
        q = q / (q.norm(dim=-1, keepdim=True) + self.eps)
        k = k / (k.norm(dim=-1, keepdim=True) + self.eps)
        p = torch.softmax(self.tau * q @ k.transpose(-1, -2), dim=-1)
        out = self.nu * (p @ v)
        return self.o(out.transpose(1, 2).reshape(x.shape))


class CenterNorm(nn.Module):
    """LipsFormer's CenterNorm: :math:`\\gamma \\odot \\frac{D}{D-1}(x - \\bar x) + \\beta`."""

    def __init__(self, dim: int, *, dtype: torch.dtype | None = None) -> None:
        super().__init__()
        if dim < 2:
            raise ValueError(f"CenterNorm needs dim >= 2; got {dim}")
        self.weight = nn.Parameter(torch.ones(dim, dtype=dtype))
        self.bias = nn.Parameter(torch.zeros(dim, dtype=dtype))

    def forward(self, x: Tensor) -> Tensor:
        d = x.shape[-1]
        return self.weight * (d / (d - 1)) * (x - x.mean(-1, keepdim=True)) + self.bias
