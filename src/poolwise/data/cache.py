"""Where derived artefacts live (``$POOLWISE_CACHE`` or ``~/.cache/poolwise``), with an
inter-process lock so two workers never build the same artefact at once, and atomic
directory publication so a crash never leaves a half-written one."""

from __future__ import annotations

import contextlib
import fcntl
import glob
import hashlib
import os
import shutil
import socket
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


def _host() -> str:
    return socket.gethostname().replace(".", "_") or "host"


def scratch_path(final: Path) -> Path:
    """Where this process writes ``final`` before renaming it: ``.<name>.<host>-<pid>.tmp``
    beside it. Scratch left by dead processes of this host is removed first (a killed
    process never reaches its own clean-up)."""
    remove_dead_scratch(final)
    return final.with_name(f".{final.name}.{_host()}-{os.getpid()}.tmp")


def remove_dead_scratch(final: Path) -> list[Path]:
    """Remove the scratch files and folders of ``final`` whose writer, a process of this
    host, is gone; returns what was removed. Other hosts' scratch is left alone."""
    removed = []
    if not final.parent.is_dir():
        return removed
    for path in final.parent.glob(f".{glob.escape(final.name)}.*.tmp"):
        host, _, pid = path.name[len(final.name) + 2:-len(".tmp")].rpartition("-")
        if host != _host() or not pid.isdigit() or pid_alive(int(pid)):
            continue
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
        removed.append(path)
    return removed


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` of this host still exists (one we may not signal counts)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@contextlib.contextmanager
def building(final: Path) -> Iterator[Path]:
    """Yield a scratch directory beside ``final``; on success it is renamed to ``final``
    in one step (replacing an older one), on error it is removed."""
    tmp = scratch_path(final)
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


_DIGESTS: dict[tuple[str, int, int], str] = {}


def content_digest(path: str | Path) -> str:
    """SHA-256 of a file's bytes, or of every file below a directory (relative names and
    bytes, in sorted order): the identity of an input, whatever its path. Remembered per
    process by (path, size, mtime), so a large model directory is read once."""
    path = Path(path)
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    h = hashlib.sha256()
    for f in files:
        st = f.stat()
        key = (str(f.resolve()), st.st_size, st.st_mtime_ns)
        if key not in _DIGESTS:
            fh_hash = hashlib.sha256()
            with open(f, "rb") as fh:
                for block in iter(lambda fh=fh: fh.read(1 << 20), b""):
                    fh_hash.update(block)
            _DIGESTS[key] = fh_hash.hexdigest()
        h.update(f"{f.relative_to(path) if path.is_dir() else f.name}\0{_DIGESTS[key]}\0".encode())
    return h.hexdigest()
