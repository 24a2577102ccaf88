"""Closed forms of the two papers: the AdaPool paper's signal loss and the pooling factors
of *Pool Me Wisely*, with the attention layers and norms its bounds are stated for."""

from .attention_variants import CenterNorm, L2MultiheadAttention, ScaledCosineAttention
from .expressivity import (
    centernorm_lipschitz,
    expressivity_bound,
    layernorm_lipschitz,
    pooling_factor,
    pooling_lipschitz_ratio,
)
from .lipschitz import (
    empirical_lipschitz,
    l2_mha_lipschitz_bound,
    lambert_w0,
    layer_constants,
    local_lipschitz,
    mha_lipschitz_bound,
    scsa_lipschitz_bound,
)
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
    "CenterNorm", "L2MultiheadAttention", "ScaledCosineAttention",
    "centernorm_lipschitz", "layernorm_lipschitz", "l2_mha_lipschitz_bound", "lambert_w0", "local_lipschitz",
    "scsa_lipschitz_bound",
    "empirical_lipschitz", "layer_constants", "mha_lipschitz_bound",
    "attention_weight_bounds", "check_adapool_weights", "check_attention_weights", "expressivity_bound",
    "max_pool_signal_loss",
    "mean_pool_signal_loss", "optimal_pool", "pooling_factor", "pooling_lipschitz_ratio", "signal_loss",
    "signal_spread", "snr",
]
