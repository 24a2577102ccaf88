"""AdaPool: cross-attention pooling with a query taken from the input."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .attention_core import attend_real_tokens, check_heads, folded_attention, standard_attention
from .base import Pooler
from .dispatch import is_compiling, route
from .functional import Segments, counts, gather_tokens, keep_mask, masked_mean, nth_real_index
from .registry import register
from .validation import check_dim, check_flag, check_float, check_weight_dtype

Query = str | int | list[int] | Callable[[Tensor, Tensor], Tensor]


@register("adapool")
class AdaPool(Pooler):
    r"""Adaptive pooling (Brothers, *Robust Noise Attenuation via Adaptive Pooling of
    Transformer Outputs*, ICML 2025): multi-head cross-attention whose single query is
    derived from the input set, so the weights can follow the signal in each sample.

    .. math::
        q = \phi(X),\quad
        a_{hi} = \operatorname{softmax}_i\!\big(s\,(W_Q^h q)^\top W_K^h x_i\big),\quad
        y = W_O \big\Vert_h \textstyle\sum_i a_{hi} W_V^h x_i \;[+\, q]

    The query :math:`\phi(X)` is the mean of the real tokens (``query="mean"``), one token
    (an ``int``: the i-th *real* token, negative counts from the last), the mean of several
    tokens (a list of ints), or ``callable(x, mask) -> (B, D)``. As in the paper's code the
    residual :math:`+q` is added only for a single-token query, projections are bias-free by
    default, and the scale is :math:`s = 1/\sqrt{D}` (``scale="dim"``, the released code) or
    :math:`1/\sqrt{D/H}` (``scale="head_dim"``, the code of the paper's kNN runs).
    Average pooling is the special case :math:`W_Q = 0`, :math:`W_V = W_O = I`.

    Computed in folded form (see :mod:`~poolwise.pooling.attention_core`): the token set is
    read twice and no per-token key or value is built; ``folded=False`` uses the textbook form
    (same function, per-token keys and values; a computation choice, so not part of
    :meth:`config`).

    Args:
        dim (int): token feature size :math:`D`.
        num_heads (int): attention heads; must divide ``dim``. (default: ``1``)
        query: ``"mean"``, an int, a list of ints or a callable. (default: ``"mean"``)
        scale (str or float): ``"dim"``, ``"head_dim"`` or a number. (default: ``"dim"``)
        bias (bool): biases in the projections. (default: ``False``)
        dropout (float): dropout on attention weights while training. (default: ``0.0``)
        empty (str): policy for rows with no real token. (default: ``"zero"``)
        folded (bool): compute in folded form. (default: ``True``)
    """

    config_keys = ("dim", "num_heads", "query", "scale", "bias", "dropout", "empty")
    has_weights = True

    def __init__(
        self, dim: int, num_heads: int = 1, query: Query = "mean", scale: str | float = "dim",
        bias: bool = False, dropout: float = 0.0, *, empty: str = "zero", folded: bool = True,
        device: torch.device | str | None = None, dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__(empty=empty)
        check_heads(dim, num_heads, "AdaPool")
        self.dim, self.num_heads = dim, num_heads
        self.bias = check_flag(bias, "bias", "AdaPool")
        self.dropout = check_float(dropout, "dropout", "AdaPool", 0.0, 1.0, high_open=True)
        self.query = _check_query(query)
        self.scale = scale
        self.scaling = _scaling(scale, dim, num_heads)
        self.residual = isinstance(query, int)
        self.is_set_function = query == "mean"
        self.folded = check_flag(folded, "folded", "AdaPool")
        dd = {"device": device, "dtype": dtype}
        self.q_proj = nn.Linear(dim, dim, bias=bias, **dd)
        self.k_proj = nn.Linear(dim, dim, bias=bias, **dd)
        self.v_proj = nn.Linear(dim, dim, bias=bias, **dd)
        self.out_proj = nn.Linear(dim, dim, bias=bias, **dd)

    def reset_parameters(self) -> None:
        for lin in (self.q_proj, self.k_proj, self.v_proj, self.out_proj):
            lin.reset_parameters()

    def _check_input(self, x: Tensor) -> None:
        check_dim(x, self.dim, type(self).__name__)
        check_weight_dtype(x, self.q_proj.weight, type(self).__name__)

    def _folded_weights(self, kernel: Any | None = None) -> tuple[Tensor, Tensor, Tensor, Tensor | None]:
        r"""One head, inference: scores :math:`u^\top x_i` with :math:`u = A q + a`,
        :math:`A = s W_K^\top W_Q`, :math:`a = s W_K^\top b_Q` (the key bias cancels in the
        softmax), and output :math:`W_O W_V z + (W_O b_V + b_O)`.

        Cached, keyed on a fingerprint of the live weights: :math:`W r` for a fixed random
        :math:`r` and every bias, compared exactly. Version counters would not do: edits
        through ``.data`` (EMA teachers) do not move them, and inference tensors have none.
        Any non-adversarial change of a weight changes :math:`W r`. With the compiled
        ``kernel`` the four products run on every thread at memory speed (0.3-0.5 ms at D=768
        on 2 cores, against 1 ms for ``torch.mv``, which runs on one)."""
        lins = (self.q_proj, self.k_proj, self.v_proj, self.out_proj)
        wq, wk, wv, wo = (lin.weight for lin in lins)
        with torch.no_grad():
            probe = _probe_vector(self.dim, wq.dtype, wq.device)
            mv = torch.mv if kernel is None or wq.dtype != torch.float32 else kernel.row_dots
            marks = [mv(w, probe) for w in (wq, wk, wv, wo)]
            marks += [lin.bias for lin in lins if lin.bias is not None]
            cached = self.__dict__.get("_folded_cache")
            if (cached is not None and cached[0] == self.scaling and len(cached[1]) == len(marks)
                    and all(torch.equal(old, new) for old, new in zip(cached[1], marks))):
                return cached[2]
            bq, bv, bo = self.q_proj.bias, self.v_proj.bias, self.out_proj.bias
            a = (self.scaling * (wk.t() @ wq)).contiguous()
            a_bias = self.scaling * (wk.t() @ bq) if bq is not None else torch.zeros_like(wq[0])
            w_out = (wo @ wv).contiguous()
            b_out = None
            if bv is not None or bo is not None:
                b_out = (wo @ bv if bv is not None else 0) + (bo if bo is not None else 0)
            folded = (a, a_bias.contiguous(), w_out, b_out)
            self.__dict__["_folded_cache"] = (self.scaling, [m.clone() for m in marks], folded)
        return folded

    def compute_query(self, x: Tensor, mask: Tensor | None, seg: Segments | None = None) -> Tensor:
        """The query vector :math:`\\phi(X)` ``(B, D)`` for padded input."""
        q = self.query
        if q == "mean":
            return masked_mean(x, mask, seg)
        if callable(q):
            out = q(x, keep_mask(x, mask))
            if not isinstance(out, Tensor) or out.shape != (x.shape[0], x.shape[2]):
                got = tuple(out.shape) if isinstance(out, Tensor) else type(out).__name__
                raise ValueError(f"AdaPool: the query callable must return (B, D) = "
                                 f"{(x.shape[0], x.shape[2])}; got {got}")
            return out
        indices = [q] if isinstance(q, int) else q
        tokens = [self._token(x, mask, i) for i in indices]
        return tokens[0] if len(tokens) == 1 else torch.stack(tokens).mean(0)

    def _token(self, x: Tensor, mask: Tensor | None, i: int) -> Tensor:
        n = x.shape[1]
        if mask is None:
            if not -n <= i < n:
                raise ValueError(f"AdaPool: query index {i} is out of range for {n} tokens")
            return x[:, i]
        cnt = counts(mask)
        target = torch.full_like(cnt, i) if i >= 0 else cnt + i
        if not is_compiling():
            bad = ((target < 0) | (target >= cnt)) & (cnt > 0)
            if bool(bad.any()):
                rows = bad.nonzero().squeeze(1)[:5].tolist()
                raise ValueError(
                    f"AdaPool: query index {i} does not exist in row(s) {rows}, which have "
                    f"{cnt[rows].tolist()} real tokens"
                )
        return gather_tokens(x, nth_real_index(mask, target))

    def attention_weights(self, x: Tensor, mask: Tensor | None = None) -> Tensor | None:
        """Attention weights ``(B, H, N)`` over the tokens (zero on padding), in fp32."""
        x, keep = self._prepare(x, mask)
        with torch.no_grad():
            q = self.compute_query(x, keep)
            _, attn = standard_attention(x, keep, self.q_proj(q)[:, None], self.k_proj,
                                         self.v_proj, self.num_heads, self.scaling)
        return attn[:, 0]

    def _pool_fused(self, x: Tensor, mask: Tensor | None) -> Tensor | None:
        """The compiled path when it leaves an empty row zero by itself: without biases and
        residual, an empty row's weighted sum (zero) maps to zero, so the forward pass needs
        no empty-row pass after it (a quarter of a millisecond at (64, 512, 768))."""
        if self.bias or self.residual or not self.folded:
            return None
        kernel = self._route(x).kernel
        return None if kernel is None else self._pool_kernel(x, mask, kernel)

    def _route(self, x: Tensor) -> Any:
        """The folded form's path; the compiled kernel only where no dropout is drawn."""
        dropout_on = self.training and self.dropout > 0
        return route(x, self.q_proj.weight, self.k_proj.weight, kernel=not dropout_on)

    def _pool(self, x: Tensor, mask: Tensor | None) -> Tensor:
        seg = None
        if self.folded:
            path = self._route(x)
            if path.kernel is not None:  # reads the padded batch itself: no segment view needed
                return self._pool_kernel(x, mask, path.kernel)
            if path.segments:
                seg = Segments.of(x, mask)
        q = self.compute_query(x, mask, seg)
        args = (x, mask, self.q_proj(q)[:, None], self.k_proj, self.v_proj, self.num_heads, self.scaling,
                self.dropout, self.training)
        heads, _ = folded_attention(*args, seg) if self.folded else standard_attention(*args)
        out = self.out_proj(heads[:, 0])
        return out + q if self.residual else out

    def _pool_kernel(self, x: Tensor, mask: Tensor | None, kernel: Any) -> Tensor:
        """Folded attention through the compiled kernel (eager CPU float32, no autograd)."""
        q = self.compute_query(x, mask)
        if self.num_heads == 1:  # two projections instead of four
            a, a_bias, w_out, b_out = self._folded_weights(kernel)
            z = attend_real_tokens(kernel, x, mask, F.linear(q, a, a_bias)[:, None])
            out = F.linear(z[:, 0], w_out, b_out)
        else:
            args = (self.q_proj(q)[:, None], self.k_proj, self.v_proj, self.num_heads, self.scaling)
            heads, _ = folded_attention(x, mask, *args, self.dropout, self.training, None, kernel)
            out = self.out_proj(heads[:, 0])
        return out + q if self.residual else out


_PROBES: dict[tuple[int, torch.dtype, torch.device], Tensor] = {}


def _probe_vector(dim: int, dtype: torch.dtype, device: torch.device) -> Tensor:
    """A fixed random vector per (dim, dtype, device), the weights' fingerprint probe."""
    key = (dim, dtype, device)
    if key not in _PROBES:
        gen = torch.Generator().manual_seed(0x5EED)
        with torch.inference_mode(False), torch.no_grad():
            _PROBES[key] = torch.randn(dim, generator=gen).to(device=device, dtype=dtype)
    return _PROBES[key]


def _check_query(query: object) -> Query:
    if query == "mean" or (isinstance(query, int) and not isinstance(query, bool)) or callable(query):
        return query  # type: ignore[return-value]
    if isinstance(query, (list, tuple)) and query and all(
        isinstance(i, int) and not isinstance(i, bool) for i in query
    ):
        return list(query)
    raise ValueError(
        f"AdaPool: query must be 'mean', a token index (int), a non-empty list of indices or a "
        f"callable(x, mask) -> (B, D); got {query!r}"
    )


def _scaling(scale: object, dim: int, num_heads: int) -> float:
    if scale == "dim":
        return 1.0 / math.sqrt(dim)
    if scale == "head_dim":
        return 1.0 / math.sqrt(dim // num_heads)
    if isinstance(scale, (int, float)) and not isinstance(scale, bool) and scale > 0:
        return float(scale)
    raise ValueError(f"scale must be 'dim', 'head_dim' or a positive number; got {scale!r}")
