r"""Cross-attention of a few queries over the tokens, in two equivalent forms.

With queries :math:`q_m` and tokens :math:`x_i`, head :math:`h` computes

.. math::
    a_{mhi} = \operatorname{softmax}_i\big(s\,(W_Q^h q_m)^\top (W_K^h x_i + b_K^h)\big),\qquad
    o_{mh} = \sum_i a_{mhi}\,(W_V^h x_i + b_V^h).

* **folded** (default when there are few queries): the key projection moves onto the query,
  :math:`u_{mh} = s\,{W_K^h}^\top W_Q^h q_m`, so scores are :math:`u_{mh}^\top x_i` (the key
  bias adds a constant per query and cancels in the softmax), and the value projection is
  applied after the weighted sum, :math:`o_{mh} = W_V^h \sum_i a_{mhi} x_i + b_V^h` (the
  weights sum to 1). Cost per token :math:`O(M H D)` instead of :math:`O(D^2)`, and no
  ``(B, N, D)`` key or value tensor is built.
* **standard**: project every token to keys and values, then attend. Easier to read; used
  when :math:`M H > D`, and in tests as the reference.

Padding gets ``finfo.min`` scores (never ``-inf``), so an all-padding row yields uniform
weights rather than NaN; the pooler's empty policy decides what such a row returns.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .dispatch import kernel_mask
from .functional import Segments, dense_weighted_sum, masked_softmax, segment_weighted_sum


def folded_attention(
    x: Tensor, mask: Tensor | None, q: Tensor, k_proj: nn.Linear, v_proj: nn.Linear,
    num_heads: int, scale: float, dropout: float = 0.0, training: bool = False,
    seg: Segments | None = None, kernel: Any | None = None,
) -> tuple[Tensor, Tensor | None]:
    """``x`` ``(B, N, D)``, ``q`` ``(B or 1, M, D)`` already multiplied by ``W_Q``.

    Returns the concatenated head outputs ``(B, M, D)`` (before the output projection) and
    the attention weights ``(B, M, H, N)`` in fp32. With ``seg`` (eager CPU inference) and a
    single query head the weighted sum reads only the real tokens; with the compiled
    ``kernel`` (from :func:`~poolwise.pooling.dispatch.route`), scores, softmax and weighted
    sums run over the real tokens only and the weights are None."""
    b, n, d = x.shape
    m = q.shape[1]
    hd = d // num_heads
    qh = q.reshape(q.shape[0], m, num_heads, hd)
    u = torch.einsum("bmhe,hed->bmhd", qh, k_proj.weight.view(num_heads, hd, d))
    if kernel is not None and (dropout == 0 or not training):
        # in place while u is in cache (the kernel runs without autograd); the kernel reads u
        # in the batched GEMM's layout (heads B * D apart; a view for one query) and writes z
        # heads first, the layout the value projection reads: no copies
        u = u.mul_(scale).reshape(q.shape[0], m * num_heads, d).to(x.dtype)
        z = attend_real_tokens(kernel, x, mask, u.expand(b, -1, -1), heads_first=num_heads > 1)
        return _project_values(z.view(b, m, num_heads, d), v_proj, num_heads, hd), None
    u = (u * scale).reshape(q.shape[0], m * num_heads, d).to(x.dtype).contiguous()  # layout matters to MKL
    # scores laid out (B, N, M*H) from a batched GEMV with x as the left operand: the fastest
    # layout for MKL (a single (B*N, D) @ (D, M*H) GEMM is ~3x slower for shared queries)
    scores = torch.bmm(x, u.expand(b, -1, -1).transpose(1, 2))
    attn = masked_softmax(scores, None if mask is None else mask[:, :, None], dim=1)
    weights = F.dropout(attn, dropout, training) if dropout > 0 else attn
    if seg is not None and weights.shape[-1] == 1:  # one weighted sum: read only real tokens
        z = segment_weighted_sum(seg, weights.reshape(-1)[seg.index])[:, None]
    else:  # several: one bmm reads the tokens once for all of them
        z = dense_weighted_sum(x, weights.transpose(1, 2).contiguous())
    out = _project_values(z.view(b, m, num_heads, d), v_proj, num_heads, hd)
    return out, attn.view(b, n, m, num_heads).permute(0, 2, 3, 1)


def _project_values(z: Tensor, v_proj: nn.Linear, num_heads: int, hd: int) -> Tensor:
    """``(B, M, H, D)`` weighted token sums to head outputs ``(B, M, D)``: the value projection."""
    b, m, _, d = z.shape
    out = torch.einsum("bmhd,hed->bmhe", z, v_proj.weight.view(num_heads, hd, d).to(z.dtype))
    out = out.reshape(b, m, d)
    if v_proj.bias is not None:
        out = out + v_proj.bias.to(out.dtype)
    return out


def attend_real_tokens(kernel: Any, x: Tensor, mask: Tensor | None, query: Tensor,
                       heads_first: bool = False) -> Tensor:
    """The compiled single-query attention kernel (every call goes through here): ``query`` ``(B, K, D)``
    scores the real tokens of padded ``x`` ``(B, N, D)`` under ``mask``; returns the
    softmax-weighted token sums ``(B, K, D)``. Each row's tokens are read from memory once, in
    64-token blocks (scores, an online softmax across blocks, then the weighted sums).

    ``query`` is read in place when each of its vectors is contiguous (any row and head
    strides, an expanded one included); ``heads_first`` returns a view of a ``(K, B, D)``
    tensor."""
    if query.stride(-1) != 1:
        query = query.contiguous()
    return kernel.attend_masked(x.contiguous(), kernel_mask(x, mask), query, heads_first=heads_first)


def standard_attention(
    x: Tensor, mask: Tensor | None, q: Tensor, k_proj: nn.Linear, v_proj: nn.Linear,
    num_heads: int, scale: float, dropout: float = 0.0, training: bool = False,
) -> tuple[Tensor, Tensor]:
    """Same contract as :func:`folded_attention`, with per-token keys and values."""
    b, n, d = x.shape
    m = q.shape[1]
    hd = d // num_heads
    k = k_proj(x).view(b, n, num_heads, hd).transpose(1, 2)  # (B, H, N, hd)
    v = v_proj(x).view(b, n, num_heads, hd).transpose(1, 2)
    qh = q.expand(b, -1, -1).reshape(b, m, num_heads, hd).transpose(1, 2)  # (B, H, M, hd)
    scores = torch.matmul(qh, k.transpose(-1, -2)) * scale  # (B, H, M, N)
    attn = masked_softmax(scores, None if mask is None else mask[:, None, None, :])
    weights = F.dropout(attn, dropout, training) if dropout > 0 else attn
    out = torch.matmul(weights.to(v.dtype), v)  # (B, H, M, hd)
    return out.transpose(1, 2).reshape(b, m, d), attn.transpose(1, 2)


def mlp_block(dim: int, ratio: float, **factory: Any) -> nn.Sequential | None:
    """The pre-norm MLP of attention poolers, ``LN -> Linear(D, ratio*D) -> GELU -> Linear``,
    or None for ``ratio == 0``."""
    if ratio <= 0:
        return None
    hidden = max(1, int(dim * ratio))
    return nn.Sequential(nn.LayerNorm(dim, **factory), nn.Linear(dim, hidden, **factory), nn.GELU(),
                         nn.Linear(hidden, dim, **factory))


def check_heads(dim: int, num_heads: int, who: str) -> None:
    """``ValueError`` naming ``who`` unless ``dim`` is a positive int and ``num_heads`` divides it."""
    if not isinstance(dim, int) or isinstance(dim, bool) or dim <= 0:
        raise ValueError(f"{who}: dim must be a positive int (the token feature size D); got {dim!r}")
    if not isinstance(num_heads, int) or isinstance(num_heads, bool) or num_heads <= 0 or dim % num_heads:
        raise ValueError(f"{who}: num_heads must be a positive divisor of dim={dim}; got {num_heads!r}")
