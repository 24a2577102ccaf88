"""Building poolwise's small C++ kernels on first use (``torch.utils.cpp_extension``).

Each kernel is compiled once with the machine's compiler (tens of seconds), cached under
``$POOLWISE_EXT_DIR`` or ``~/.cache/poolwise/ext`` per CPU flags, torch version and source.
When it cannot be built (no compiler, no ninja), a warning says why once and callers fall back
to their PyTorch path; ``POOLWISE_NO_EXT=1`` skips every kernel.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import platform
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

_loaded: dict[str, Any] = {}
_errors: dict[str, str] = {}


def _cpu_flags() -> str:
    try:
        with open("/proc/cpuinfo") as fh:
            return next((line for line in fh if line.startswith("flags")), "")
    except OSError:
        return platform.processor()


def build_dir(source: Path, depends: Sequence[Path] = ()) -> Path:
    import torch

    text = "".join(p.read_text() for p in (source, *depends))
    key = hashlib.sha1((_cpu_flags() + torch.__version__ + text).encode()).hexdigest()[:12]
    root = Path(os.environ.get("POOLWISE_EXT_DIR") or Path.home() / ".cache" / "poolwise" / "ext")
    return root / key


@contextlib.contextmanager
def _build_lock(build: Path) -> Iterator[None]:
    """One builder per build directory, by an OS lock that dies with its process.

    torch's own lock is a plain file, so a build killed midway (Ctrl-C on first use, a
    killed job) leaves it behind and every later load waits on it forever. Holding this lock
    means no other poolwise process is building here, so a leftover torch lock is stale."""
    try:
        import fcntl
    except ImportError:  # not POSIX: torch's lock alone
        yield
        return
    with open(build / ".poolwise-build.lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        (build / "lock").unlink(missing_ok=True)
        yield


def load_extension(name: str, source: Path, depends: Sequence[Path] = (), native: bool = True) -> Any | None:
    """The compiled module ``name`` built from ``source``, or None (reason in :func:`extension_error`).

    ``depends``: files ``source`` includes (part of the cache key). ``native``: compile for this
    CPU (``-march=native``); a kernel that dispatches on the CPU's features at run time passes
    False and is built for the baseline instruction set."""
    if name in _loaded or name in _errors:
        return _loaded.get(name)
    if os.environ.get("POOLWISE_NO_EXT"):
        _errors[name] = "disabled by POOLWISE_NO_EXT"
        return None
    try:
        from torch.utils.cpp_extension import load

        build = build_dir(source, depends)
        build.mkdir(parents=True, exist_ok=True)
        arch = ["-march=native"] if native else []
        with _build_lock(build):
            _loaded[name] = load(name, [str(source)], build_directory=str(build),
                                 extra_cflags=["-O3", *arch, "-ffast-math", "-fopenmp"],
                                 extra_ldflags=["-fopenmp"], verbose=False)
    except Exception as err:  # no compiler, no ninja, ...: fall back, say why once
        _errors[name] = f"{type(err).__name__}: {str(err).strip().splitlines()[-1] if str(err) else ''}"
        warnings.warn(f"poolwise: kernel {name} unavailable ({_errors[name]}); using the PyTorch path",
                      RuntimeWarning, stacklevel=3)
    return _loaded.get(name)


def extension_error(name: str) -> str | None:
    return _errors.get(name)
