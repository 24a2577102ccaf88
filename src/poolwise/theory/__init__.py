"""Closed forms of the two papers: the AdaPool paper's signal loss and the pooling factors
of *Pool Me Wisely*."""

from .expressivity import expressivity_bound, pooling_factor, pooling_lipschitz_ratio
from .lipschitz import empirical_lipschitz, layer_constants, mha_lipschitz_bound
from .signal import (
    attention_weight_bounds,
    check_adapool_weights,
    check_attention_weights,
    max_pool_signal_loss,
    mean_pool_signal_loss,
    optimal_pool,
    signal_loss,
    signal_spread,
    snr,
)

__all__ = [
    "empirical_lipschitz", "layer_constants", "mha_lipschitz_bound",
    "attention_weight_bounds", "check_adapool_weights", "check_attention_weights", "expressivity_bound",
    "max_pool_signal_loss",
    "mean_pool_signal_loss", "optimal_pool", "pooling_factor", "pooling_lipschitz_ratio", "signal_loss",
    "signal_spread", "snr",
]
