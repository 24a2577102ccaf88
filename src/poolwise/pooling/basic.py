r"""Parameter-free poolers.

Notation: a row has real tokens :math:`x_1, \dots, x_n \in \mathbb{R}^D` (in order, padding
removed); :math:`y \in \mathbb{R}^D` is the pooled vector. Pooling factors in the docstrings
are the leading factors of the expressivity bound of *Pool Me Wisely* (Ennadir et al.,
NeurIPS 2025, Thm. 4.2): how much a pooler scales a perturbation of its input set.
"""

from __future__ import annotations

import torch
from torch import Tensor

from .base import Pooler
from .dispatch import gpu_reduce, route
from .functional import (
    Segments,
    WeightFn,
    cu_offsets,
    first_index,
    fused_weighted_sum,
    gather_tokens,
    last_index,
    masked_extreme,
    mean_weight,
    packed_weighted_sum,
    segment_extreme,
    sum_weight,
    weighted_reduce,
)
from .registry import register


class _WeightedSumPooler(Pooler):
    """A pooler of the form :math:`y = \\sum_i w(i, n) x_i` with fixed weights ``weight``."""

    #: fp32 weight of a token from its row's real-token count and 1-based rank
    weight: WeightFn
    #: ``weight``'s mode in the compiled masked sum: 0 sum, 1 mean, 2 sqrt_len, 3 by rank
    kernel_mode: int

    def _pool_fused(self, x: Tensor, mask: Tensor | None) -> Tensor | None:
        return fused_weighted_sum(x, mask, self.kernel_mode)

    def _pool(self, x: Tensor, mask: Tensor | None) -> Tensor:
        return weighted_reduce(x, mask, self.weight)

    def _pool_packed(self, x: Tensor, cu_seqlens: Tensor) -> Tensor:
        return packed_weighted_sum(x, cu_seqlens, self.weight, self.kernel_mode)


def _sqrt_len_weight(count: Tensor, rank: Tensor) -> Tensor:
    return torch.ones_like(rank) / count.sqrt()


def _position_weight(count: Tensor, rank: Tensor) -> Tensor:
    return rank / (count * (count + 1) / 2)


@register("sum")
class SumPooling(_WeightedSumPooler):
    r"""Sum of the real tokens.

    .. math::
        y = \sum_{i=1}^{n} x_i

    Pooling factor :math:`\sqrt{n}` (expansive; *Pool Me Wisely*). In fp16 the sum is
    accumulated in fp32 but returned in fp16, so a sum beyond 65504 is ``inf``: that value
    has no fp16 representation (use ``mean`` or an fp32 input).

    Args:
        empty (str): policy for rows with no real token. (default: ``"zero"``)
    """

    weight = staticmethod(sum_weight)
    kernel_mode = 0


@register("mean", "avg")
class MeanPooling(_WeightedSumPooler):
    r"""Average of the real tokens (AvgPool).

    .. math::
        y = \frac{1}{n} \sum_{i=1}^{n} x_i

    Pooling factor :math:`1/\sqrt{n}` (contractive; *Pool Me Wisely*). Signal-optimal only
    when every token is signal (*Robust Noise Attenuation via Adaptive Pooling*, Brothers,
    ICML 2025). Weights :math:`1/n` are applied while accumulating in fp32, so an fp16 mean of
    large activations stays finite.

    Args:
        empty (str): policy for rows with no real token. (default: ``"zero"``)
    """

    weight = staticmethod(mean_weight)
    kernel_mode = 1


@register("mean_sqrt_len")
class MeanSqrtLenPooling(_WeightedSumPooler):
    r"""Sum divided by the square root of the length (sentence-transformers'
    ``mean_sqrt_len_tokens``; PyG's ``VariancePreservingAggregation``).

    .. math::
        y = \frac{1}{\sqrt{n}} \sum_{i=1}^{n} x_i

    Args:
        empty (str): policy for rows with no real token. (default: ``"zero"``)
    """

    weight = staticmethod(_sqrt_len_weight)
    kernel_mode = 2


