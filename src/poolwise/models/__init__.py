"""Encoders used by the tasks, and encoder + pooler models."""

from .encoder import PreLNEncoder, PreLNLayer
from .knn import CLS_TOKEN, KNNCentroidModel

__all__ = ["CLS_TOKEN", "KNNCentroidModel", "PreLNEncoder", "PreLNLayer"]
