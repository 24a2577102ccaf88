"""GeM and softmax aggregation through the compiled kernels, with their gradients.

Float32 CPU eager calls (inference and training) run ``token_kernels.cpp``'s two-pass kernels
instead of chains of ``(B, N, D)`` elementwise ops; the formulas and their derivatives are
in the kernel's comments, and tests compare values and gradients with the PyTorch path that
``torch.compile``, GPUs and other dtypes keep using.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from .dispatch import kernel_mask, real_token_kernel


class _GeM(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, x: Tensor, keep: Tensor, power: Tensor, eps: float, kernel: Any) -> Tensor:
        y, saved = kernel.gem(x, keep, power, eps, True)
        ctx.save_for_backward(x, keep, power, saved)
        ctx.eps, ctx.kernel = eps, kernel
        return y

    @staticmethod
    def backward(ctx: Any, g: Tensor) -> tuple[Tensor | None, None, Tensor | None, None, None]:
        x, keep, power, saved = ctx.saved_tensors
        gx, gp = ctx.kernel.gem_backward(x, keep, power, ctx.eps, saved, g, ctx.needs_input_grad[0])
        return (gx if ctx.needs_input_grad[0] else None), None, gp.sum(0), None, None


class _Softmax(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, x: Tensor, keep: Tensor, temperature: Tensor, kernel: Any) -> Tensor:
        y, saved = kernel.softmax_pool(x, keep, temperature, True)
        ctx.save_for_backward(x, keep, temperature, y, saved)
        ctx.kernel = kernel
        return y

    @staticmethod
    def backward(ctx: Any, g: Tensor) -> tuple[Tensor | None, None, Tensor | None, None]:
        x, keep, t, y, saved = ctx.saved_tensors
        gx, gt = ctx.kernel.softmax_pool_backward(x, keep, t, y, saved, g, ctx.needs_input_grad[0])
        return (gx if ctx.needs_input_grad[0] else None), None, gt.sum(0), None


def _tracked(*tensors: Tensor) -> bool:
    return torch.is_grad_enabled() and any(t.requires_grad for t in tensors)


def fused_gem(x: Tensor, mask: Tensor | None, power: Tensor, eps: float) -> Tensor | None:
    """GeM of padded ``x`` ``(B, N, D)`` with ``power`` (1 or D values) by the kernel, or None
    when it does not apply (not eager float32 CPU, or the kernel is unavailable)."""
    kernel = real_token_kernel(x, power, allow_grad=True)
    if kernel is None:
        return None
    x = x.contiguous()
    if not _tracked(x, power):
        return kernel.gem(x, kernel_mask(x, mask), power.detach().contiguous(), eps)[0]
    return _GeM.apply(x, kernel_mask(x, mask), power.expand(x.shape[-1]).contiguous(), eps, kernel)


def fused_softmax(x: Tensor, mask: Tensor | None, temperature: Tensor) -> Tensor | None:
    """Softmax aggregation of padded ``x`` with ``temperature`` (1 or D values) by the kernel,
    or None when it does not apply."""
    kernel = real_token_kernel(x, temperature, allow_grad=True)
    if kernel is None:
        return None
    x = x.contiguous()
    if not _tracked(x, temperature):
        return kernel.softmax_pool(x, kernel_mask(x, mask), temperature.detach().contiguous())[0]
    return _Softmax.apply(x, kernel_mask(x, mask), temperature.expand(x.shape[-1]).contiguous(), kernel)
