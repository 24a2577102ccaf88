"""Gated attention pooling (attention-based multiple-instance learning)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from .base import Pooler
from .functional import at_least_fp32, dense_weighted_sum, masked_softmax, packs_fewer_tokens
from .registry import register
from .validation import check_dim, check_int, check_weight_dtype


@register("gated")
class GatedAttentionPooling(Pooler):
    r"""Gated attention pooling (Ilse, Tomczak and Welling, *Attention-based Deep Multiple
    Instance Learning*, ICML 2018): a content-dependent weight per token from a small gated
    MLP, softmax-normalised over the real tokens.

    .. math::
        a_i = \operatorname{softmax}_i\Big(w^\top\big(\tanh(V x_i) \odot
              \sigma(U x_i)\big)\Big), \qquad y = \sum_{i=1}^{n} a_i x_i

    Args:
        dim (int): token feature size :math:`D`.
        hidden (int, optional): size of the gated layer; ``None`` means ``min(dim, 128)``
            (the paper uses 128). (default: ``None``)
        empty (str): policy for rows with no real token. (default: ``"zero"``)
    """

    config_keys = ("dim", "hidden", "empty")
    row_chunk_bytes = 16 << 20  # GEMM-heavy: larger chunks keep the GEMMs efficient
    has_weights = True

    def __init__(
        self, dim: int, hidden: int | None = None, *, empty: str = "zero",
        device: torch.device | str | None = None, dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__(empty=empty)
        self.dim = check_int(dim, "dim", "GatedAttentionPooling")
        self.hidden = None if hidden is None else check_int(hidden, "hidden", "GatedAttentionPooling")
        width = hidden or min(dim, 128)
        dd = {"device": device, "dtype": dtype}
        self.gate = nn.Linear(dim, 2 * width, **dd)  # V and U stacked
        self.score = nn.Linear(width, 1, **dd)

    def reset_parameters(self) -> None:
        self.gate.reset_parameters()
        self.score.reset_parameters()

    def _check_input(self, x: Tensor) -> None:
        check_dim(x, self.dim, type(self).__name__)
        check_weight_dtype(x, self.gate.weight, type(self).__name__)

    def attention_weights(self, x: Tensor, mask: Tensor | None = None) -> Tensor | None:
        """Token weights ``(B, N)`` (zero on padding), in fp32."""
        x, keep = self._prepare(x, mask)
        with torch.no_grad():
            return self._weights(x, keep)

    def _scores(self, x: Tensor) -> Tensor:
        v, u = self.gate(x).chunk(2, dim=-1)
        return self.score(torch.tanh(v) * torch.sigmoid(u)).squeeze(-1)

    def _weights(self, x: Tensor, mask: Tensor | None) -> Tensor:
        if not packs_fewer_tokens(x, mask):
            return masked_softmax(self._scores(x), mask)  # (B, N)
        # each score depends on its own token only: score the real tokens, skip the padding
        real = at_least_fp32(self._scores(x[mask]))
        scores = torch.zeros(mask.shape, device=x.device, dtype=real.dtype).masked_scatter(mask, real)
        return masked_softmax(scores, mask)

    def _pool(self, x: Tensor, mask: Tensor | None) -> Tensor:
        return dense_weighted_sum(x, self._weights(x, mask))
