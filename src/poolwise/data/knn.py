"""The kNN-Centroid task of the AdaPool paper (Brothers, ICML 2025, section 2.1 of our notes).

Each sample is a set of ``num_vectors`` vectors drawn i.i.d. from a distribution of its own:
``dim // 3 + 1`` normal, uniform and (signed, shifted) exponential features each, scaled by
``1/sqrt(dim)``, shuffled, the first ``dim`` kept. Vector 0 is the query; the target is the
mean of its ``k`` nearest neighbours (Euclidean, itself excluded). The ``k`` neighbours are
the signal and the rest noise, so ``SNR = k / num_vectors``.

Generation is vectorised over samples (numpy ``Generator``), so it reproduces the paper's
distribution, not its exact numbers (the paper loops over samples with the legacy global
seed). Arrays are cached on disk, keyed by every parameter, and written atomically.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from .cache import scratch_path

KNN_VALUES = (1, 2, 4, 8, 16, 32, 64, 128)
"""The paper's k values (signal tokens out of 128, so SNR = k/128)."""
_CHUNK = 20_000  # samples generated at once (bounds peak memory for the paper's 1M samples)
_VERSION = 1  # bump when the generator changes, so stale caches are not reused


def cache_dir() -> Path:
    """``$POOLWISE_CACHE`` or ``~/.cache/poolwise``."""
    root = os.environ.get("POOLWISE_CACHE") or Path.home() / ".cache" / "poolwise"
    return Path(root) / "knn_centroid"


def _sample_sets(rng: np.random.Generator, n: int, num_vectors: int, dim: int) -> np.ndarray:
    m = dim // 3 + 1
    shape = (n, num_vectors, m)
    mean = rng.uniform(-3, 3, (n, 1, m))
    std = rng.uniform(1, 3, (n, 1, m))
    normal = rng.normal(size=shape) * std + mean
    low = rng.uniform(-3, 3, (n, 1, m))
    high = low + rng.uniform(0.2, 3, (n, 1, m))
    uniform = rng.uniform(size=shape) * (high - low) + low
    scale = rng.uniform(0.1, 2, (n, 1, m))
    sign = rng.choice([-1.0, 1.0], size=(n, 1, m))
    shift = -sign * rng.uniform(0, 3, (n, 1, m))
    expo = rng.exponential(size=shape) * scale * sign + shift
    feats = np.concatenate([normal, uniform, expo], axis=2) / np.sqrt(dim)  # (n, N, 3m)
    keep = np.argsort(rng.random((n, 3 * m)), axis=1)[:, :dim]  # per-sample feature shuffle
    return np.take_along_axis(feats, keep[:, None, :], axis=2).astype(np.float32)


def _neighbour_means(x: np.ndarray, ks: tuple[int, ...]) -> np.ndarray:
    """Mean of the k nearest neighbours of vector 0 (itself excluded), for every k: ``(n, len(ks), d)``."""
    dist = ((x - x[:, :1]) ** 2).sum(-1)  # (n, N); self distance 0
    dist[:, 0] = np.inf  # exclude the query itself, even if a duplicate sits at distance 0
    order = np.argsort(dist, axis=1, kind="stable")
    ordered = np.take_along_axis(x, order[:, :, None], axis=1)
    csum = np.cumsum(ordered.astype(np.float64), axis=1)
    return np.stack([csum[:, k - 1] / k for k in ks], axis=1).astype(np.float32)


def _generate(num_samples: int, num_vectors: int, dim: int, seed: int, ks: tuple[int, ...]):
    rng = np.random.default_rng(seed)
    xs, ys = [], []
    for start in range(0, num_samples, _CHUNK):
        x = _sample_sets(rng, min(_CHUNK, num_samples - start), num_vectors, dim)
        xs.append(x)
        ys.append(_neighbour_means(x, ks))
    return np.concatenate(xs), np.concatenate(ys)


def _check(num_samples: int, k: int | None, num_vectors: int, dim: int) -> None:
    for name, value in (("num_samples", num_samples), ("num_vectors", num_vectors), ("dim", dim)):
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive int; got {value!r}")
    if num_vectors < 2:
        raise ValueError(f"num_vectors must be >= 2 (a query and a neighbour); got {num_vectors}")
    if k is not None and (not isinstance(k, int) or not 1 <= k <= num_vectors):
        raise ValueError(f"k must be an int in [1, num_vectors]; got {k!r}")


def _ks(num_vectors: int) -> tuple[int, ...]:
    ks = (*tuple(k for k in KNN_VALUES if k < num_vectors), num_vectors - 1)
    return tuple(dict.fromkeys(ks))


def knn_centroid_all(num_samples: int, num_vectors: int = 128, dim: int = 16, seed: int = 0,
                     cache: bool = True) -> tuple[Tensor, dict[int, Tensor]]:
    """Inputs ``(num_samples, num_vectors, dim)`` and the targets for every k at once.

    k runs over 1, 2, 4, ... below ``num_vectors`` and ``num_vectors - 1`` (all other vectors,
    the paper's k=128 with N=128; ``knn_centroid`` accepts ``k=num_vectors`` for it)."""
    _check(num_samples, None, num_vectors, dim)
    ks = _ks(num_vectors)
    key = f"v{_VERSION}-n{num_samples}-N{num_vectors}-d{dim}-s{seed}"
    path = cache_dir() / f"{hashlib.sha1(key.encode()).hexdigest()[:16]}-{key}.npz"
    if cache and path.exists():
        with np.load(path, allow_pickle=False) as f:
            x, y = f["x"], f["y"]
    else:
        x, y = _generate(num_samples, num_vectors, dim, seed, ks)
        if cache:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = scratch_path(path)
            with open(tmp, "wb") as fh:
                np.savez(fh, x=x, y=y)
            os.replace(tmp, path)  # atomic: a crash never leaves a half-written cache file
    targets = {k: torch.from_numpy(y[:, i]) for i, k in enumerate(ks)}
    return torch.from_numpy(x), targets


def knn_centroid(num_samples: int, k: int, num_vectors: int = 128, dim: int = 16, seed: int = 0,
                 cache: bool = True) -> tuple[Tensor, Tensor]:
    """``(X, y)``: float32 ``(num_samples, num_vectors, dim)`` sets and ``(num_samples, dim)``
    targets, the mean of the ``k`` nearest neighbours of ``X[:, 0]`` (itself excluded).
    ``k = num_vectors`` is read as "all other vectors" (the paper's k=128 at N=128)."""
    _check(num_samples, k, num_vectors, dim)
    x, targets = knn_centroid_all(num_samples, num_vectors, dim, seed, cache)
    kk = min(k, num_vectors - 1)
    if kk not in targets:
        y = torch.from_numpy(_neighbour_means(x.numpy(), (kk,))[:, 0])
        return x, y
    return x, targets[kk]


def knn_baselines(x: Tensor, y: Tensor) -> dict[str, float]:
    """Signal loss (MSE) of the two non-learned predictors: the centroid of all vectors,
    and the query vector itself."""
    centroid = x.mean(1)
    return {
        "centroid": float(((centroid - y) ** 2).mean()),
        "query": float(((x[:, 0] - y) ** 2).mean()),
    }
