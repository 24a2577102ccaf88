r"""Expressivity factors of *Pool Me Wisely* (Ennadir et al., NeurIPS 2025, Theorem 4.2).

For a one-block transformer followed by a pooling :math:`g`, the probability that two inputs
within distance :math:`\epsilon` map to outputs more than :math:`\sigma` apart is bounded by

.. math::
    \gamma = L_g\,\frac{\epsilon}{\sigma}\Big(\frac{d}{d-1}\Big)^2 C_1 C_2,

with the pooling factor :math:`L_g` = :math:`1/\sqrt n` (mean), :math:`\sqrt n` (sum), 1
(first/last/CLS) or :math:`\sqrt{\min(n, d)}` (max). :math:`L_g` is the Lipschitz constant of
the pooling from the spectral norm of the token-matrix change :math:`\Delta \in \mathbb
R^{n\times d}` to the Euclidean norm of the pooled change, which
:func:`pooling_lipschitz_ratio` measures. The paper's formulas for :math:`C_1, C_2` did not
survive in our copy; they are inputs here.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from ..pooling import Pooler, get_pooler, pooler_class

_FACTORS = {
    "mean": lambda n, d: 1 / math.sqrt(n),
    "sum": lambda n, d: math.sqrt(n),
    "first": lambda n, d: 1.0,
    "last": lambda n, d: 1.0,
    "max": lambda n, d: math.sqrt(min(n, d)),
}


def pooling_factor(name: str, n: int, d: int) -> float:
    """Leading factor :math:`L_g` of the bound for ``n`` tokens of dimension ``d``."""
    try:  # any registered spelling: "avg", "cls", "lasttoken", ...
        key = pooler_class(name).name
    except ValueError:
        key = name
    if key not in _FACTORS:
        raise ValueError(f"no closed-form pooling factor for {name!r}; known: {', '.join(sorted(_FACTORS))}")
    if n < 1 or d < 1:
        raise ValueError(f"n and d must be >= 1; got n={n}, d={d}")
    return _FACTORS[key](n, d)


def expressivity_bound(name: str, epsilon: float, sigma: float, n: int, d: int,
                       c1: float = 1.0, c2: float = 1.0) -> float:
    """Theorem 4.2's :math:`\\gamma` for pooling ``name`` (``d >= 2``, as the LayerNorm factor
    :math:`(d/(d-1))^2` requires)."""
    if d < 2:
        raise ValueError(f"d must be >= 2 for the (d/(d-1))^2 factor; got {d}")
    if epsilon < 0 or sigma <= 0:
        raise ValueError(f"need epsilon >= 0 and sigma > 0; got epsilon={epsilon}, sigma={sigma}")
    return pooling_factor(name, n, d) * epsilon / sigma * (d / (d - 1)) ** 2 * c1 * c2


def pooling_lipschitz_ratio(pooler: str | Pooler, z: Tensor, delta: Tensor) -> Tensor:
    """Per row, :math:`\\lVert g(Z+\\Delta) - g(Z)\\rVert_2 / \\lVert\\Delta\\rVert_2` (spectral
    norm of :math:`\\Delta`); never above :func:`pooling_factor` for the five closed forms."""
    g = get_pooler(pooler) if isinstance(pooler, str) else pooler
    change = (g(z + delta) - g(z)).flatten(1).norm(dim=1)
    return change / torch.linalg.matrix_norm(delta, ord=2).clamp_min(torch.finfo(delta.dtype).tiny)
