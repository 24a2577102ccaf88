"""Masked reduction kernels shared by the poolers.

Two interchangeable implementations of every reduction live here:

* **segment** kernels (eager CPU inference): the real tokens are addressed by their flat index and
  reduced with ``embedding_bag`` (weighted sums, fp32 accumulation, reads only real tokens)
  or a per-row loop over contiguous spans (max/min). No ``B x N x D`` temporary is built.
* **dense** kernels (training, ``torch.compile``, other devices): ``bmm`` with a ``(B, N)``
  weight matrix, ``where`` + ``amax``. Inductor fuses these into single passes, and their
  backward passes are cheap.

Both give the same numbers (tests compare them); :func:`use_dense` forces the dense ones.
Padding values must be finite; apart from that they never influence a result.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

_FORCE_DENSE = False


@contextlib.contextmanager
def use_dense(enabled: bool = True) -> Iterator[None]:
    """Force the dense (compile-style) kernels inside the block, e.g. to compare paths."""
    global _FORCE_DENSE
    previous, _FORCE_DENSE = _FORCE_DENSE, enabled
    try:
        yield
    finally:
        _FORCE_DENSE = previous


def is_compiling() -> bool:
    return torch.compiler.is_compiling()


def segment_kernels_apply(x: Tensor, *others: Tensor) -> bool:
    """Segment kernels need data-dependent shapes, so eager mode on CPU only; and they serve
    inference: when autograd tracks ``x`` or ``others`` the dense kernels win, because
    their backward passes are far cheaper than those of ``embedding_bag`` and per-row loops."""
    if _FORCE_DENSE or x.device.type != "cpu" or is_compiling():
        return False
    return not (torch.is_grad_enabled() and any(t.requires_grad for t in (x, *others)))


# --------------------------------------------------------------------------- masks
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
    for packed input, where every entry is real).
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
        offsets = torch.cumsum(cnt, 0) - cnt
        row = torch.repeat_interleave(torch.arange(b, device=x.device), cnt)
        rank = ranks(mask).reshape(-1)[index]
        return cls(x.reshape(b * n, d), index, offsets, cnt, row, rank, flat)

    @classmethod
    def from_packed(cls, x: Tensor, cu_seqlens: Tensor) -> Segments:
        cu = cu_seqlens.to(device=x.device, dtype=torch.int64)
        cnt = cu[1:] - cu[:-1]
        offsets = cu[:-1]
        index = torch.arange(x.shape[0], device=x.device)
        row = torch.repeat_interleave(torch.arange(cnt.shape[0], device=x.device), cnt)
        rank = index - offsets[row] + 1
        return cls(x, index, offsets, cnt, row, rank, None)

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
    real token (aligned with ``seg.index``). Accumulates in fp32 inside ``embedding_bag``."""
    w = token_weight.to(seg.table.dtype)
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
    if is_compiling():
        out = (w.float()[..., None] * x.float()[:, None]).sum(2).to(x.dtype)
    else:
        out = torch.bmm(w.to(x.dtype), x)
    return out.squeeze(1) if squeeze else out


def dense_extreme(x: Tensor, mask: Tensor, largest: bool) -> Tensor:
    fill = torch.finfo(x.dtype).min if largest else torch.finfo(x.dtype).max
    masked = torch.where(mask[..., None], x, fill)
    return masked.amax(1) if largest else masked.amin(1)


def masked_softmax(scores: Tensor, mask: Tensor | None, dim: int = -1) -> Tensor:
    """Softmax in fp32 with padding filled by ``finfo.min`` (not ``-inf``), so a fully
    masked row gives uniform weights instead of NaN; the empty policy then decides the
    output. ``mask`` must broadcast against ``scores``."""
    s = scores.float()
    if mask is not None:
        s = s.masked_fill(~mask, torch.finfo(torch.float32).min)
    return torch.softmax(s, dim=dim)


# ----------------------------------------------------------------- packing
def pad_packed(x: Tensor, cu_seqlens: Tensor) -> tuple[Tensor, Tensor]:
    """Packed ``(T, D)`` tokens and offsets ``(B+1,)`` -> padded ``(B, L, D)`` and a
    bool mask ``(B, L)``, right padded with zeros, ``L`` the longest sequence (at least 1)."""
    cu = cu_seqlens.to(device=x.device, dtype=torch.int64)
    cnt = cu[1:] - cu[:-1]
    b = cnt.shape[0]
    length = max(int(cnt.max()) if b else 0, 1)
    mask = torch.arange(length, device=x.device)[None, :] < cnt[:, None]
    out = x.new_zeros(b, length, x.shape[1])
    out[mask] = x
    return out, mask
