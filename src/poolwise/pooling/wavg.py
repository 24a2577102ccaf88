"""W-Avg: a learned weight per token position."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from .base import Pooler
from .dispatch import is_compiling
from .functional import counts, dense_weighted_sum, keep_mask, masked_softmax, ranks
from .registry import register
from .validation import check_int


@register("wavg")
class WeightedAveragePooling(Pooler):
    r"""Learned weighted average over token positions, the W-Avg pooling of *Pool Me Wisely*
    (Ennadir et al., NeurIPS 2025): one scalar logit per position, shared by all features,
    softmax-normalised over the real positions of each row.

    .. math::
        a_i = \frac{\exp(w_{\pi(i)})}{\sum_{j=1}^{n} \exp(w_{\pi(j)})},\qquad
        y = \sum_{i=1}^{n} a_i x_i

    :math:`\pi(i)` is the position counted among real tokens from the first one
    (``align="start"``) or back from the last one (``align="end"``, so "the last token" is
    one learned weight whatever the length). The logits start at 0, so W-Avg equals ``mean``
    at initialisation. The paper does not state its normalisation or initialisation; this is
    our reconstruction.

    Args:
        max_len (int): number of positions with a weight; longer rows raise an error.
        align (str): ``"start"`` or ``"end"``. (default: ``"start"``)
        empty (str): policy for rows with no real token. (default: ``"zero"``)
    """

    config_keys = ("max_len", "align", "empty")
    is_set_function = False
    has_weights = True

    def __init__(
        self, max_len: int, align: str = "start", *, empty: str = "zero",
        device: torch.device | str | None = None, dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__(empty=empty)
        check_int(max_len, "max_len", "WeightedAveragePooling")
        if align not in ("start", "end"):
            raise ValueError(f"WeightedAveragePooling: align must be 'start' or 'end'; got {align!r}")
        self.max_len, self.align = max_len, align
        self.logits = nn.Parameter(torch.zeros(max_len, device=device, dtype=dtype))

    def reset_parameters(self) -> None:
        nn.init.zeros_(self.logits)

    def position_weights(self, length: int) -> Tensor:
        """The weights a row of ``length`` real tokens gets, in token order ``(length,)``."""
        mask = torch.ones(1, length, dtype=torch.bool, device=self.logits.device)
        return masked_softmax(self.logits[self._positions(mask)], mask)[0]

    def attention_weights(self, x: Tensor, mask: Tensor | None = None) -> Tensor | None:
        """Token weights ``(B, N)`` (zero on padding), in fp32."""
        x, keep = self._prepare(x, mask)
        keep = keep_mask(x, keep)
        with torch.no_grad():
            return masked_softmax(self.logits[self._positions(keep)], keep)

    def _positions(self, mask: Tensor) -> Tensor:
        rank = ranks(mask)
        pos = rank - 1 if self.align == "start" else counts(mask)[:, None] - rank
        return pos.clamp(0, self.max_len - 1)

    def _pool(self, x: Tensor, mask: Tensor | None) -> Tensor:
        keep = keep_mask(x, mask)
        if x.shape[1] > self.max_len and not is_compiling():
            longest = int(counts(keep).max())
            if longest > self.max_len:
                raise ValueError(
                    f"WeightedAveragePooling: a row has {longest} real tokens but max_len="
                    f"{self.max_len}; build the pooler with max_len >= {longest}"
                )
        weights = masked_softmax(self.logits[self._positions(keep)], keep)
        return dense_weighted_sum(x, weights)
