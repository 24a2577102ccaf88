"""Measurements of poolings on any encoder: expressivity curves, similar vs dissimilar inputs,
cross-pooler agreement, distractor (SNR) robustness."""

from .encoder import HFTextEncoder, WordEncoder
from .measures import (
    DEFAULT_EPSILONS,
    DEFAULT_POOLERS,
    agreement_matrix,
    distractor_robustness,
    expressivity_curve,
    similarity_gap,
    weight_profile,
)

__all__ = [
    "DEFAULT_EPSILONS", "DEFAULT_POOLERS", "HFTextEncoder", "agreement_matrix",
    "WordEncoder", "distractor_robustness", "expressivity_curve", "similarity_gap", "weight_profile",
]
