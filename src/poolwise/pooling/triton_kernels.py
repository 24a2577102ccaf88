r"""Triton kernels for GPU inference: one-pass token reductions over padded or packed input.

One kernel computes, per row :math:`b` and a block of features, over the row's real tokens
:math:`x_{b,1..n}` (padded input: positions where the keep-mask is True, read with predicated
loads so padding is never fetched; packed input: the span ``cu_seqlens[b]:cu_seqlens[b+1]``):

* ``sum`` :math:`\sum_i x_i`, ``mean`` :math:`\frac1n \sum_i x_i`, ``sqrt_len``
  :math:`\frac{1}{\sqrt n} \sum_i x_i`, ``rank`` :math:`\sum_i \frac{i}{n(n+1)/2} x_i` (ranks count
  real tokens, so any padding side gives the same result), accumulated in fp32;
* ``max`` / ``min`` feature-wise, NaN propagating as in ``torch.amax``.

An empty row gives 0. Input may be float32, float16 or bfloat16; the output has the input's
dtype. These replace, on CUDA in inference, a chain of small PyTorch kernels (counts, ranks,
weights, a ``bmm`` that also reads the padding; for packed input ``repeat_interleave`` with a
host sync, then ``embedding_bag``): launches, not bytes, bound those at typical sizes.
Training keeps the PyTorch path (its backward passes are cheap), as does ``torch.compile``.

Triton is optional: without it (or with ``POOLWISE_NO_TRITON=1``) :func:`available` is False
and every pooler uses PyTorch. Under ``TRITON_INTERPRET=1`` (set before Triton is imported)
the same kernels run on CPU tensors, slowly: the tests check them that way on machines
without a GPU, routing CPU tensors here inside :func:`on_cpu`.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch import Tensor

try:
    import triton
    import triton.language as tl
except ImportError:  # optional dependency
    triton = None

#: reduction names and their kernel codes (0-3 equal the CPU kernel's ``kernel_mode``)
MODES = {"sum": 0, "mean": 1, "sqrt_len": 2, "rank": 3, "max": 4, "min": 5}
_DTYPES = (torch.float32, torch.float16, torch.bfloat16)


@dataclass(frozen=True)
class LaunchConfig:
    """Tile of one program: ``block_n`` tokens x ``block_d`` features per step, ``num_warps``;
    ``acc2d``: sum the tiles elementwise and reduce across tokens once at the end."""

    block_n: int = 32
    block_d: int = 128
    num_warps: int = 4
    acc2d: bool = False


DEFAULT_CONFIG = LaunchConfig(block_n=64, block_d=64, num_warps=4)
"""The fastest float32 tile of ``benchmarks/segment_reduce.py``'s sweep on an H200 at both
measured sizes (64 x 512 x 768 and 256 x 1024 x 1024), padded and packed (docs/speed.md)."""
#: half-precision input above this many elements keeps the PyTorch path: measured on an H200,
#: bfloat16 ran 1.4x faster through Triton at 25M elements and 1.8x slower at 268M (the
#: crossover between them was not measured; float32 was faster at both)
HALF_MAX_ELEMENTS = 1 << 26


def available() -> bool:
    """True when Triton is importable and not disabled by ``POOLWISE_NO_TRITON=1``."""
    return triton is not None and os.environ.get("POOLWISE_NO_TRITON", "") in ("", "0")


def interpreting() -> bool:
    """True under ``TRITON_INTERPRET=1`` (kernels run on CPU tensors, for tests)."""
    return os.environ.get("TRITON_INTERPRET", "") == "1"


_ON_CPU = False


@contextlib.contextmanager
def on_cpu(enabled: bool = True) -> Iterator[None]:
    """Inside the block, poolers route CPU tensors to the interpreted kernels as they route
    CUDA tensors to the compiled ones (needs ``TRITON_INTERPRET=1``; for tests)."""
    global _ON_CPU
    if enabled and not interpreting():
        raise RuntimeError("on_cpu() needs TRITON_INTERPRET=1 set before Triton is imported")
    previous, _ON_CPU = _ON_CPU, enabled
    try:
        yield
    finally:
        _ON_CPU = previous


def applies(x: Tensor) -> bool:
    """Whether poolers reduce ``x`` with these kernels: Triton available, a CUDA tensor (a CPU
    one inside :func:`on_cpu`), float32, or float16/bfloat16 up to :data:`HALF_MAX_ELEMENTS`,
    at least one feature."""
    if x.dtype != torch.float32 and (x.dtype not in _DTYPES or x.numel() > HALF_MAX_ELEMENTS):
        return False
    return (available() and x.shape[-1] > 0
            and (x.device.type == "cuda" or (_ON_CPU and x.device.type == "cpu")))


if triton is not None:

    @triton.jit
    def _reduce_kernel(x_ptr, mask_ptr, cu_ptr, out_ptr, n_tokens, n_feat, stride_xb, stride_xn,
                       stride_mb, stride_ob, MODE: tl.constexpr, PACKED: tl.constexpr,
                       HAS_MASK: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_D: tl.constexpr,
                       ACC2D: tl.constexpr):
        # ACC2D: accumulate a (BLOCK_N, BLOCK_D) tile elementwise and reduce it across tokens
        # once at the end (no cross-thread reduction per step); else reduce every step
        row = tl.program_id(0).to(tl.int64)
        cols = tl.program_id(1) * BLOCK_D + tl.arange(0, BLOCK_D)
        col_ok = cols < n_feat
        if PACKED:  # the row's tokens are x[lo:hi] of a (T, D) table
            lo = tl.load(cu_ptr + row)
            hi = tl.load(cu_ptr + row + 1)
            base = x_ptr
        else:
            lo = 0
            hi = n_tokens
            base = x_ptr + row * stride_xb
        if MODE == 4:
            start_value = float("-inf")
        elif MODE == 5:
            start_value = float("inf")
        else:
            start_value = 0.0
        if ACC2D:
            acc = tl.full([BLOCK_N, BLOCK_D], start_value, tl.float32)
        else:
            acc = tl.full([BLOCK_D], start_value, tl.float32)
        nan_seen = tl.zeros([BLOCK_D], tl.int32)
        count = tl.sum(tl.zeros([BLOCK_N], tl.int32), axis=0)
        counts = tl.zeros([BLOCK_N], tl.int32)
        for start in range(lo, hi, BLOCK_N):
            pos = start + tl.arange(0, BLOCK_N)
            real = pos < hi
            if HAS_MASK:
                real = real & (tl.load(mask_ptr + row * stride_mb + pos, mask=real, other=0) != 0)
            both = real[:, None] & col_ok[None, :]
            v = tl.load(base + pos.to(tl.int64)[:, None] * stride_xn + cols[None, :], mask=both,
                        other=0.0).to(tl.float32)
            if MODE >= 4:
                fill = float("-inf") if MODE == 4 else float("inf")
                v = tl.where(both, v, fill)
                if ACC2D:  # NaN kept elementwise, read once at the end
                    if MODE == 4:
                        acc = tl.maximum(acc, v, propagate_nan=tl.PropagateNan.ALL)
                    else:
                        acc = tl.minimum(acc, v, propagate_nan=tl.PropagateNan.ALL)
                else:
                    nan_seen = nan_seen | tl.max((v != v).to(tl.int32), axis=0)
                    if MODE == 4:
                        acc = tl.maximum(acc, tl.max(v, axis=0))
                    else:
                        acc = tl.minimum(acc, tl.min(v, axis=0))
            elif MODE == 3:
                rank = (tl.cumsum(real.to(tl.int32), axis=0) + count).to(tl.float32)
                if ACC2D:
                    acc += v * rank[:, None]
                else:
                    acc += tl.sum(v * rank[:, None], axis=0)
            elif ACC2D:
                acc += v
            else:
                acc += tl.sum(v, axis=0)
            if ACC2D and MODE != 3:  # the rank (MODE 3) needs the running count at every step
                counts += real.to(tl.int32)
            else:
                count += tl.sum(real.to(tl.int32), axis=0)
        if ACC2D:
            if MODE != 3:
                count = tl.sum(counts, axis=0)
            if MODE == 4:
                nan_seen = tl.max((acc != acc).to(tl.int32), axis=0)
                acc = tl.max(acc, axis=0)
            elif MODE == 5:
                nan_seen = tl.max((acc != acc).to(tl.int32), axis=0)
                acc = tl.min(acc, axis=0)
            else:
                acc = tl.sum(acc, axis=0)
        n = count.to(tl.float32)
        if MODE == 1:
            acc = acc / tl.maximum(n, 1.0)
        elif MODE == 2:
            acc = acc / tl.sqrt(tl.maximum(n, 1.0))
        elif MODE == 3:
            acc = acc / tl.maximum(n * (n + 1.0) * 0.5, 1.0)
        elif MODE >= 4:
            acc = tl.where(nan_seen != 0, float("nan"), acc)
            acc = tl.where(count > 0, acc, 0.0)
        tl.store(out_ptr + row * stride_ob + cols, acc.to(out_ptr.dtype.element_ty), mask=col_ok)


def _mode(mode: str | int) -> int:
    code = MODES.get(mode) if isinstance(mode, str) else mode
    if code not in MODES.values():
        raise ValueError(f"mode must be one of {sorted(MODES)} (or 0-5); got {mode!r}")
    return code


def _launch(x: Tensor, mask: Tensor | None, cu: Tensor | None, rows: int, mode: int,
            config: LaunchConfig) -> Tensor:
    if triton is None:
        raise RuntimeError("Triton is not installed; pip install triton (GPU inference kernels)")
    d = x.shape[-1]
    out = x.new_empty(rows, d)
    if rows == 0 or d == 0:
        return out.zero_()
    block_d = min(config.block_d, triton.next_power_of_2(d))
    grid = (rows, triton.cdiv(d, block_d))
    packed = cu is not None
    dummy = out  # an unused pointer argument (its constexpr branch is compiled out)
    _reduce_kernel[grid](
        x, dummy if mask is None else mask.view(torch.uint8), cu if packed else dummy, out,
        x.shape[-2] if not packed else 0, d, 0 if packed else x.stride(0), x.stride(-2),
        0 if mask is None else mask.stride(0), out.stride(0),
        MODE=mode, PACKED=packed, HAS_MASK=mask is not None,
        BLOCK_N=config.block_n, BLOCK_D=block_d, ACC2D=config.acc2d, num_warps=config.num_warps)
    return out


def masked_reduce(x: Tensor, mask: Tensor | None, mode: str | int,
                  config: LaunchConfig = DEFAULT_CONFIG) -> Tensor:
    """Reduce the real tokens of padded ``x`` ``(B, N, D)`` under the bool keep-mask ``mask``
    ``(B, N)`` (None: every token is real) to ``(B, D)``; ``mode`` is a name of :data:`MODES`."""
    code = _mode(mode)
    if x.stride(-1) != 1:
        x = x.contiguous()
    if mask is not None and mask.stride(-1) != 1:
        mask = mask.contiguous()
    return _launch(x, mask, None, x.shape[0], code, config)


def segment_reduce(x: Tensor, cu_seqlens: Tensor, mode: str | int,
                   config: LaunchConfig = DEFAULT_CONFIG) -> Tensor:
    """Reduce each sequence of packed tokens ``x`` ``(T, D)``, split by the offsets
    ``cu_seqlens`` ``(B+1,)``, to ``(B, D)``; ``mode`` is a name of :data:`MODES`."""
    code = _mode(mode)
    if x.stride(-1) != 1:
        x = x.contiguous()
    cu = cu_seqlens.to(device=x.device, dtype=torch.int64).contiguous()
    return _launch(x, None, cu, cu.shape[0] - 1, code, config)
