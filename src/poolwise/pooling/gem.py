"""Generalised mean (GeM / power mean) pooling, defined for inputs of any sign."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from .base import Pooler
from .functional import at_least_fp32, keep_mask, masked_max, masked_min
from .fused import fused_gem
from .registry import register
from .validation import check_flag, check_float, check_int


@register("gem")
class GeMPooling(Pooler):
    r"""Generalised-mean pooling (Radenović, Tolias and Chum, *Fine-tuning CNN Image
    Retrieval with No Human Annotation*, TPAMI 2018), with learnable power :math:`p`.

    Classic GeM, :math:`(\frac1n\sum_i x_i^p)^{1/p}`, is undefined for negative values and is
    usually applied after ``clamp(min=eps)``, which throws away the sign of transformer
    outputs. poolwise shifts each feature by its minimum over the real tokens instead:

    .. math::
        m_d = \min_i x_{i,d},\quad M_d = \max_i x_{i,d},\quad
        s_d = M_d - m_d + 2\epsilon,\quad z_{i,d} = \frac{x_{i,d} - m_d + \epsilon}{s_d}
        \in (0, 1),
    .. math::
        y_d = m_d - \epsilon + s_d \Big(\frac{1}{n}\sum_{i=1}^{n} z_{i,d}^{\,p}\Big)^{1/p}

    This equals the mean exactly at :math:`p = 1`, tends to the max as :math:`p \to \infty`,
    commutes with shifting the input, and never overflows (:math:`z \le 1`).
    The power is kept in :math:`(p_{min}, p_{max})` by a sigmoid reparametrisation, so it
    cannot run to NaN or to an unbounded value (PyG#10366).

    Args:
        p (float): initial power. (default: ``3.0``)
        learn (bool): learn :math:`p`. (default: ``True``)
        channels (int): 1 (shared :math:`p`) or ``D`` (one per feature). (default: ``1``)
        p_min (float): lower bound of :math:`p`, > 0. (default: ``1.0``)
        p_max (float): upper bound of :math:`p`. (default: ``10.0``)
        eps (float): the offset :math:`\epsilon`. (default: ``1e-6``)
        empty (str): policy for rows with no real token. (default: ``"zero"``)
    """

    config_keys = ("p", "learn", "channels", "p_min", "p_max", "eps", "empty")
    row_chunk_bytes = 4 << 20

    def __init__(
        self, p: float = 3.0, learn: bool = True, channels: int = 1, p_min: float = 1.0,
        p_max: float = 10.0, eps: float = 1e-6, *, empty: str = "zero",
        device: torch.device | str | None = None, dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__(empty=empty)
        for name, value in (("p", p), ("p_min", p_min), ("p_max", p_max), ("eps", eps)):
            check_float(value, name, "GeMPooling")
        check_flag(learn, "learn", "GeMPooling")
        if not 0 < p_min < p_max:
            raise ValueError(f"GeMPooling: need 0 < p_min < p_max; got p_min={p_min!r}, p_max={p_max!r}")
        if learn and not p_min < p < p_max:
            raise ValueError(f"GeMPooling: a learned p must start strictly inside (p_min, p_max) = "
                             f"({p_min}, {p_max}); got p={p!r}")
        if not learn and not p_min <= p <= p_max:
            raise ValueError(f"GeMPooling: p must lie in [p_min, p_max] = [{p_min}, {p_max}]; got {p!r}")
        check_int(channels, "channels", "GeMPooling")
        if channels > 1 and not learn:
            raise ValueError("GeMPooling: channels > 1 needs learn=True")
        if eps <= 0:
            raise ValueError(f"GeMPooling: eps must be > 0; got {eps!r}")
        self.p, self.learn, self.channels = float(p), learn, channels
        self.p_min, self.p_max, self.eps = float(p_min), float(p_max), float(eps)
        raw = torch.full((channels,), self._logit(self.p), device=device, dtype=dtype)
        if learn:
            self.p_raw = nn.Parameter(raw)
        else:
            self.register_buffer("p_raw", torch.full((channels,), self.p, device=device, dtype=dtype))

    def _logit(self, p: float) -> float:
        frac = (p - self.p_min) / (self.p_max - self.p_min)
        return math.log(frac / (1 - frac)) if 0 < frac < 1 else 0.0

    @property
    def power(self) -> Tensor:
        """Current :math:`p` (per channel)."""
        if not self.learn:
            return at_least_fp32(self.p_raw)
        return self.p_min + (self.p_max - self.p_min) * torch.sigmoid(at_least_fp32(self.p_raw))

    def reset_parameters(self) -> None:
        if self.learn:
            with torch.no_grad():
                self.p_raw.fill_(self._logit(self.p))

    def _check_input(self, x: Tensor) -> None:
        if self.channels not in (1, x.shape[-1]):
            raise ValueError(f"GeMPooling: x has D={x.shape[-1]} features but channels="
                             f"{self.channels} (expected 1 or D)")

    def _pool_fused(self, x: Tensor, mask: Tensor | None) -> Tensor | None:
        # float32 CPU eager: two passes over the real tokens in C++ (min/max, then z^p), with
        # a compiled backward pass in training
        return fused_gem(x, mask, self.power, self.eps)

    def _pool(self, x: Tensor, mask: Tensor | None) -> Tensor:
        xf = at_least_fp32(x)
        keep = keep_mask(x, mask)
        has_tokens = keep.any(1, keepdim=True)[..., None]  # empty rows: avoid inf - inf
        low = torch.where(has_tokens, masked_min(xf, keep)[:, None], 0.0)
        high = torch.where(has_tokens, masked_max(xf, keep)[:, None], 0.0)
        span = high - low + 2 * self.eps
        # real tokens lie strictly inside (0, 1); the clamp only tames padding values
        tiny = torch.finfo(xf.dtype).tiny
        z = ((xf - low + self.eps) / span).clamp(tiny, 1.0)
        p = self.power
        weight = (keep / keep.sum(1, keepdim=True).clamp_min(1))[..., None]
        mean_pow = (z.pow(p) * weight).sum(1).clamp_min(tiny)
        out = low[:, 0] - self.eps + span[:, 0] * mean_pow.pow(1.0 / p)
        return out.to(x.dtype)
