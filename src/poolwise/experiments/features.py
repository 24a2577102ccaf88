"""Frozen-backbone features, computed once and memory-mapped.

The backbone runs once per (backbone, dataset, max length, split) key; its token outputs are
stored *packed* (only real tokens, ``(T, D)`` plus row offsets), in float16 when that is
exact enough (no value beyond float16's range), so evaluating K poolers costs one backbone
pass plus K small trainings. A directory appears only when complete (built in a scratch
directory under a lock, then renamed), so a crash or a second worker never sees half of one.
Each file's size and a hash of sampled blocks are recorded when it is written and checked on
every load: a truncated, zeroed, missing or corrupted file is rebuilt, with a warning that
names it.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ..data.cache import building, cache_root, file_lock, lock_path

FORMAT_VERSION = 2  # 2: meta.json records each file's size and sampled hash
#: (tokens (B, N, D), keep-mask (B, N)) for the rows ``start:stop`` of a split
Encode = Callable[[int, int], tuple[Tensor, Tensor]]


@dataclass
class SplitSource:
    """How to compute one split: its size, an encoder over row ranges, and the targets."""

    size: int
    encode: Encode
    targets: np.ndarray


@dataclass
class FeatureSplit:
    """Packed token features of one split (memory-mapped) and its targets."""

    tokens: Tensor  # (T, D)
    offsets: np.ndarray  # (n + 1,)
    targets: Tensor

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def batch(self, rows: Tensor | np.ndarray) -> tuple[Tensor, Tensor, Tensor]:
        """Right-padded float32 tokens ``(B, N_max, D)``, keep-mask and targets for ``rows``."""
        rows = np.asarray(rows)
        starts, stops = self.offsets[rows], self.offsets[rows + 1]
        lengths = stops - starts
        x = torch.zeros(len(rows), int(lengths.max()), self.tokens.shape[1])
        for i, (a, b) in enumerate(zip(starts, stops)):
            x[i, : b - a] = self.tokens[a:b]
        mask = torch.arange(x.shape[1])[None, :] < torch.from_numpy(lengths)[:, None]
        return x, mask, self.targets[torch.from_numpy(rows)]


@dataclass
class PooledSplit:
    """A split's rows pooled once, ``(n, F)``, by a pooler without trainable weights (its
    output never changes, so training the head need not read the tokens every epoch); same
    ``batch`` interface as :class:`FeatureSplit`, with the pooled vectors and no mask."""

    vectors: Tensor
    targets: Tensor

    def __len__(self) -> int:
        return len(self.vectors)

    def batch(self, rows: Tensor | np.ndarray) -> tuple[Tensor, None, Tensor]:
        index = torch.as_tensor(np.asarray(rows), dtype=torch.long)
        return self.vectors[index], None, self.targets[index]


def pool_split(pool: Callable[[Tensor, Tensor], Tensor], split: FeatureSplit,
               batch: int = 256) -> PooledSplit:
    """Every row of ``split`` through ``pool(x, mask)`` once, in batches (no gradients)."""
    parts = []
    with torch.no_grad():
        for start in range(0, len(split), batch):
            rows = np.arange(start, min(start + batch, len(split)))
            x, mask, _ = split.batch(rows)
            parts.append(pool(x, mask).reshape(len(rows), -1))
    return PooledSplit(torch.cat(parts) if parts else torch.zeros(0, 0), split.targets)


@dataclass
class Features:
    splits: dict[str, FeatureSplit]
    dim: int
    max_len: int
    meta: dict[str, Any] = field(default_factory=dict)
    build_s: float = 0.0  # seconds spent running the backbone in this call (0 when cached)


def feature_key(parts: Mapping[str, Any]) -> str:
    blob = json.dumps({"format": FORMAT_VERSION, **parts}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:20]


def features_dir(parts: Mapping[str, Any]) -> Path:
    return cache_root() / "features" / feature_key(parts)


def get_features(
    parts: Mapping[str, Any],
    sources: Callable[[], dict[str, SplitSource]],
    meta: Mapping[str, Any] | None = None,
    batch_size: int = 32,
    log: Callable[[str], None] | None = None,
) -> Features:
    """Load the features keyed by ``parts``, computing them first (``sources()`` is only
    called then) if they are not on disk."""
    final = features_dir(parts)
    build_s = 0.0
    if damage(final) is not None:
        with file_lock(lock_path(final)):
            problem = damage(final)  # another worker may have built it meanwhile
            if problem is not None:
                if final.exists():
                    warnings.warn(f"poolwise: feature cache {final} is damaged ({problem}); rebuilding it",
                                  RuntimeWarning, stacklevel=2)
                    shutil.rmtree(final)
                start = time.perf_counter()
                _build(final, parts, sources(), dict(meta or {}), batch_size, log)
                build_s = time.perf_counter() - start
    feats = load_features(final)
    feats.build_s = build_s
    return feats


def sampled_digest(path: Path, blocks: int = 64, block_size: int = 1 << 16) -> str:
    """Hash of ``blocks`` evenly spaced blocks of a file (all of it when small) and its size:
    a few MB read whatever the file's size, and any zeroed, truncated or swapped file differs."""
    size = path.stat().st_size
    h = hashlib.sha256(str(size).encode())
    with open(path, "rb") as fh:
        if size <= blocks * block_size:
            h.update(fh.read())
        else:
            for i in range(blocks):
                fh.seek((size - block_size) * i // (blocks - 1))
                h.update(fh.read(block_size))
    return h.hexdigest()


def damage(folder: Path) -> str | None:
    """Why the feature folder cannot be used (``"missing"``, ``"train.tokens.npy: size
    1024, expected 2048"``, ...), or None when every file matches what was recorded."""
    try:
        info = json.loads((folder / "meta.json").read_text())
        files = info["files"]
    except FileNotFoundError:
        return "missing"
    except (OSError, ValueError, KeyError, TypeError) as err:
        return f"meta.json unreadable ({type(err).__name__})"
    for name, record in files.items():
        path = folder / name
        if not path.is_file():
            return f"{name} is missing"
        size = path.stat().st_size
        if size != record["size"]:
            return f"{name}: size {size}, expected {record['size']}"
        if sampled_digest(path) != record["sampled_sha256"]:
            return f"{name}: contents changed"
    return None


def _build(
    final: Path,
    parts: Mapping[str, Any],
    sources: dict[str, SplitSource],
    meta: dict[str, Any],
    batch_size: int,
    log: Callable[[str], None] | None,
) -> None:
    with building(final) as tmp, torch.no_grad():
        dim, max_len, counts = 0, 0, {}
        for split, src in sources.items():
            if src.size < 1:
                raise ValueError(f"split {split!r} is empty")
            chunks, lengths = [], []
            for start in range(0, src.size, batch_size):
                tokens, mask = src.encode(start, min(start + batch_size, src.size))
                for row, keep in zip(tokens, mask):
                    chunks.append(row[keep].float().numpy())
                    lengths.append(int(keep.sum()))
                if log and (start // batch_size) % 20 == 0:
                    log(f"features {split}: {min(start + batch_size, src.size)}/{src.size}")
            if min(lengths) < 1:
                raise ValueError(f"split {split!r} has an input with no real token")
            packed = np.concatenate(chunks)
            if not np.isfinite(packed).all():
                raise FloatingPointError(f"the backbone produced non-finite features on split {split!r}")
            if np.abs(packed).max() < 6e4:  # float16 holds it: half the disk and page cache
                packed = packed.astype(np.float16)
            np.save(tmp / f"{split}.tokens.npy", packed)
            np.save(tmp / f"{split}.offsets.npy", np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64))
            np.save(tmp / f"{split}.targets.npy", np.asarray(src.targets))
            dim, max_len, counts[split] = packed.shape[1], max(max_len, max(lengths)), src.size
        files = {f.name: {"size": f.stat().st_size, "sampled_sha256": sampled_digest(f)}
                 for f in sorted(tmp.glob("*.npy"))}
        info = {
            **meta,
            "key": dict(parts),
            "dim": dim,
            "max_len": max_len,
            "counts": counts,
            "splits": list(sources),
            "files": files,
        }
        (tmp / "meta.json").write_text(json.dumps(info, indent=2, default=str))


def load_features(folder: Path) -> Features:
    info = json.loads((folder / "meta.json").read_text())
    splits = {}
    for split in info["splits"]:
        # copy-on-write map: tensors can view it without a copy and without a read-only warning
        tokens = np.load(folder / f"{split}.tokens.npy", mmap_mode="c")
        splits[split] = FeatureSplit(
            torch.from_numpy(tokens),
            np.load(folder / f"{split}.offsets.npy"),
            torch.from_numpy(np.load(folder / f"{split}.targets.npy")),
        )
    return Features(splits, info["dim"], info["max_len"], info)
