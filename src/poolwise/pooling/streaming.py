r"""Pooling in chunks: a mergeable state per row, for token outputs that never sit in memory
at once (long documents encoded window by window, streams).

    state = pooler.init_state(batch=B, dim=D)
    for x_chunk, mask_chunk in chunks:          # (B, n_i, D) and (B, n_i), in token order
        pooler.update(state, x_chunk, mask_chunk)
    y = pooler.finalize(state)                  # equals pooler(cat(chunks), cat(masks))

What each pooler keeps (fp32, one row each):

* ``sum``, ``mean``, ``mean_sqrt_len``: :math:`\sum_i x_i` and the count :math:`n`;
  ``weighted_mean`` also :math:`\sum_i i\,x_i` (ranks counted over all chunks).
* ``max``, ``min``: the running extremes.
* ``first``: the first real token seen; ``last``: the latest.
* ``softmax``: the online softmax of Milakov & Gimelshein (2018) per feature: the running
  maximum score :math:`m`, :math:`l = \sum_i e^{t x_i - m}` and
  :math:`a = \sum_i e^{t x_i - m} x_i`, rescaled when :math:`m` grows; :math:`y = a / l`.

* ``attention``: an online softmax per learned query and head, then the output projection
  and the MLP block.
* ``adapool``: two passes, because its query comes from the whole input. The first finds
  the query (:func:`adapool_query`: the mean, or the i-th real token for ``i >= 0``, or the
  mean of such tokens); the second runs an online softmax per head with it:
  ``state = pooler.init_state(B, D, query=q)``. :func:`pool_chunks` does both when given a
  re-iterable sequence of chunks. Negative indices and callable queries need every token at
  once and are refused, as is training with attention dropout (not reproducible in chunks).

The result equals one-shot pooling up to fp32 rounding (sums are added in another order).
``gem`` shifts by each row's minimum and maximum, so it would need two passes too; the other
learned poolers have no state here yet. :func:`mergeable` says which poolers have one.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import torch
from torch import Tensor

from .adapool import AdaPool
from .attention import AttentionPooling
from .base import Pooler
from .basic import (
    FirstPooling,
    LastPooling,
    MaxPooling,
    MeanPooling,
    MeanSqrtLenPooling,
    MinPooling,
    SumPooling,
    WeightedMeanPooling,
)
from .softmax import SoftmaxPooling

_SUMS = (SumPooling, MeanPooling, MeanSqrtLenPooling, WeightedMeanPooling)
_KINDS = (*_SUMS, MaxPooling, MinPooling, FirstPooling, LastPooling, SoftmaxPooling, AdaPool,
          AttentionPooling)
_WHY_NOT = {"gem": "it shifts by each row's minimum and maximum, known only after every chunk "
                   "(two passes)"}


@dataclass
class PoolState:
    """The running state of :meth:`Pooler.update`: fp32 tensors per row, the number of real
    tokens seen per row, and the dtype of the first chunk (the output's dtype)."""

    batch: int
    dim: int
    count: Tensor
    tensors: dict[str, Tensor] = field(default_factory=dict)
    dtype: torch.dtype | None = None


def _adapool_problem(pooler: AdaPool) -> str | None:
    q = pooler.query
    if callable(q) and q != "mean":
        return "its query is a callable of the whole input"
    if (isinstance(q, int) and q < 0) or (isinstance(q, list) and min(q) < 0):
        return "a negative query index counts from the last token, known only at the end"
    if pooler.training and pooler.dropout > 0:
        return "attention dropout in training mode cannot be reproduced in chunks (use eval())"
    return None


def mergeable(pooler: Pooler) -> bool:
    """Whether ``pooler`` can pool in chunks (exact types: a subclass may change the math).
    AdaPool can with the ``"mean"`` query or non-negative token indices, in two passes."""
    if isinstance(pooler, AdaPool) and type(pooler) is AdaPool:
        return _adapool_problem(pooler) is None
    return type(pooler) in _KINDS


def _check(pooler: Pooler) -> None:
    if not mergeable(pooler):
        why = _WHY_NOT.get(pooler.name, "it has no mergeable state yet")
        if type(pooler) is AdaPool:
            why = _adapool_problem(pooler) or why
        raise TypeError(f"{type(pooler).__name__} cannot pool in chunks: {why}; pool the "
                        "concatenated tokens instead")


def adapool_query(pooler: AdaPool, chunks: Iterable[tuple[Tensor, Tensor | None]]) -> Tensor:
    """AdaPool's first pass: its query ``(B, D)`` from the chunks (the mean of the real tokens,
    or the mean of the real tokens at the query's non-negative ranks)."""
    _check(pooler)
    ranks = None if pooler.query == "mean" else ([pooler.query] if isinstance(pooler.query, int)
                                                 else list(pooler.query))
    total, found, seen = None, None, None
    for x, mask in chunks:
        x, keep = pooler._prepare(x, mask)
        if keep is None:
            keep = torch.ones(x.shape[:2], dtype=torch.bool, device=x.device)
        if total is None:
            total = torch.zeros(x.shape[0], x.shape[2], device=x.device)
            found = torch.zeros(x.shape[0], dtype=torch.long, device=x.device)
            seen = torch.zeros(x.shape[0], dtype=torch.long, device=x.device)
        xf = x.float()
        if ranks is None:
            total += (xf * keep[..., None]).sum(1)
            found += keep.sum(1)
        else:
            rank = seen[:, None] + keep.cumsum(1) - 1  # 0-based rank of each real token
            for r in ranks:
                hit = keep & (rank == r)
                total += (xf * hit[..., None]).sum(1)
                found += hit.sum(1)
        seen += keep.sum(1)
    if total is None:
        raise ValueError("adapool_query got no chunk")
    if ranks is not None:
        short = (found < len(ranks)) & (seen > 0)
        if bool(short.any()):
            rows = short.nonzero().squeeze(1)[:5].tolist()
            raise ValueError(f"AdaPool: query index {pooler.query} does not exist in row(s) {rows}, which "
                             f"have {seen[rows].tolist()} real tokens")
    return (total / found.clamp_min(1)[:, None]).to(x.dtype)


def init_state(self: Pooler, batch: int, dim: int, device: torch.device | str | None = None,
               query: Tensor | None = None) -> PoolState:
    """An empty state for ``batch`` rows of ``dim`` features (see :mod:`~poolwise.pooling.streaming`);
    AdaPool also needs its ``query`` ``(batch, dim)`` from :func:`adapool_query`."""
    _check(self)
    if not (isinstance(batch, int) and batch >= 0 and isinstance(dim, int) and dim >= 1):
        raise ValueError(f"init_state needs batch >= 0 and dim >= 1 (ints); got batch={batch!r}, dim={dim!r}")
    zeros = torch.zeros(batch, dim, device=device)
    state = PoolState(batch, dim, torch.zeros(batch, dtype=torch.long, device=device))
    if isinstance(self, _SUMS):
        state.tensors = {"sum": zeros.clone(), "ranked": zeros.clone()}
    elif isinstance(self, (MaxPooling, MinPooling)):
        start = -torch.inf if isinstance(self, MaxPooling) else torch.inf
        state.tensors = {"ext": torch.full_like(zeros, start)}
    elif isinstance(self, (FirstPooling, LastPooling)):
        state.tensors = {"token": zeros.clone()}
    elif isinstance(self, AdaPool):
        if query is None or tuple(query.shape) != (batch, dim):
            raise ValueError(f"AdaPool.init_state needs query=(batch, dim) = ({batch}, {dim}) from "
                             "adapool_query (the first pass); got "
                             f"{None if query is None else tuple(query.shape)}")
        state.tensors = {"query": query, **_attention_state(self.q_proj(query)[:, None], self.num_heads)}
    elif isinstance(self, AttentionPooling):
        q = self.q_proj(self.queries)[None].expand(batch, -1, -1)
        state.tensors = _attention_state(q.to(device) if device is not None else q, self.num_heads)
    else:  # softmax
        state.tensors = {"m": torch.full_like(zeros, -torch.inf), "l": zeros.clone(), "acc": zeros.clone()}
    return state


def update(self: Pooler, state: PoolState, x: Tensor, mask: Tensor | None = None) -> PoolState:
    """Add the next chunk ``x`` ``(B, n, D)`` (tokens in order, any padding given by
    ``mask``) to ``state``; returns the same state."""
    _check(self)
    x, keep = self._prepare(x, mask)
    if x.shape[0] != state.batch or x.shape[2] != state.dim:
        raise ValueError(f"{type(self).__name__}.update: chunk of shape {tuple(x.shape)} does not fit a "
                         f"state of batch={state.batch}, dim={state.dim}")
    if keep is None:
        keep = torch.ones(x.shape[:2], dtype=torch.bool, device=x.device)
    state.dtype = state.dtype or x.dtype
    xf, k = x.float(), keep[..., None]
    t = state.tensors
    seen = keep.sum(1)
    if isinstance(self, _SUMS):
        t["sum"] += (xf * k).sum(1)
        if isinstance(self, WeightedMeanPooling):
            rank = (state.count[:, None] + keep.cumsum(1)).float()[..., None]
            t["ranked"] += (xf * k * rank).sum(1)
    elif isinstance(self, MaxPooling):
        t["ext"] = torch.maximum(t["ext"], xf.masked_fill(~k, -torch.inf).amax(1))
    elif isinstance(self, MinPooling):
        t["ext"] = torch.minimum(t["ext"], xf.masked_fill(~k, torch.inf).amin(1))
    elif isinstance(self, (FirstPooling, LastPooling)):
        pos = torch.arange(x.shape[1], device=x.device)
        if isinstance(self, FirstPooling):
            idx = torch.where(keep, pos, x.shape[1]).amin(1).clamp_max(x.shape[1] - 1)
            take = (state.count == 0) & (seen > 0)
        else:
            idx = torch.where(keep, pos, -1).amax(1).clamp_min(0)
            take = seen > 0
        token = xf[torch.arange(x.shape[0], device=x.device), idx]
        t["token"] = torch.where(take[:, None], token, t["token"])
    elif isinstance(self, (AdaPool, AttentionPooling)):  # scores (B, M, H, n), values (B, n, H, hd)
        b, n, d = x.shape
        h = self.num_heads
        keys = self.k_proj(x).float().view(b, n, h, d // h)
        values = self.v_proj(x).float().view(b, n, h, d // h)
        scores = torch.einsum("bmhe,bnhe->bmhn", t["qh"], keys) * self.scaling
        _online_softmax(t, scores.masked_fill(~keep[:, None, None, :], -torch.inf), values, axis=3)
    else:  # softmax: per feature, the scores are the temperature-scaled inputs
        scores = (xf * self.temperature.float()).masked_fill(~k, -torch.inf)
        _online_softmax(t, scores, xf, axis=1)
    state.count += seen
    return state


def _attention_state(q: Tensor, num_heads: int) -> dict[str, Tensor]:
    """Running online-softmax state for projected queries ``q`` ``(B, M, D)``."""
    b, m, d = q.shape
    zeros = torch.zeros(b, m, num_heads, device=q.device)
    return {"qh": q.float().reshape(b, m, num_heads, d // num_heads), "m": torch.full_like(zeros, -torch.inf),
            "l": zeros.clone(), "acc": torch.zeros(b, m, num_heads, d // num_heads, device=q.device)}


def _online_softmax(t: dict[str, Tensor], scores: Tensor, values: Tensor, axis: int) -> None:
    """Fold a chunk into the running ``m`` (max score), ``l`` (sum of weights) and ``acc``
    (weighted sum of values), rescaled to the new maximum; -inf scores weigh nothing.
    Features: ``scores`` and ``values`` ``(B, n, D)``; attention: ``(B, M, H, n)`` scores and
    ``(B, n, H, hd)`` values."""
    m_new = torch.maximum(t["m"], scores.amax(axis))
    finite = torch.isfinite(m_new)
    safe = torch.where(finite, m_new, 0.0)
    scale = torch.where(finite, torch.exp(t["m"] - safe), 0.0)
    w = torch.exp(scores - safe.unsqueeze(axis))
    t["l"] = t["l"] * scale + w.sum(axis)
    if w.ndim == 4:  # attention
        t["acc"] = t["acc"] * scale[..., None] + torch.einsum("bmhn,bnhe->bmhe", w, values)
    else:
        t["acc"] = t["acc"] * scale + (w * values).sum(axis)
    t["m"] = m_new


def finalize(self: Pooler, state: PoolState) -> Tensor:
    """The pooled ``(B, D)`` output of every chunk added to ``state``, with the pooler's
    empty-row policy for rows that saw no real token."""
    _check(self)
    t, n = state.tensors, state.count.float()[:, None]
    empty = state.count == 0
    if isinstance(self, SumPooling):
        out = t["sum"]
    elif isinstance(self, MeanPooling):
        out = t["sum"] / n.clamp_min(1)
    elif isinstance(self, MeanSqrtLenPooling):
        out = t["sum"] / n.clamp_min(1).sqrt()
    elif isinstance(self, WeightedMeanPooling):
        out = t["ranked"] / (n * (n + 1) / 2).clamp_min(1)
    elif isinstance(self, (MaxPooling, MinPooling)):
        out = torch.where(empty[:, None], 0.0, t["ext"])
    elif isinstance(self, (FirstPooling, LastPooling)):
        out = t["token"]
    elif isinstance(self, (AdaPool, AttentionPooling)):
        z = t["acc"] / t["l"].clamp_min(torch.finfo(torch.float32).tiny)[..., None]
        z = z.reshape(state.batch, -1, state.dim).to(self.out_proj.weight.dtype)  # (B, M, D)
        out = self.out_proj(z)
        if isinstance(self, AdaPool):
            out = out[:, 0].float() + t["query"].float() if self.residual else out[:, 0].float()
        else:
            if self.mlp is not None:
                out = out + self.mlp(out)
            out = out[:, 0] if self.num_queries == 1 else (out.flatten(1) if self.flatten else out)
    else:
        out = t["acc"] / t["l"].clamp_min(torch.finfo(torch.float32).tiny)
    return self._apply_empty(out.to(state.dtype or torch.float32), empty)


def pool_chunks(pooler: Pooler, chunks: Iterable[tuple[Tensor, Tensor | None]]) -> Tensor:
    """Pool ``(x, mask)`` chunks of the same rows, in token order, with one state (AdaPool:
    two passes, so ``chunks`` must be a sequence that can be read twice)."""
    query = None
    if isinstance(pooler, AdaPool):
        if not isinstance(chunks, (list, tuple)):
            raise TypeError("AdaPool reads the chunks twice (query, then attention): pass a list")
        query = adapool_query(pooler, chunks)
    state = None
    for x, mask in chunks:
        if state is None:
            state = pooler.init_state(x.shape[0], x.shape[-1], device=x.device, query=query)
        pooler.update(state, x, mask)
    if state is None:
        raise ValueError("pool_chunks got no chunk")
    return pooler.finalize(state)


Pooler.init_state = init_state  # type: ignore[attr-defined]
Pooler.update = update  # type: ignore[attr-defined]
Pooler.finalize = finalize  # type: ignore[attr-defined]
