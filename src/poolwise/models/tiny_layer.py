"""A whole pre-LN layer in one compiled kernel for tiny widths (the AdaPool paper's RL
policies: d = 3-8, head dimension 1), forward and backward.

At those widths each PyTorch op (a LayerNorm over 3 numbers, a GEMM with inner dimension 3, a
permute copy) costs more than its arithmetic; ``tiny_layer.cpp`` runs one sequence at a time
through the whole layer in a few small buffers. Same function as :class:`PreLNLayer`'s PyTorch
path (exact GELU, LayerNorm eps), to float32 rounding; built on first use like the other
kernels (``POOLWISE_NO_EXT=1`` skips it).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from .._ext import extension_error, load_extension

#: widths up to this use the fused layer; wider layers are GEMM-bound and PyTorch is faster
MAX_FUSED_DIM = 8
_SOURCE = Path(__file__).with_name("tiny_layer.cpp")


def kernel() -> Any | None:
    """The compiled extension, or None (with the reason in ``kernel_error()``)."""
    return load_extension("poolwise_tiny_layer", _SOURCE)


def kernel_error() -> str | None:
    return extension_error("poolwise_tiny_layer")


class _TinyLayer(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, x: Tensor, drop: float, seed: int, heads: int, eps: float,
                *params: Tensor) -> Tensor:
        y, *saved = kernel().forward(x, drop, seed, list(params), heads, eps)
        ctx.save_for_backward(x, *saved, *params)
        ctx.drop, ctx.seed, ctx.heads, ctx.eps = drop, seed, heads, eps
        return y

    @staticmethod
    def backward(ctx: Any, dy: Tensor) -> tuple[Tensor | None, ...]:
        x, qkv, att, x1, stats, u, lse, *params = ctx.saved_tensors
        dx, *dparams = kernel().backward(dy, x, ctx.drop, ctx.seed, qkv, att, x1, stats, u, lse, params,
                                         ctx.heads, ctx.eps)
        return (dx, None, None, None, None, *dparams)


def can_fuse(layer: Any, x: Tensor) -> bool:
    """Whether ``layer`` (a :class:`PreLNLayer`) can run fused on ``x``: CPU float32, width at
    most :data:`MAX_FUSED_DIM`, no attention or hidden dropout while training, not under
    ``torch.compile``/tracing, and the kernel built."""
    return (layer.use_fused and x.device.type == "cpu" and x.dtype == torch.float32 and x.dim() == 3
            and x.shape[-1] <= MAX_FUSED_DIM and x.shape[1] > 0
            and not (layer.training and (layer.attn_dropout > 0 or layer.ffn_dropout > 0))
            and not torch.compiler.is_compiling() and not torch.jit.is_tracing()
            and layer.norm1.weight is not None and layer.norm1.bias is not None
            and layer.norm2.weight is not None and layer.norm2.bias is not None
            and layer.fc1.bias is not None and layer.fc2.bias is not None
            and layer.norm1.eps == layer.norm2.eps and kernel() is not None)


def fused_layer(layer: Any, x: Tensor) -> Tensor:
    """``layer(x)`` through the fused kernel (check :func:`can_fuse` first). The feed-forward
    output dropout hashes (seed, element index) in the kernel, with the seed drawn from torch's
    generator, so ``torch.manual_seed`` fixes it and the backward pass recomputes the mask."""
    p = float(layer.dropout) if layer.training else 0.0
    seed = int(torch.randint(0, 2**31 - 1, (1,)).item()) if p > 0 else 0
    params = (layer.norm1.weight, layer.norm1.bias, layer.qkv.weight, layer.proj.weight, layer.norm2.weight,
              layer.norm2.bias, layer.fc1.weight, layer.fc1.bias, layer.fc2.weight, layer.fc2.bias)
    return _TinyLayer.apply(x.contiguous(), p, seed, layer.num_heads, float(layer.norm1.eps), *params)


def dropout_mask(shape: tuple[int, int, int], p: float, seed: int) -> Tensor:
    """The keep-factors (0 or 1/(1-p)) the fused kernel applies for ``seed`` (for tests)."""
    return kernel().dropout_mask(*shape, p, seed)
