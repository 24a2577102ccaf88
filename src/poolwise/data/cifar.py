"""CIFAR-10 / CIFAR-100 from the official *binary* release (no pickle is ever read).

The binary files are fixed-size records: CIFAR-10 has ``<1 label byte><3072 pixel bytes>``
(``data_batch_1.bin`` ... ``data_batch_5.bin``, ``test_batch.bin``, usually in a folder
``cifar-10-batches-bin``); CIFAR-100 has ``<coarse label><fine label><3072 pixel bytes>``
(``train.bin``, ``test.bin`` in ``cifar-100-binary``). Pixels are stored channel-major: 1024
red, 1024 green, 1024 blue bytes of a 32x32 image, row by row.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

PIXELS = 3 * 32 * 32
#: per-channel normalisation of each set (the AdaPool paper's recipe)
STATS = {
    "cifar10": ((0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010)),
    "cifar100": ((0.5071, 0.4867, 0.4408), (0.2675, 0.2565, 0.2761)),
}
_LAYOUT = {  # name -> (label bytes, label column used, sub-folder, train files, test files, classes)
    "cifar10": (1, 0, "cifar-10-batches-bin", tuple(f"data_batch_{i}.bin" for i in range(1, 6)),
                ("test_batch.bin",), 10),
    "cifar100": (2, 1, "cifar-100-binary", ("train.bin",), ("test.bin",), 100),
}


class CifarFormatError(ValueError):
    """A CIFAR file is missing or is not the official binary format; the message names it."""


@dataclass(frozen=True)
class CifarSplit:
    """Images ``(n, 3, 32, 32)`` uint8 and labels ``(n,)`` int64."""

    images: np.ndarray
    labels: np.ndarray


def cifar_folder(data_dir: str | Path, name: str) -> Path:
    """The folder holding ``name``'s files: ``data_dir`` itself or its official sub-folder."""
    if name not in _LAYOUT:
        raise ValueError(f"unknown CIFAR set {name!r}; expected 'cifar10' or 'cifar100'")
    root = Path(data_dir)
    if not root.is_dir():
        raise CifarFormatError(f"--data-dir {root}: not a directory (expected the folder of the "
                               f"{name} binary files)")
    sub = root / _LAYOUT[name][2]
    return sub if sub.is_dir() else root


def read_cifar_file(path: Path, name: str) -> CifarSplit:
    """One binary file of ``name``; a one-line :class:`CifarFormatError` when its size, its
    labels or its format (a pickle or a tarball) do not fit."""
    label_bytes, column, _, _, _, classes = _LAYOUT[name]
    record = label_bytes + PIXELS
    if not path.is_file():
        raise CifarFormatError(f"{path}: missing (expected the {name} binary release's files: "
                               f"{', '.join(_files(name))})")
    raw = np.fromfile(path, dtype=np.uint8)
    if raw[:1].tolist() == [0x80]:  # pickle protocol 2+ opcode: the python release
        raise CifarFormatError(f"{path}: this is a Python pickle (the 'python version' of {name}); "
                               "poolwise reads only the binary version and never unpickles")
    if raw[:2].tolist() == [0x1F, 0x8B]:
        raise CifarFormatError(f"{path}: a gzip archive; extract the binary release first "
                               "(tar xzf cifar-*-binary.tar.gz)")
    if raw.size == 0 or raw.size % record:
        raise CifarFormatError(f"{path}: {raw.size} bytes is not a whole number of {record}-byte "
                               f"{name} records (label byte(s) + 3072 pixels)")
    rows = raw.reshape(-1, record)
    labels = rows[:, column].astype(np.int64)
    if labels.max() >= classes:
        raise CifarFormatError(f"{path}: label {int(labels.max())} out of range for {name} "
                               f"({classes} classes); is this the other CIFAR set?")
    images = rows[:, label_bytes:].reshape(-1, 3, 32, 32)
    return CifarSplit(images, labels)


def _files(name: str) -> tuple[str, ...]:
    return _LAYOUT[name][3] + _LAYOUT[name][4]


def load_cifar(data_dir: str | Path, name: str) -> tuple[CifarSplit, CifarSplit]:
    """The official training and test sets of ``name`` (``"cifar10"`` or ``"cifar100"``) read
    from ``data_dir``. Every file is checked before any is used."""
    folder = cifar_folder(data_dir, name)
    _, _, _, train_files, test_files, _ = _LAYOUT[name]
    train = [read_cifar_file(folder / f, name) for f in train_files]
    test = [read_cifar_file(folder / f, name) for f in test_files]

    def cat(parts: list[CifarSplit]) -> CifarSplit:
        return CifarSplit(np.concatenate([p.images for p in parts]),
                          np.concatenate([p.labels for p in parts]))

    return cat(train), cat(test)


def write_cifar_file(path: Path, images: np.ndarray, labels: np.ndarray, name: str = "cifar10") -> None:
    """Write ``images`` (n, 3, 32, 32) uint8 and ``labels`` in the official binary format (used
    to build test fixtures; CIFAR-100's coarse label is written as 0)."""
    label_bytes = _LAYOUT[name][0]
    rows = np.zeros((len(images), label_bytes + PIXELS), dtype=np.uint8)
    rows[:, label_bytes - 1] = labels
    rows[:, label_bytes:] = images.reshape(len(images), -1)
    path.parent.mkdir(parents=True, exist_ok=True)
    rows.tofile(path)
