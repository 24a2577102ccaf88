"""Self-attention core for the small encoders: a compiled kernel for tiny head dimensions,
``scaled_dot_product_attention`` otherwise.

The kernel (``small_head_attention.cpp``) is built on first use with the machine's compiler
(``torch.utils.cpp_extension``, about 30 s once, cached under ``~/.cache/poolwise/ext`` or
``$POOLWISE_EXT_DIR``, per CPU and torch version). If it cannot be built, a warning says why
and SDPA is used; set ``POOLWISE_NO_EXT=1`` to skip it. Both compute exact softmax attention.
"""

from __future__ import annotations

import hashlib
import os
import platform
import warnings
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

MAX_HEAD_DIM = 4  # from head dim 8 on, the GEMM-based SDPA kernel is as fast or faster
_SOURCE = Path(__file__).with_name("small_head_attention.cpp")
_state: dict[str, Any] = {"ext": None, "error": None}


def _build_dir() -> Path:
    flags = ""
    try:
        with open("/proc/cpuinfo") as fh:
            flags = next((line for line in fh if line.startswith("flags")), "")
    except OSError:
        flags = platform.processor()
    key = hashlib.sha1((flags + torch.__version__ + _SOURCE.read_text()).encode()).hexdigest()[:12]
    root = Path(os.environ.get("POOLWISE_EXT_DIR") or Path.home() / ".cache" / "poolwise" / "ext")
    return root / key


def kernel() -> Any | None:
    """The compiled extension, or None (with the reason in ``kernel_error()``)."""
    if _state["ext"] is None and _state["error"] is None:
        if os.environ.get("POOLWISE_NO_EXT"):
            _state["error"] = "disabled by POOLWISE_NO_EXT"
            return None
        try:
            from torch.utils.cpp_extension import load

            build = _build_dir()
            build.mkdir(parents=True, exist_ok=True)
            _state["ext"] = load("poolwise_small_head_attention", [str(_SOURCE)], build_directory=str(build),
                                 extra_cflags=["-O3", "-march=native", "-ffast-math", "-fopenmp"],
                                 extra_ldflags=["-fopenmp"], verbose=False)
        except Exception as err:  # no compiler, no ninja, ...: fall back, say why once
            _state["error"] = f"{type(err).__name__}: {str(err).strip().splitlines()[-1] if str(err) else ''}"
            warnings.warn(f"poolwise: small-head attention kernel unavailable ({_state['error']}); "
                          "using scaled_dot_product_attention", RuntimeWarning, stacklevel=3)
    return _state["ext"]


def kernel_error() -> str | None:
    return _state["error"]


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


def use_kernel(q: Tensor, enabled: bool = True) -> bool:
    return (enabled and q.device.type == "cpu" and q.dtype == torch.float32
            and q.shape[-1] <= MAX_HEAD_DIM and not torch.compiler.is_compiling()
            and kernel() is not None)


def attention(q: Tensor, k: Tensor, v: Tensor, use_small_kernel: bool = True) -> Tensor:
    """Softmax attention over ``(B, H, N, E)`` tensors with scale ``1/sqrt(E)``, no mask."""
    if not use_kernel(q, use_small_kernel):
        return F.scaled_dot_product_attention(q, k, v)
    b, h, n, e = q.shape
    flat = [t.reshape(b * h, n, e).contiguous() for t in (q, k, v)]
    return _SmallHeadAttention.apply(*flat, e ** -0.5).view(b, h, n, e)
