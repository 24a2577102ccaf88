"""Which implementation pools a call: decided here, in one place (timm's ``use_fused_attn`` idea).

Three kinds of kernel compute the same numbers (tests compare them):

* **dense** (training, ``torch.compile``, GPUs): ``bmm`` with a ``(B, N)`` weight matrix,
  ``where`` + ``amax``; inductor fuses them and their backward passes are cheap.
* **segment** (eager CPU inference): the real tokens are addressed by flat index and reduced
  with ``embedding_bag`` or per-row spans; padding is never read.
* **kernel** (eager CPU float32): the compiled ``token_kernels.cpp`` reads each row's real
  tokens straight from the padded batch and its mask: single-query attention (scores, online
  softmax, weighted sums in one pass), the sums behind mean / sum / weighted_mean, and GeM
  and softmax aggregation with their backward passes. It is built once with AVX-512, AVX2 and
  baseline variants inside and runs the best one the CPU reports.
* **Triton** (eager CUDA inference, when Triton is installed): one kernel launch reduces the
  real tokens of padded or packed input for sum / mean / mean_sqrt_len / weighted_mean / max
  / min (:mod:`~poolwise.pooling.triton_kernels`).

Independently, elementwise-heavy poolers pool rows in cache-sized chunks in eager CPU mode.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from .._ext import load_extension

_KERNELS_SOURCE = Path(__file__).with_name("token_kernels.cpp")
_KERNELS_DEPENDS = (Path(__file__).with_name("token_kernels.inc"),)
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
    """True while ``torch.compile``, ``torch.jit.trace`` or the ONNX exporter traces: no
    data-dependent shapes or checks then (a traced shape would be frozen into the graph)."""
    return torch.compiler.is_compiling() or torch.jit.is_tracing() or torch.onnx.is_in_onnx_export()


@dataclass(frozen=True)
class Route:
    """The implementation :func:`route` chose for one call.

    Attributes:
        eager: not traced by ``torch.compile``; data-dependent shapes and checks are allowed.
        chunk_rows: eager on CPU: elementwise-heavy poolers may pool rows in chunks.
        segments: eager CPU inference: address only the real tokens (segment kernels).
        kernel: the compiled single-query attention module, when asked for and usable.
    """

    eager: bool
    chunk_rows: bool
    segments: bool
    kernel: Any | None = None


def route(x: Tensor, *tracked: Tensor, kernel: bool = False) -> Route:
    """Choose the implementation for pooling ``x`` with parameters ``tracked``.

    Segment kernels need data-dependent shapes (eager mode on CPU) and serve inference: when
    autograd tracks ``x`` or ``tracked`` the dense kernels win, their backward passes being
    far cheaper than those of ``embedding_bag`` and per-row loops. ``kernel=True`` asks for the
    compiled single-query module as well (float32 input and parameters, built on first use;
    ``POOLWISE_NO_EXT=1`` disables it)."""
    eager = not is_compiling()
    cpu = x.device.type == "cpu"
    grad = torch.is_grad_enabled() and any(t.requires_grad for t in (x, *tracked))
    segments = eager and cpu and not _FORCE_DENSE and not grad
    ext = None
    if kernel and segments and x.dtype == torch.float32 and all(t.dtype == x.dtype for t in tracked):
        ext = token_kernels()
    return Route(eager, eager and cpu, segments, ext)


def row_step(x: Tensor, chunk_bytes: int | None) -> int | None:
    """Rows per chunk so one chunk holds about ``chunk_bytes`` of fp32 values, or None to
    pool the batch at once (no chunk size, not eager CPU, or the batch fits in one chunk)."""
    if chunk_bytes is None or not route(x).chunk_rows:
        return None
    step = max(1, chunk_bytes // max(1, 4 * x.shape[1] * x.shape[2]))
    return step if step < x.shape[0] else None


def real_token_kernel(table: Tensor, *others: Tensor, allow_grad: bool = False) -> Any | None:
    """The compiled module for a reduction over ``table`` (the tokens), when it applies: eager,
    CPU, float32, and nothing tracked by autograd unless ``allow_grad`` (the caller then
    supplies the backward pass); else None (PyTorch path)."""
    if _FORCE_DENSE or is_compiling() or table.device.type != "cpu":
        return None
    tensors = (table, *others)
    if any(t.dtype != torch.float32 for t in tensors):
        return None
    if not allow_grad and torch.is_grad_enabled() and any(t.requires_grad for t in tensors):
        return None
    return token_kernels()


def gpu_reduce(x: Tensor) -> Any | None:
    """The Triton reduction kernels (:mod:`~poolwise.pooling.triton_kernels`) for pooling
    ``x`` when they apply: eager, CUDA, float32/16/bf16, not tracked by autograd (training
    keeps the dense kernels, whose backward passes are cheap); else None."""
    if _FORCE_DENSE or is_compiling() or (torch.is_grad_enabled() and x.requires_grad):
        return None
    from . import triton_kernels  # imports Triton (optional) only when a GPU tensor comes

    return triton_kernels if triton_kernels.applies(x) else None


def kernel_mask(x: Tensor, mask: Tensor | None) -> Tensor:
    """The mask argument of the compiled kernels: the contiguous bool keep-mask, or an empty
    tensor for "every token is real"."""
    return x.new_empty(0, dtype=torch.bool) if mask is None else mask.contiguous()


def token_kernels() -> Any | None:
    """The compiled module of ``token_kernels.cpp``, or None when it cannot be built.

    Built once for the baseline instruction set with AVX2 and AVX-512 variants inside; each
    call runs the best one the CPU reports (``kernel.available_paths()`` lists them)."""
    return load_extension("poolwise_token_kernels", _KERNELS_SOURCE, _KERNELS_DEPENDS, native=False)
