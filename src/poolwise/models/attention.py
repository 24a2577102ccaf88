"""Self-attention core for the small encoders: a compiled kernel for tiny head dimensions,
``scaled_dot_product_attention`` otherwise.

The kernel (``small_head_attention.cpp``) is built on first use with the machine's compiler
(``torch.utils.cpp_extension``, about 30 s once, cached under ``~/.cache/poolwise/ext`` or
``$POOLWISE_EXT_DIR``, per CPU and torch version). If it cannot be built, a warning says why
and SDPA is used; set ``POOLWISE_NO_EXT=1`` to skip it. Both compute exact softmax attention.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from .._ext import extension_error, load_extension

MAX_HEAD_DIM = 4  # from head dim 8 on, the GEMM-based SDPA kernel is as fast or faster
_SOURCE = Path(__file__).with_name("small_head_attention.cpp")


def kernel() -> Any | None:
    """The compiled extension, or None (with the reason in ``kernel_error()``)."""
    return load_extension("poolwise_small_head_attention", _SOURCE)


def kernel_error() -> str | None:
    return extension_error("poolwise_small_head_attention")


class _SmallHeadAttention(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, q: Tensor, k: Tensor, v: Tensor, scale: float) -> Tensor:
        out, lse = kernel().forward(q, k, v, scale)
        ctx.save_for_backward(q, k, v, out, lse)
        ctx.scale = scale
        return out

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, Tensor, Tensor, None]:
        q, k, v, out, lse = ctx.saved_tensors
        dq, dk, dv = kernel().backward(grad, q, k, v, out, lse, ctx.scale)
        return dq, dk, dv, None


class _PackedSelfAttention(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, qkv: Tensor, scale: float) -> Tensor:
        out, lse = kernel().packed_forward(qkv, scale)
        ctx.save_for_backward(qkv, out, lse)
        ctx.scale = scale
        return out

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, None]:
        qkv, out, lse = ctx.saved_tensors
        return kernel().packed_backward(grad, qkv, out, lse, ctx.scale), None


def use_kernel(q: Tensor, enabled: bool = True) -> bool:
    return (enabled and q.device.type == "cpu" and q.dtype == torch.float32
            and q.shape[-1] <= MAX_HEAD_DIM and not torch.compiler.is_compiling()
            and kernel() is not None)


def attention(q: Tensor, k: Tensor, v: Tensor, use_small_kernel: bool = True,
              dropout_p: float = 0.0) -> Tensor:
    """Softmax attention over ``(B, H, N, E)`` tensors with scale ``1/sqrt(E)``, no mask;
    ``dropout_p`` drops attention weights (SDPA only: the kernel has no dropout)."""
    if dropout_p > 0 or not use_kernel(q, use_small_kernel):
        return F.scaled_dot_product_attention(q, k, v, dropout_p=dropout_p)
    b, h, n, e = q.shape
    flat = [t.reshape(b * h, n, e).contiguous() for t in (q, k, v)]
    return _SmallHeadAttention.apply(*flat, e ** -0.5).view(b, h, n, e)


def self_attention(qkv: Tensor, use_small_kernel: bool = True, dropout_p: float = 0.0) -> Tensor:
    """Softmax self-attention from a fused projection ``qkv`` ``(B, N, 3, H, E)`` (queries,
    keys, values along dim 2), scale ``1/sqrt(E)``; returns the heads side by side,
    ``(B, N, H * E)``. The kernel reads ``qkv`` and writes the output in these layouts through
    strides, so neither the head split nor the merge copies; SDPA gets the usual permuted
    views."""
    b, n, _, h, e = qkv.shape
    if dropout_p == 0 and qkv.is_contiguous() and use_kernel(qkv, use_small_kernel):
        return _PackedSelfAttention.apply(qkv, e ** -0.5).view(b, n, h * e)
    q, k, v = qkv.permute(2, 0, 3, 1, 4)
    if dropout_p > 0 or not use_kernel(q, use_small_kernel):
        att = F.scaled_dot_product_attention(q, k, v, dropout_p=dropout_p)
    else:
        att = attention(q, k, v, use_small_kernel)
    return att.transpose(1, 2).reshape(b, n, h * e)
