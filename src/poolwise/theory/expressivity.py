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


NORMS = ("centernorm", "layernorm")


def centernorm_lipschitz(d: int, gamma_max: float = 1.0) -> float:
    """Lipschitz constant of LipsFormer's CenterNorm, :math:`\\frac{d}{d-1}\\max|\\gamma|`
    (the centring is a projection; the paper takes :math:`\\gamma = 1`)."""
    if d < 2:
        raise ValueError(f"CenterNorm needs d >= 2; got {d}")
    return d / (d - 1) * gamma_max


def layernorm_lipschitz(gamma_max: float, min_std: float, eps: float = 0.0) -> float:
    """Lipschitz bound of a standard LayerNorm on inputs (and perturbation paths) whose tokens
    keep a standard deviation of at least ``min_std``: its Jacobian at :math:`x` is
    :math:`\\frac{\\gamma}{s}(C - \\hat x\\hat x^\\top/d)`, :math:`s = \\sqrt{\\mathrm{var}+
    \\epsilon}`, with :math:`C - \\hat x\\hat x^\\top/d` between 0 and the identity, so
    :math:`\\max|\\gamma|/\\sqrt{s_{min}^2+\\epsilon}`. There is no global constant: a token
    whose features are nearly equal has an arbitrarily steep normalisation."""
    if min_std < 0 or eps < 0 or (min_std == 0 and eps == 0):
        raise ValueError(f"need min_std > 0 (or eps > 0); got min_std={min_std}, eps={eps}")
    return gamma_max / math.sqrt(min_std ** 2 + eps)


def expressivity_bound(name: str, epsilon: float, sigma: float, n: int, d: int,
                       c1: float = 1.0, c2: float = 1.0, *, norm: str = "centernorm",
                       norm_lipschitz: float | None = None) -> float:
    """Theorem 4.2's :math:`\\gamma` for pooling ``name``.

    The :math:`(d/(d-1))^2` factor is CenterNorm's constant squared (two norms per block,
    :math:`\\gamma = 1`), the LayerNorm variant the theorem assumes; ``d >= 2``. For a block
    with standard LayerNorm (BERT, ``nn.TransformerEncoderLayer``: ``norm="layernorm"``, as
    :func:`~poolwise.theory.layer_constants` reports) that factor is not a valid bound, and a
    ``ValueError`` says so unless ``norm_lipschitz`` gives the norm's constant on the inputs
    at hand (e.g. :func:`layernorm_lipschitz`); it then replaces :math:`d/(d-1)` for both norms."""
    if norm not in NORMS:
        raise ValueError(f"norm must be one of {', '.join(NORMS)}; got {norm!r}")
    if epsilon < 0 or sigma <= 0:
        raise ValueError(f"need epsilon >= 0 and sigma > 0; got epsilon={epsilon}, sigma={sigma}")
    if norm_lipschitz is None:
        if norm == "layernorm":
            raise ValueError(
                "the (d/(d-1))^2 factor is CenterNorm's constant and is not a valid bound for standard "
                "LayerNorm, which has no global Lipschitz constant (1/std grows without limit as a "
                "token's features become equal); pass norm_lipschitz=layernorm_lipschitz(gamma_max, "
                "min_std) for inputs whose tokens keep a standard deviation of at least min_std")
        norm_lipschitz = centernorm_lipschitz(d)
    elif not norm_lipschitz > 0:
        raise ValueError(f"norm_lipschitz must be > 0; got {norm_lipschitz}")
    return pooling_factor(name, n, d) * epsilon / sigma * norm_lipschitz ** 2 * c1 * c2


def pooling_lipschitz_ratio(pooler: str | Pooler, z: Tensor, delta: Tensor) -> Tensor:
    """Per row, :math:`\\lVert g(Z+\\Delta) - g(Z)\\rVert_2 / \\lVert\\Delta\\rVert_2` (spectral
    norm of :math:`\\Delta`); never above :func:`pooling_factor` for the five closed forms."""
    g = get_pooler(pooler) if isinstance(pooler, str) else pooler
    change = (g(z + delta) - g(z)).flatten(1).norm(dim=1)
    return change / torch.linalg.matrix_norm(delta, ord=2).clamp_min(torch.finfo(delta.dtype).tiny)
