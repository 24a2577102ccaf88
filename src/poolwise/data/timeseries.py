"""Offline time series: UCR/UEA classification sets bundled in ``aeon`` and a long series
for forecasting, as padded patch sequences with masks (lengths may differ: JapaneseVowels)."""

from __future__ import annotations

import numpy as np

#: task suffix -> aeon name and patch length (about 12 to 32 patches per series)
UCR_SETS: dict[str, tuple[str, int]] = {
    "gunpoint": ("GunPoint", 8),
    "arrowhead": ("ArrowHead", 8),
    "italypowerdemand": ("ItalyPowerDemand", 2),
    "osuleaf": ("OSULeaf", 16),
    "basicmotions": ("BasicMotions", 4),
    "japanesevowels": ("JapaneseVowels", 1),
}


def _aeon():
    try:
        from aeon import datasets
    except ImportError:
        raise ValueError("time-series tasks need `pip install aeon==1.6.0`") from None
    return datasets


def load_ucr(name: str) -> dict[str, tuple[list[np.ndarray], np.ndarray]]:
    """``{"train": (series, labels), "test": ...}`` with the archive's own split; each series
    is a float32 ``(channels, length)`` array, z-normalised per channel; labels are ids of
    the sorted class names."""
    ds = _aeon()
    raw = {split: ds.load_classification(name, split=split) for split in ("train", "test")}
    classes = sorted(set(raw["train"][1]) | set(raw["test"][1]))
    index = {c: i for i, c in enumerate(classes)}
    out = {}
    for split, (x, y) in raw.items():
        series = [_znorm(np.asarray(s, dtype=np.float32)) for s in x]
        out[split] = (series, np.asarray([index[c] for c in y], dtype=np.int64))
    return out


def num_classes(name: str) -> int:
    """Class count of a bundled UCR/UEA set (both splits' labels)."""
    ds = _aeon()
    return len({c for split in ("train", "test") for c in ds.load_classification(name, split=split)[1]})


def _znorm(s: np.ndarray) -> np.ndarray:
    mu, sd = s.mean(axis=1, keepdims=True), s.std(axis=1, keepdims=True)
    return (s - mu) / np.where(sd > 1e-8, sd, 1.0)


def patchify(series: list[np.ndarray], patch: int) -> tuple[np.ndarray, np.ndarray]:
    """Cut each ``(C, L)`` series into ``ceil(L / patch)`` patches of ``C * patch`` values
    (channel-major), zero-padding the tail. Returns ``(patches (B, N, C*patch), mask (B, N))``
    with ``N`` the longest series' patch count."""
    channels = series[0].shape[0]
    counts = [-(-s.shape[1] // patch) for s in series]
    n = max(counts)
    out = np.zeros((len(series), n, channels * patch), dtype=np.float32)
    mask = np.zeros((len(series), n), dtype=bool)
    for i, s in enumerate(series):
        padded = np.zeros((channels, counts[i] * patch), dtype=np.float32)
        padded[:, : s.shape[1]] = s
        out[i, : counts[i]] = (
            padded.reshape(channels, counts[i], patch).transpose(1, 0, 2).reshape(counts[i], -1)
        )
        mask[i, : counts[i]] = True
    return out, mask


def load_forecast_series() -> np.ndarray:
    """One long univariate series: aeon's ElectricDevices segmentation recording (11,532 steps)."""
    s = _aeon().load_electric_devices_segmentation()
    s = s[0] if isinstance(s, tuple) else s
    return np.asarray(s, dtype=np.float32).reshape(-1)


def forecast_windows(
    series: np.ndarray,
    context: int,
    horizon: int,
    stride: int,
    min_context: int,
    seed: int,
    multiple: int = 1,
) -> tuple[list[np.ndarray], np.ndarray]:
    """Windows ending at every ``stride``-th step: a context of ``min_context..context``
    steps (random, seeded, a multiple of ``multiple`` so the newest patch is whole) and the
    next ``horizon`` values as the target. Each window is standardised by its own context's
    mean and standard deviation (instance normalisation, as in PatchTST's RevIN), so the
    level of the series at that time is not the question."""
    rng = np.random.default_rng(seed)
    xs, ys = [], []
    for end in range(context, len(series) - horizon + 1, stride):
        n = int(rng.integers(min_context // multiple, context // multiple + 1)) * multiple
        ctx = series[end - n : end]
        mu, sd = ctx.mean(), max(float(ctx.std()), 1e-3)
        xs.append(((ctx - mu) / sd)[None])
        ys.append((series[end : end + horizon] - mu) / sd)
    return xs, np.stack(ys).astype(np.float32)


def imputation_windows(
    series: np.ndarray, length: int, stride: int, patch: int, hidden: float, seed: int
) -> tuple[list[np.ndarray], np.ndarray, np.ndarray]:
    """Windows of ``length`` steps every ``stride`` steps, with a share ``hidden`` of their
    ``patch``-step patches hidden (random, seeded, at least one). Each window is standardised
    by the mean and standard deviation of its *observed* steps, so nothing of the hidden values
    leaks into the input. Returns the windows ``[(1, length)]``, the hidden patches
    ``(n, length // patch)`` bool and the targets ``(n, length)``: the hidden steps' values,
    NaN where a step was observed (scored only where hidden)."""
    if length % patch:
        raise ValueError(f"length {length} is not a multiple of the patch size {patch}")
    if not 0 < hidden < 1:
        raise ValueError(f"hidden must be in (0, 1); got {hidden}")
    rng = np.random.default_rng(seed)
    n_patches = length // patch
    k = max(1, round(hidden * n_patches))
    xs, hides, ys = [], [], []
    for end in range(length, len(series) + 1, stride):
        window = series[end - length : end].astype(np.float32)
        hide = np.zeros(n_patches, dtype=bool)
        hide[rng.choice(n_patches, size=k, replace=False)] = True
        steps = np.repeat(hide, patch)
        seen = window[~steps]
        mu, sd = seen.mean(), max(float(seen.std()), 1e-3)
        z = (window - mu) / sd
        xs.append(np.where(steps, 0.0, z)[None].astype(np.float32))  # hidden values never enter
        hides.append(hide)
        ys.append(np.where(steps, z, np.nan))
    return xs, np.stack(hides), np.stack(ys).astype(np.float32)