@register("weighted_mean")
class WeightedMeanPooling(_WeightedSumPooler):
    r"""Position-weighted mean (SGPT, Muennighoff 2022): later tokens weigh more.

    .. math::
        y = \sum_{i=1}^{n} \frac{i}{n(n+1)/2} x_i

    :math:`i` counts real tokens from the first one, so left padding, right padding and
    holes give the same result (sentence-transformers numbers absolute positions, which
    differs under left padding). Weights are fp32, so no overflow in fp16 (beyond 361
    tokens the fp16 weight sum of sentence-transformers overflows to zeros).

    Args:
        empty (str): policy for rows with no real token. (default: ``"zero"``)
    """

    is_set_function = False

    weight = staticmethod(_position_weight)
    kernel_mode = 3


class _ExtremePooler(Pooler):
    largest: bool

    def _pool_fused(self, x: Tensor, mask: Tensor | None) -> Tensor | None:
        gpu = gpu_reduce(x)
        return None if gpu is None else gpu.masked_reduce(x, mask, "max" if self.largest else "min")

    def _pool(self, x: Tensor, mask: Tensor | None) -> Tensor:
        return masked_extreme(x, mask, self.largest)

    def _pool_packed(self, x: Tensor, cu_seqlens: Tensor) -> Tensor:
        gpu = gpu_reduce(x)
        if gpu is not None:
            return gpu.segment_reduce(x, cu_seqlens, "max" if self.largest else "min")
        if not route(x).segments:  # GPUs, autograd: pad once, then one dense reduction (no row loop)
            return super()._pool_packed(x, cu_seqlens)
        return segment_extreme(Segments.from_packed(x, cu_seqlens), self.largest)


@register("max")
class MaxPooling(_ExtremePooler):
    r"""Feature-wise maximum over the real tokens (MaxPool).

    .. math::
        y_d = \max_{i \le n} x_{i,d}

    Pooling factor :math:`\sqrt{\min(n, D)}` (*Pool Me Wisely*). Signal-optimal only for a
    single signal token that holds the maximum of every feature (Brothers, ICML 2025).
    Padding is excluded by index, never by writing ``-inf`` into a copy of the input.

    Args:
        empty (str): policy for rows with no real token. (default: ``"zero"``)
    """

    largest = True


@register("min")
class MinPooling(_ExtremePooler):
    r"""Feature-wise minimum over the real tokens.

    .. math::
        y_d = \min_{i \le n} x_{i,d}

    Args:
        empty (str): policy for rows with no real token. (default: ``"zero"``)
    """

    largest = False


class _TokenPooler(Pooler):
    is_set_function = False
    use_last: bool

    def _pool(self, x: Tensor, mask: Tensor | None) -> Tensor:
        if mask is None:
            return x[:, -1] if self.use_last else x[:, 0]
        index = last_index(mask) if self.use_last else first_index(mask)
        return gather_tokens(x, index)

    def _pool_packed(self, x: Tensor, cu_seqlens: Tensor) -> Tensor:
        if x.shape[0] == 0:
            return x.new_zeros(cu_seqlens.shape[0] - 1, x.shape[1])
        cu = cu_offsets(cu_seqlens, x.device)
        index = (cu[1:] - 1).clamp_min(0) if self.use_last else cu[:-1].clamp_max(x.shape[0] - 1)
        return x.index_select(0, index)  # a third of the cost of x[index] for B rows


@register("first", "cls")
class FirstPooling(_TokenPooler):
    r"""The first *real* token (CLS pooling for encoders with a leading ``[CLS]``).

    .. math::
        y = x_1

    The position comes from the mask, so left padding returns the CLS token and not a pad
    (the bug of sentence-transformers 5.x). Pooling factor 1 (*Pool Me Wisely*).

    Args:
        empty (str): policy for rows with no real token. (default: ``"zero"``)
    """

    use_last = False


@register("last")
class LastPooling(_TokenPooler):
    r"""The last *real* token (EOS / last-token pooling for decoder models).

    .. math::
        y = x_n

    Found from the mask as the rightmost real position, so it is right under left padding
    and when the pad id equals the EOS id. Pooling factor 1 (*Pool Me Wisely*).

    Args:
        empty (str): policy for rows with no real token. (default: ``"zero"``)
    """

    use_last = True
