"""Backbone weights that ship with poolwise: the default (middle-size, seed 0) pooling-neutral
backbones of the Pool Me Wisely study, pretrained once by :mod:`.pretrain` on a 2-core AMD
EPYC (AVX2).

Why ship them: pretraining on a CPU is not bit-reproducible across machines (the vision
figures moved by up to 6 points between two CPUs), and it is most of the study's time from an
empty cache. On first use a shipped backbone is copied into the cache, so that it is read and
hashed exactly like one pretrained here; ``POOLWISE_SHIPPED_BACKBONES=0`` (or
``--no-shipped-backbones``) pretrains on this machine instead, and ``poolwise pretrain NAME``
always does.

A shipped backbone is used only while its recipe still matches (same backbone config and
steps) and its bytes match :data:`MANIFEST`'s SHA-256; otherwise it is pretrained here.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..data.cache import building
from ..models.backbones import BackboneConfig

SHIPPED_DIR = Path(__file__).parent / "shipped"
MANIFEST = SHIPPED_DIR / "MANIFEST.json"
ENV = "POOLWISE_SHIPPED_BACKBONES"
FILES = ("model.safetensors", "config.json")


def enabled() -> bool:
    """Whether shipped backbones may be used (``POOLWISE_SHIPPED_BACKBONES`` not ``0``)."""
    return os.environ.get(ENV, "1").strip().lower() not in ("0", "false", "no", "off")


def manifest() -> dict[str, str]:
    """``{"NAME-seedS": sha256 of model.safetensors}`` for every shipped backbone."""
    return json.loads(MANIFEST.read_text()) if MANIFEST.is_file() else {}


def sha256(path: Path) -> str:
    """The hex SHA-256 of a file's bytes."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


def shipped_meta(name: str, seed: int) -> dict[str, Any] | None:
    """The shipped ``config.json`` of ``name``/``seed``, or None when it does not ship."""
    key = f"{name}-seed{seed}"
    folder = SHIPPED_DIR / key
    if key not in manifest() or not (folder / "config.json").is_file():
        return None
    return json.loads((folder / "config.json").read_text())


def usable(name: str, seed: int, config: BackboneConfig, steps: int) -> bool:
    """Whether a shipped copy exists, is enabled and was made by the current recipe
    (``config``: the recipe's backbone config; ``steps``: its step count)."""
    meta = shipped_meta(name, seed)
    if not enabled() or meta is None or meta.get("steps") != steps:
        return False
    try:  # fields added since it was made take their defaults
        return BackboneConfig(**meta["backbone"]) == config
    except TypeError:  # a field that no longer exists
        return False


def install(
    name: str, seed: int, final: Path, config: BackboneConfig, steps: int,
    log: Callable[[str], None] | None = None,
) -> bool:
    """Copy the shipped ``name``/``seed`` into ``final`` when :func:`usable`; returns whether
    it did. A copy whose bytes do not match the manifest is refused with an error."""
    if not usable(name, seed, config, steps):
        return False
    key = f"{name}-seed{seed}"
    source = SHIPPED_DIR / key
    if sha256(source / "model.safetensors") != manifest()[key]:
        raise ValueError(f"the shipped backbone {key} does not match its SHA-256 in {MANIFEST}; "
                         f"reinstall poolwise, or set {ENV}=0 to pretrain it here")
    with building(final) as tmp:
        for f in FILES:
            shutil.copyfile(source / f, tmp / f)
    if log:
        log(f"backbone {name} (seed {seed}): using the shipped weights ({key})")
    return True
