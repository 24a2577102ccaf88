"""Task data: the kNN-Centroid generator (and, later, offline text / vision / time-series sets)."""

from .knn import KNN_VALUES, knn_baselines, knn_centroid, knn_centroid_all

__all__ = ["KNN_VALUES", "knn_baselines", "knn_centroid", "knn_centroid_all"]
