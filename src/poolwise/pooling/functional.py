"""The masked-reduce core shared by every pooler.

Public reductions over the real tokens of each row: :func:`masked_sum`, :func:`masked_mean`,
:func:`masked_max`, :func:`masked_min` (padded ``(B, N, D)`` + keep-mask) and their packed
twins (``(T, D)`` + ``cu_seqlens``), plus the mask helpers every pooler uses. Each reduction
has a **segment** and a **dense** implementation (see :mod:`~poolwise.pooling.dispatch`, which
chooses); both give the same numbers. Padding values must be finite; apart from that they
never influence a result.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from .dispatch import gpu_reduce, real_token_kernel, route

#: weight of a real token from its row's real-token count and its 1-based rank (both in the
#: accumulation dtype: fp32, or fp64 for double input)
WeightFn = Callable[[Tensor, Tensor], Tensor]


def at_least_fp32(t: Tensor) -> Tensor:
    """``t`` in float32, or float64 when it already is (half precision computes in fp32;
    double precision is not rounded down)."""
    return t if t.dtype == torch.float64 else t.float()


def _acc_dtype(x: Tensor) -> torch.dtype:
    """The dtype sums over ``x``'s tokens accumulate in: fp32, fp64 for double input."""
    return torch.float64 if x.dtype == torch.float64 else torch.float32


# --------------------------------------------------------------------------- masks
def keep_mask(x: Tensor, mask: Tensor | None) -> Tensor:
    """``mask``, or an all-real bool mask ``(B, N)`` when it is None."""
    if mask is not None:
        return mask
    return torch.ones(x.shape[:2], dtype=torch.bool, device=x.device)


def packs_fewer_tokens(x: Tensor, mask: Tensor | None) -> bool:
    """Whether gathering the real tokens of ``x`` under ``mask`` saves work: eager mode (the
    packed shape depends on the data) and at least one padding token. Without padding the
    gather would only copy the batch (6 MB a training step of the frozen studies)."""
    return mask is not None and route(x).eager and not bool(mask.all())


def cu_offsets(cu_seqlens: Tensor, device: torch.device) -> Tensor:
    """Packed offsets ``(B+1,)`` as int64 on ``device`` (the one conversion every caller uses)."""
    return cu_seqlens.to(device=device, dtype=torch.int64)


def cu_seqlens_of(mask: Tensor) -> Tensor:
    """Offsets ``(B+1,)`` of the real tokens of a keep-mask once packed by ``x[mask]``."""
    cnt = counts(mask)
    return torch.cat([cnt.new_zeros(1), cnt.cumsum(0)])


def counts(mask: Tensor) -> Tensor:
    """Number of real tokens per row, as int64 ``(B,)``."""
    return mask.sum(1)


def ranks(mask: Tensor) -> Tensor:
    """1-based rank of each real token among the real tokens of its row; 0 on padding.

    Counting real tokens (not absolute positions) makes left and right padding, and holes,
    give the same ranks.
    """
    return torch.cumsum(mask, 1, dtype=torch.int64) * mask


def first_index(mask: Tensor) -> Tensor:
    """Index of the first real token per row (0 for an empty row)."""
    return mask.to(torch.uint8).argmax(1)


def last_index(mask: Tensor) -> Tensor:
    """Index of the last real token per row (0 for an empty row)."""
    pos = torch.arange(mask.shape[1], device=mask.device)
    return torch.where(mask, pos, -1).amax(1).clamp_min(0)


def gather_tokens(x: Tensor, index: Tensor) -> Tensor:
    """``x[b, index[b]]`` for every row: ``(B, N, D), (B,) -> (B, D)``; reads B*D values."""
    rows = torch.arange(x.shape[0], device=x.device)
    return x[rows, index]


def nth_real_index(mask: Tensor, n: Tensor) -> Tensor:
    """Padded position of the ``n[b]``-th real token (0-based) of each row.

    Rows where that token does not exist give 0; callers validate ``n`` against the counts.
    """
    hit = (ranks(mask) - 1 == n[:, None]) & mask
    return hit.to(torch.uint8).argmax(1)


