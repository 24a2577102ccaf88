"""Task data: the kNN-Centroid generator, image sets on SNR canvases, the CIFAR binary reader
(the offline text / vision / time-series sets of the frozen benchmarks live in their modules)."""

from .canvas import image_snr, load_image_set, place_on_canvas
from .cifar import load_cifar
from .knn import KNN_VALUES, knn_baselines, knn_centroid, knn_centroid_all

__all__ = [
    "KNN_VALUES", "image_snr", "knn_baselines", "knn_centroid", "knn_centroid_all", "load_cifar",
    "load_image_set", "place_on_canvas",
]
