"""Where derived artefacts live (``$POOLWISE_CACHE`` or ``~/.cache/poolwise``), with an
inter-process lock so two workers never build the same artefact at once, and atomic
directory publication so a crash never leaves a half-written one."""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
from collections.abc import Iterator
from pathlib import Path


def cache_root() -> Path:
    return Path(os.environ.get("POOLWISE_CACHE") or Path.home() / ".cache" / "poolwise")


def lock_path(artefact: Path) -> Path:
    """The lock file guarding ``artefact``: kept in ``<cache>/locks`` so cache folders stay tidy."""
    return cache_root() / "locks" / f"{artefact.parent.name}-{artefact.name}.lock"


@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """Exclusive advisory lock on ``path`` (created if missing) for the ``with`` block."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


@contextlib.contextmanager
def building(final: Path) -> Iterator[Path]:
    """Yield a scratch directory beside ``final``; on success it is renamed to ``final``
    in one step (replacing an older one), on error it is removed."""
    tmp = final.with_name(f".{final.name}.{os.getpid()}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if final.exists():
        shutil.rmtree(final)
    os.replace(tmp, final)
