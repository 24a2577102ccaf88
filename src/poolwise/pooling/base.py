"""The pooling contract: one base class that validates, pools and applies the empty-row policy."""

from __future__ import annotations

import json
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from .dispatch import is_compiling, row_step
from .functional import pad_packed
from .validation import check_empty, check_packed, check_tokens, to_keep_mask


class Pooler(nn.Module):
    r"""Base class of every pooler: ``(B, N, D)`` token vectors and a keep-mask -> ``(B, D)``.

    Subclasses implement :meth:`_pool` on a validated input (``mask`` is a bool ``(B, N)``
    keep-mask or ``None`` meaning "every token is real") and may override
    :meth:`_pool_packed` with a kernel that works on packed tokens directly.

    Call conventions (the same for every pooler):

    * ``pooler(x, mask=None)``: ``x`` float ``(B, N, D)``; ``mask`` bool or 0/1 integer
      ``(B, N)``, True/1 = real token. Any padding side and holes are allowed.
    * ``pooler.packed(x, cu_seqlens)``: ``x`` ``(T, D)`` tokens of all sequences back to
      back, ``cu_seqlens`` ``(B+1,)`` integer offsets starting at 0.
    * Sums accumulate in fp32; the output has the input's dtype.
    * A row without real tokens returns zeros (``empty="zero"``), NaN (``"nan"``) or raises
      (``"raise"``, eager mode only). No pooler ever produces NaN for such a row by itself.
    * ``pooler.config()`` is JSON-safe; ``Pooler.from_config(cfg)`` (a classmethod that
      :mod:`~poolwise.pooling.registry` attaches beside the resolver) rebuilds an equal pooler,
      and on a subclass checks that ``cfg`` names one of its kind.

    Args:
        empty (str): policy for rows with no real token. (default: ``"zero"``)
    """

    #: canonical registry name and aliases, set by :func:`~poolwise.pooling.registry.register`
    name: ClassVar[str] = ""
    aliases: ClassVar[tuple[str, ...]] = ()
    #: constructor arguments that make up :meth:`config` and ``repr``, in order
    config_keys: ClassVar[tuple[str, ...]] = ("empty",)
    #: True when the output does not depend on the order of the real tokens
    is_set_function: ClassVar[bool] = True
    #: poolers built from chains of elementwise ops over ``(B, N, D)`` set this: on CPU, in
    #: eager mode, rows are pooled in chunks of about this many fp32 bytes, so intermediates
    #: stay in cache and come from the allocator's free list instead of fresh, page-faulting
    #: buffers (2-4x faster for ``softmax``/``gem`` at (64, 512, 768)). Rows are independent,
    #: so results are unchanged.
    row_chunk_bytes: ClassVar[int | None] = None
    #: True when :meth:`attention_weights` returns per-token weights (learned poolers that
    #: weigh tokens: attention, AdaPool, gated, W-Avg)
    has_weights: ClassVar[bool] = False

    def __init__(self, *, empty: str = "zero") -> None:
        super().__init__()
        self.empty = check_empty(empty)

    # ------------------------------------------------------------------ API
    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        x, keep = self._prepare(x, mask)
        fused = self._pool_fused(x, keep)
        if fused is not None:  # compiled kernels leave an empty row zero: "zero" needs no pass
            if self.empty == "zero" or keep is None:
                return fused
            return self._apply_empty(fused, ~keep.any(1))
        step = row_step(x, self.row_chunk_bytes)
        if step is None:
            out = self._pool(x, keep)
        else:
            out = torch.cat([self._pool(x[i:i + step], None if keep is None else keep[i:i + step])
                             for i in range(0, x.shape[0], step)])
        return self._apply_empty(out, None if keep is None else ~keep.any(1))

    def packed(self, x: Tensor, cu_seqlens: Tensor) -> Tensor:
        """Pool packed tokens ``(T, D)`` split by ``cu_seqlens`` ``(B+1,)``; returns ``(B, ...)``."""
        x, cu, may_be_empty = check_packed(x, cu_seqlens, type(self).__name__)
        self._check_input(x)
        out = self._pool_packed(x, cu)
        return self._apply_empty(out, cu[1:] == cu[:-1]) if may_be_empty else out

    def output_dim(self, dim: int) -> int:
        """Size of the last output axis for input features ``dim``."""
        return dim

    def output_shape(self, dim: int) -> tuple[int, ...]:
        """Shape of one row's output for input features ``dim`` (``(D,)`` for most poolers)."""
        return (self.output_dim(dim),)

    def attention_weights(self, x: Tensor, mask: Tensor | None = None) -> Tensor | None:
        """Per-token weights the pooler gives each row (zero on padding, fp32), or None for
        poolers without such weights (see :attr:`has_weights`)."""
        return None

    def config(self) -> dict[str, Any]:
        """JSON-safe description; ``Pooler.from_config(cfg)`` (or ``get_pooler(cfg)``) rebuilds
        an equal pooler (learned weights travel separately, in the ``state_dict``)."""
        cfg = {"name": self.name, **{k: getattr(self, k) for k in self.config_keys}}
        try:
            json.dumps(cfg)
        except TypeError as err:
            raise TypeError(f"{type(self).__name__}.config() is not JSON-safe: {err}") from None
        return cfg

    def reset_parameters(self) -> None:
        """Re-initialise learned parameters (no-op for parameter-free poolers)."""

    def extra_repr(self) -> str:
        return ", ".join(f"{k}={getattr(self, k)!r}" for k in self.config_keys)

    # ---------------------------------------------------------- subclass hooks
    def _prepare(self, x: Tensor, mask: Tensor | None) -> tuple[Tensor, Tensor | None]:
        """Validate the padded input and convert the mask to a bool keep-mask."""
        who = type(self).__name__
        x = check_tokens(x, who)
        keep = to_keep_mask(mask, x, who)
        self._check_input(x)
        if x.shape[1] == 0:  # no tokens at all: one padding token per row keeps kernels simple
            x = x.new_zeros(x.shape[0], 1, x.shape[2])
            keep = torch.zeros(x.shape[0], 1, dtype=torch.bool, device=x.device)
        return x, keep

    def _pool_fused(self, x: Tensor, mask: Tensor | None) -> Tensor | None:
        """A compiled one-call implementation of :meth:`_pool` for this input, or None (the
        default): poolers with a kernel for float32 CPU eager calls override it (the token
        sums in inference, ``gem`` and ``softmax`` in training too). Its empty rows must be 0."""
        return None

    def _pool(self, x: Tensor, mask: Tensor | None) -> Tensor:
        raise NotImplementedError

    def _pool_packed(self, x: Tensor, cu_seqlens: Tensor) -> Tensor:
        padded, mask = pad_packed(x, cu_seqlens)
        fused = self._pool_fused(padded, mask)
        return fused if fused is not None else self._pool(padded, mask)

    def _check_input(self, x: Tensor) -> None:
        """Extra shape checks (e.g. feature size of a learned pooler)."""

    def _apply_empty(self, out: Tensor, empty_rows: Tensor | None) -> Tensor:
        if empty_rows is None:
            return out
        if self.empty == "raise":
            if is_compiling():
                raise RuntimeError("empty='raise' needs a data-dependent check that torch.compile "
                                   "cannot trace; use empty='zero' or 'nan' in compiled code")
            if bool(empty_rows.any()):
                rows = empty_rows.nonzero().squeeze(1)[:10].tolist()
                raise ValueError(
                    f"{type(self).__name__}: rows {rows} have no real token (all padding) and "
                    f"empty='raise'; use empty='zero' or 'nan' to pool them"
                )
            return out
        fill = 0.0 if self.empty == "zero" else float("nan")
        shape = (-1,) + (1,) * (out.dim() - 1)
        return out.masked_fill(empty_rows.view(shape), fill)
