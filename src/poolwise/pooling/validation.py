"""Input checks at the pooling boundary: every error names the argument, what came and
what was expected. Data-dependent checks (values of an integer mask, packed offsets) run in
eager mode only, because ``torch.compile`` cannot trace them."""

from __future__ import annotations

import itertools

import torch
from torch import Tensor

from .dispatch import is_compiling

EMPTY_POLICIES = ("zero", "nan", "raise")


def check_empty(empty: str) -> str:
    if empty not in EMPTY_POLICIES:
        raise ValueError(
            f"empty must be one of {', '.join(map(repr, EMPTY_POLICIES))} (what to return for a "
            f"row with no real token); got {empty!r}"
        )
    return empty


def check_tokens(x: object, who: str) -> Tensor:
    if not isinstance(x, Tensor):
        raise TypeError(f"{who}: x must be a torch.Tensor of shape (B, N, D); got {type(x).__name__}")
    if x.dim() != 3:
        raise ValueError(
            f"{who}: x must have shape (B, N, D) = (batch, tokens, features); got {x.dim()} "
            f"dimensions, shape {tuple(x.shape)}"
        )
    if not x.is_floating_point():
        raise TypeError(f"{who}: x must be a floating-point tensor; got dtype {x.dtype}")
    if x.shape[2] == 0:
        raise ValueError(f"{who}: x has D=0 features (shape {tuple(x.shape)}); expected at least one")
    if x.device.type == "meta":
        raise ValueError(f"{who}: x is on the meta device (a shape without values); pool a tensor "
                         "on a real device (cpu, cuda, ...)")
    return x


def check_weight_dtype(x: Tensor, weight: Tensor, who: str) -> None:
    """A learned pooler whose projections multiply ``x`` needs both in one dtype."""
    if x.dtype != weight.dtype:
        raise TypeError(f"{who}: x is {x.dtype} but the pooler's weights are {weight.dtype}; convert one "
                        f"to the other (pooler.to({x.dtype}) or x.to({weight.dtype}))")


def check_int(value: object, name: str, who: str, minimum: int = 1) -> int:
    """``value`` as an int >= ``minimum`` (bools are refused: ``dim=True`` is a mistake)."""
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        what = "a positive int" if minimum == 1 else f"an int >= {minimum}"
        raise ValueError(f"{who}: {name} must be {what}; got {value!r}")
    return value


def check_float(value: object, name: str, who: str, low: float | None = None, high: float | None = None,
                high_open: bool = False) -> float:
    """``value`` as a float in ``[low, high]`` (``[low, high)`` with ``high_open``)."""
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    if ok and low is not None:
        ok = value >= low
    if ok and high is not None:
        ok = value < high if high_open else value <= high
    if not ok:
        bounds = f" in [{low}, {high}{')' if high_open else ']'}" if high is not None else (
            f" >= {low}" if low is not None else "")
        raise ValueError(f"{who}: {name} must be a number{bounds}; got {value!r}")
    return float(value)


def check_flag(value: object, name: str, who: str) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"{who}: {name} must be True or False; got {value!r}")
    return value


def to_keep_mask(mask: object, x: Tensor, who: str) -> Tensor | None:
    """Convert a bool or 0/1 integer mask ``(B, N)`` (True/1 = real token) to a bool mask."""
    if mask is None:
        return None
    if not isinstance(mask, Tensor):
        raise TypeError(
            f"{who}: mask must be a torch.Tensor of shape (B, N) or None; got {type(mask).__name__}")
    b, n = x.shape[:2]
    if mask.shape != (b, n):
        raise ValueError(
            f"{who}: mask must have shape (B, N) = {(b, n)} to match x of shape "
            f"{tuple(x.shape)}; got {tuple(mask.shape)}"
        )
    if mask.device != x.device:
        raise ValueError(f"{who}: mask is on {mask.device} but x is on {x.device}")
    if mask.dtype == torch.bool:
        return mask
    if mask.is_floating_point() or mask.is_complex():
        raise TypeError(
            f"{who}: mask must be bool or integer 0/1 (True/1 = real token); got dtype "
            f"{mask.dtype}. An additive mask (0 / -inf) converts with `mask == 0`."
        )
    if not is_compiling() and mask.numel() and bool(((mask != 0) & (mask != 1)).any()):
        bad = mask[(mask != 0) & (mask != 1)].unique()[:5].tolist()
        raise ValueError(f"{who}: an integer mask must hold only 0 and 1 (1 = real token); found {bad}")
    return mask != 0


def check_packed(x: object, cu_seqlens: object, who: str) -> tuple[Tensor, Tensor, bool]:
    """Validated ``(x, cu_seqlens, may_have_empty_rows)``; the flag is exact in eager mode
    (the offsets are read anyway) and True under ``torch.compile``."""
    if not isinstance(x, Tensor) or x.dim() != 2:
        got = f"shape {tuple(x.shape)}" if isinstance(x, Tensor) else type(x).__name__
        raise ValueError(f"{who}: packed x must have shape (T, D) = (total tokens, features); got {got}")
    if not x.is_floating_point():
        raise TypeError(f"{who}: packed x must be a floating-point tensor; got dtype {x.dtype}")
    if not isinstance(cu_seqlens, Tensor) or cu_seqlens.dim() != 1 or cu_seqlens.is_floating_point():
        got = (f"{cu_seqlens.dtype} tensor of shape {tuple(cu_seqlens.shape)}"
               if isinstance(cu_seqlens, Tensor) else type(cu_seqlens).__name__)
        raise TypeError(f"{who}: cu_seqlens must be a 1-D integer tensor (B+1,) of offsets; got {got}")
    if cu_seqlens.numel() < 1:
        raise ValueError(f"{who}: cu_seqlens must hold at least one offset (0); got an empty tensor")
    if is_compiling():
        return x, cu_seqlens, True
    cu = cu_seqlens.tolist()
    if cu[0] != 0 or cu[-1] != x.shape[0] or any(a > b for a, b in itertools.pairwise(cu)):
        shown = cu if len(cu) <= 8 else [*cu[:4], "...", *cu[-2:]]
        raise ValueError(
            f"{who}: cu_seqlens must start at 0, never decrease and end at T={x.shape[0]} "
            f"(the number of packed tokens); got {shown}"
        )
    return x, cu_seqlens, any(a == b for a, b in itertools.pairwise(cu))


def check_dim(x: Tensor, dim: int, who: str) -> None:
    if x.shape[-1] != dim:
        raise ValueError(
            f"{who}: x has D={x.shape[-1]} features but this pooler was built with dim={dim}"
        )
