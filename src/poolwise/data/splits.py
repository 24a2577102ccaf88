"""Seeded, stratified splits: the same seed gives the same split on every machine."""

from __future__ import annotations

import numpy as np


def stratified_split(labels: np.ndarray, fractions: tuple[float, ...], seed: int) -> list[np.ndarray]:
    """Split indices ``0..len(labels)-1`` into ``len(fractions)`` sorted parts whose class
    proportions follow ``labels``; ``fractions`` sum to 1. Every class with enough members
    puts at least one in each part."""
    labels = np.asarray(labels)
    if abs(sum(fractions) - 1.0) > 1e-6 or min(fractions) <= 0:
        raise ValueError(f"fractions must be positive and sum to 1; got {fractions}")
    rng = np.random.default_rng(seed)
    parts: list[list[int]] = [[] for _ in fractions]
    bounds = np.cumsum(fractions)[:-1]
    for cls in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == cls))
        cuts = np.round(bounds * len(idx)).astype(int)
        for j, chunk in enumerate(np.split(idx, cuts)):
            parts[j].extend(chunk.tolist())
    return [np.sort(np.asarray(p, dtype=np.int64)) for p in parts]


def subsample(labels: np.ndarray, limit: int, seed: int) -> np.ndarray:
    """At most ``limit`` indices, stratified by label (all when ``limit`` is 0 or larger)."""
    n = len(labels)
    if limit <= 0 or limit >= n:
        return np.arange(n)
    keep, _ = stratified_split(labels, (limit / n, 1 - limit / n), seed)
    return keep
