"""Encoders used by the tasks, and encoder + pooler models."""

from .encoder import PreLNEncoder, PreLNLayer
from .knn import KNNCentroidModel

__all__ = ["KNNCentroidModel", "PreLNEncoder", "PreLNLayer"]