# ----------------------------------------------------------------- segment view
@dataclass
class Segments:
    """Real tokens of a batch addressed in a flat ``(T, D)`` token table.

    ``index`` holds the flat positions of the real tokens, grouped by row in order;
    ``offsets[b]`` is where row ``b`` starts in ``index``; ``row``/``rank`` give each real
    token's row and 1-based rank. ``keep`` is the flat keep-mask of a padded table (None
    when every entry is real: packed input, or padded input without a mask).
    """

    table: Tensor
    index: Tensor
    offsets: Tensor
    counts: Tensor
    row: Tensor
    rank: Tensor
    keep: Tensor | None

    @property
    def num_rows(self) -> int:
        return self.counts.shape[0]

    @classmethod
    def from_mask(cls, x: Tensor, mask: Tensor) -> Segments:
        b, n, d = x.shape
        flat = mask.reshape(-1)
        index = flat.nonzero().squeeze(1)
        cnt = counts(mask)
        start = torch.cumsum(cnt, 0) - cnt
        row = torch.repeat_interleave(torch.arange(b, device=x.device), cnt)
        rank = ranks(mask).reshape(-1)[index]
        return cls(x.reshape(b * n, d).contiguous(), index, start, cnt, row, rank, flat)

    @classmethod
    def of(cls, x: Tensor, mask: Tensor | None) -> Segments:
        """The view of padded ``x``; without a mask every token is real and the view is
        built by arithmetic (no ``nonzero``/``cumsum`` pass: small policy batches pay for
        ops, not bytes)."""
        if mask is not None:
            return cls.from_mask(x, mask)
        b, n, d = x.shape
        index = torch.arange(b * n, device=x.device)
        start = torch.arange(0, b * n, n, device=x.device) if n else torch.zeros(b, dtype=torch.long,
                                                                                device=x.device)
        cnt = torch.full((b,), n, dtype=torch.long, device=x.device)
        row, rank = (index // n, index % n + 1) if n else (index, index)
        return cls(x.reshape(b * n, d).contiguous(), index, start, cnt, row, rank, None)

    @classmethod
    def from_packed(cls, x: Tensor, cu_seqlens: Tensor) -> Segments:
        cu = cu_offsets(cu_seqlens, x.device)
        cnt = cu[1:] - cu[:-1]
        start = cu[:-1]
        index = torch.arange(x.shape[0], device=x.device)
        row = torch.repeat_interleave(torch.arange(cnt.shape[0], device=x.device), cnt)
        rank = index - start[row] + 1
        return cls(x.contiguous(), index, start, cnt, row, rank, None)

    def spans(self) -> list[tuple[int, int, bool]]:
        """Per row: ``(start, end, contiguous)`` bounds of its real tokens in ``table``;
        ``contiguous`` is False when padding sits between them."""
        cnt = self.counts.tolist()
        if self.keep is None:
            starts = self.offsets.tolist()
            return [(s, s + c, True) for s, c in zip(starts, cnt)]
        if self.index.numel() == 0:
            return [(0, 0, True)] * len(cnt)
        top = self.index.numel() - 1
        first = self.index[self.offsets.clamp(0, top)].tolist()
        last = self.index[(self.offsets + self.counts - 1).clamp(0, top)].tolist()
        return [(f, e + 1, c == e + 1 - f) if c else (0, 0, True) for f, e, c in zip(first, last, cnt)]


def segment_weighted_sum(seg: Segments, token_weight: Tensor) -> Tensor:
    """``out[b] = sum_i w_i x_i`` over the real tokens of row ``b``; ``token_weight`` is per
    real token (aligned with ``seg.index``). Float32 inference runs the compiled kernel, which
    reads each token as one contiguous stream (about 1.3x faster than ``embedding_bag`` here);
    otherwise ``embedding_bag``, accumulating in fp32."""
    w = token_weight.to(seg.table.dtype)
    kernel = real_token_kernel(seg.table, w)
    if kernel is not None:
        return kernel.weighted_sum(seg.table, seg.index, seg.offsets, seg.counts, w.contiguous())
    return F.embedding_bag(seg.index, seg.table, seg.offsets, mode="sum",
                           per_sample_weights=w)


def segment_extreme(seg: Segments, largest: bool) -> Tensor:
    """Per-row max (``largest``) or min over real tokens; 0 for an empty row."""
    table = seg.table
    reduce = torch.amax if largest else torch.amin
    fill = torch.finfo(table.dtype).min if largest else torch.finfo(table.dtype).max
    rows = []
    for s, e, contiguous in seg.spans():
        if e <= s:
            rows.append(table[:0].sum(0))  # zeros that stay attached to the graph
        elif contiguous:
            rows.append(reduce(table[s:e], 0))
        else:  # holes inside the span: mask only this row's slice
            assert seg.keep is not None
            part = table[s:e].masked_fill(~seg.keep[s:e, None], fill)
            rows.append(reduce(part, 0))
    if not rows:
        return table.new_zeros(0, table.shape[1])
    return torch.stack(rows)


# ------------------------------------------------------------------ dense path
def dense_weighted_sum(x: Tensor, weight: Tensor) -> Tensor:
    """``(B, N, D), (B, N) -> (B, D)`` or ``(B, N, D), (B, H, N) -> (B, H, D)``.

    ``weight`` is zero on padding. Under ``torch.compile`` this is an fp32 multiply-reduce
    that inductor fuses into one pass; in eager mode a ``bmm`` (no temporary)."""
    squeeze = weight.dim() == 2
    w = weight[:, None, :] if squeeze else weight
    if not route(x).eager:
        out = (at_least_fp32(w)[..., None] * at_least_fp32(x)[:, None]).sum(2).to(x.dtype)
    else:
        out = torch.bmm(w.to(x.dtype), x)
    return out.squeeze(1) if squeeze else out


def dense_extreme(x: Tensor, mask: Tensor, largest: bool) -> Tensor:
    """Per-row max (``largest``) or min over the real tokens of ``mask`` (dense kernel)."""
    fill = torch.finfo(x.dtype).min if largest else torch.finfo(x.dtype).max
    masked = torch.where(mask[..., None], x, fill)
    return masked.amax(1) if largest else masked.amin(1)


def masked_softmax(scores: Tensor, mask: Tensor | None, dim: int = -1) -> Tensor:
    """Softmax in fp32 (fp64 for double scores) with padding filled by ``finfo.min`` (not
    ``-inf``), so a fully
    masked row gives uniform weights instead of NaN; the empty policy then decides the
    output. ``mask`` must broadcast against ``scores``."""
    s = at_least_fp32(scores)
    if mask is not None:
        s = s.masked_fill(~mask, torch.finfo(s.dtype).min)
    return torch.softmax(s, dim=dim)


# ----------------------------------------------------------------- packing
def pad_packed(x: Tensor, cu_seqlens: Tensor) -> tuple[Tensor, Tensor]:
    """Packed ``(T, D)`` tokens and offsets ``(B+1,)`` -> padded ``(B, L, D)`` and a
    bool mask ``(B, L)``, right padded with zeros, ``L`` the longest sequence (at least 1)."""
    cu = cu_offsets(cu_seqlens, x.device)
    cnt = cu[1:] - cu[:-1]
    b = cnt.shape[0]
    length = max(int(cnt.max()) if b else 0, 1)
    mask = torch.arange(length, device=x.device)[None, :] < cnt[:, None]
    out = x.new_zeros(b, length, x.shape[1])
    out[mask] = x
    return out, mask


# -------------------------------------------------------------- public reductions
def sum_weight(count: Tensor, rank: Tensor) -> Tensor:
    """:data:`WeightFn` of the sum: 1 for every real token."""
    return torch.ones_like(rank)


def mean_weight(count: Tensor, rank: Tensor) -> Tensor:
    """:data:`WeightFn` of the mean: :math:`1/n`."""
    return torch.ones_like(rank) / count


def weighted_reduce(x: Tensor, mask: Tensor | None, weight: WeightFn, seg: Segments | None = None,
                    kernel_mode: int | None = None) -> Tensor:
    r""":math:`y_b = \sum_i w(n_b, i)\, x_{b,i}` over the real tokens of each row, ``(B, N, D) -> (B, D)``,
    accumulated in fp32. The segment kernel reads only real tokens (``seg`` reuses a view the
    caller already built); otherwise one ``bmm`` with a ``(B, N)`` weight matrix. Without a
    mask every token is real: one weight row serves the batch (no segment view to build, which
    costs more than the sum itself on small inputs such as an RL policy's per-step batch).

    ``kernel_mode`` names ``weight`` for the compiled masked sum (0 sum, 1 mean, 2 sum over
    :math:`\sqrt n`, 3 rank-weighted mean): float32 CPU inference with a mask then runs it,
    walking each row's mask itself (no segment view, no weight vector) and reading every real
    token once as a contiguous stream."""
    acc = _acc_dtype(x)
    if mask is None and seg is None:
        n = x.shape[1]
        count = torch.full((1, 1), float(max(n, 1)), device=x.device, dtype=acc)
        rank = torch.arange(1, n + 1, device=x.device, dtype=acc)[None]
        return dense_weighted_sum(x, weight(count, rank).expand(x.shape[0], n))
    if kernel_mode is not None and seg is None:
        fused = fused_weighted_sum(x, mask, kernel_mode)
        if fused is not None:
            return fused
    if seg is None and route(x).segments:
        seg = Segments.of(x, mask)
    if seg is not None:
        return reduce_segments(seg, weight)
    mask = keep_mask(x, mask)
    count = counts(mask)[:, None].clamp_min(1).to(acc)
    return dense_weighted_sum(x, weight(count, ranks(mask).to(acc)) * mask)


def fused_weighted_sum(x: Tensor, mask: Tensor | None, kernel_mode: int) -> Tensor | None:
    """The one-call masked sum of :func:`weighted_reduce` (``kernel_mode`` 0-3), or None when
    none applies: the Triton kernel for CUDA inference (mask optional), the compiled CPU kernel
    for eager float32 CPU inference with a mask. Empty rows are 0."""
    gpu = gpu_reduce(x)
    if gpu is not None:
        return gpu.masked_reduce(x, mask, kernel_mode)
    if mask is None or not route(x).segments:
        return None
    kernel = real_token_kernel(x)
    if kernel is None:
        return None
    return kernel.masked_sum(x.contiguous(), mask.contiguous(), kernel_mode)


def packed_weighted_sum(x: Tensor, cu_seqlens: Tensor, weight: WeightFn, kernel_mode: int) -> Tensor:
    """:func:`weighted_reduce` of packed tokens ``(T, D)`` split by ``cu_seqlens``: one Triton
    launch for CUDA inference, else the segment kernels."""
    gpu = gpu_reduce(x)
    if gpu is not None:
        return gpu.segment_reduce(x, cu_seqlens, kernel_mode)
    return reduce_segments(Segments.from_packed(x, cu_seqlens), weight)


def reduce_segments(seg: Segments, weight: WeightFn) -> Tensor:
    """:func:`weighted_reduce` on a :class:`Segments` view (padded or packed input)."""
    acc = _acc_dtype(seg.table)
    return segment_weighted_sum(seg, weight(seg.counts[seg.row].to(acc), seg.rank.to(acc)))


def masked_sum(x: Tensor, mask: Tensor | None = None, seg: Segments | None = None) -> Tensor:
    """Sum of the real tokens of each row, ``(B, N, D) -> (B, D)``."""
    return weighted_reduce(x, mask, sum_weight, seg, kernel_mode=0)


def masked_mean(x: Tensor, mask: Tensor | None = None, seg: Segments | None = None) -> Tensor:
    """Mean of the real tokens of each row (0 for an empty row), ``(B, N, D) -> (B, D)``."""
    return weighted_reduce(x, mask, mean_weight, seg, kernel_mode=1)


def masked_extreme(x: Tensor, mask: Tensor | None, largest: bool) -> Tensor:
    """Feature-wise max (``largest``) or min over the real tokens; 0 for an empty row."""
    gpu = gpu_reduce(x)
    if gpu is not None:
        return gpu.masked_reduce(x, mask, "max" if largest else "min")
    if mask is None:
        return x.amax(1) if largest else x.amin(1)
    if route(x).segments:
        return segment_extreme(Segments.from_mask(x, mask), largest)
    return dense_extreme(x, mask, largest)


def masked_max(x: Tensor, mask: Tensor | None = None) -> Tensor:
    """Feature-wise maximum over the real tokens of each row, ``(B, N, D) -> (B, D)``."""
    return masked_extreme(x, mask, largest=True)


def masked_min(x: Tensor, mask: Tensor | None = None) -> Tensor:
    """Feature-wise minimum over the real tokens of each row, ``(B, N, D) -> (B, D)``."""
    return masked_extreme(x, mask, largest=False)


def packed_mean(x: Tensor, cu_seqlens: Tensor) -> Tensor:
    """Mean of each sequence of packed tokens ``(T, D)`` split by ``cu_seqlens`` ``(B+1,)``."""
    return packed_weighted_sum(x, cu_seqlens, mean_weight, 1)
