"""Softmax (temperature) aggregation."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from .base import Pooler
from .functional import at_least_fp32
from .fused import fused_softmax
from .registry import register
from .validation import check_flag, check_float, check_int


@register("softmax")
class SoftmaxPooling(Pooler):
    r"""Softmax aggregation (Li et al., *DeeperGCN*, 2020; PyG's ``SoftmaxAggregation``):
    per feature, a softmax over the real tokens with temperature :math:`t`.

    .. math::
        y_d = \sum_{i=1}^{n} \frac{\exp(t_d\, x_{i,d})}{\sum_{j} \exp(t_d\, x_{j,d})}\, x_{i,d}

    :math:`t = 0` is the mean, :math:`t \to \infty` the max and :math:`t \to -\infty` the
    min, so a learned :math:`t` interpolates between them. Computed in fp32.

    Args:
        t (float): initial temperature. (default: ``1.0``)
        learn (bool): learn the temperature. (default: ``True``)
        channels (int): 1 (one shared temperature) or ``D`` (one per feature). (default: ``1``)
        empty (str): policy for rows with no real token. (default: ``"zero"``)
    """

    config_keys = ("t", "learn", "channels", "empty")
    row_chunk_bytes = 4 << 20

    def __init__(
        self, t: float = 1.0, learn: bool = True, channels: int = 1, *, empty: str = "zero",
        device: torch.device | str | None = None, dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__(empty=empty)
        check_float(t, "t", "SoftmaxPooling")
        check_flag(learn, "learn", "SoftmaxPooling")
        check_int(channels, "channels", "SoftmaxPooling")
        if channels > 1 and not learn:
            raise ValueError("SoftmaxPooling: channels > 1 needs learn=True (one learned "
                             "temperature per feature)")
        self.t, self.learn, self.channels = float(t), learn, channels
        value = torch.full((channels,), self.t, device=device, dtype=dtype)
        if learn:
            self.temperature = nn.Parameter(value)
        else:
            self.register_buffer("temperature", value)

    def reset_parameters(self) -> None:
        with torch.no_grad():
            self.temperature.fill_(self.t)

    def _check_input(self, x: Tensor) -> None:
        if self.channels not in (1, x.shape[-1]):
            raise ValueError(f"SoftmaxPooling: x has D={x.shape[-1]} features but channels="
                             f"{self.channels} (expected 1 or D)")

    def _pool_fused(self, x: Tensor, mask: Tensor | None) -> Tensor | None:
        # float32 CPU eager: two passes over the real tokens in C++ (maximum, then sums), with
        # a compiled backward pass in training
        return fused_softmax(x, mask, self.temperature)

    def _pool(self, x: Tensor, mask: Tensor | None) -> Tensor:
        xf = at_least_fp32(x)
        scores = xf * self.temperature.to(xf.dtype)
        if mask is not None:
            scores = scores.masked_fill(~mask[..., None], torch.finfo(xf.dtype).min)
        weights = torch.softmax(scores, dim=1)
        return (weights * xf).sum(1).to(x.dtype)
