"""Encoders used by the tasks, and encoder + pooler models."""

from .encoder import PreLNEncoder, PreLNLayer
from .knn import CLS_TOKEN, KNNCentroidModel
from .token_policy import TokenEncoder
from .vit import VisionTransformer, focal_indices

__all__ = [
    "CLS_TOKEN", "KNNCentroidModel", "PreLNEncoder", "PreLNLayer", "TokenEncoder", "VisionTransformer",
    "focal_indices",
]
