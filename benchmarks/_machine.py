"""What the benchmark tables name: the CPU model and its vector extensions."""

from __future__ import annotations

import os
import platform
from pathlib import Path


def cpu_name() -> str:
    """``"<model> (avx512f, avx2)"`` from /proc/cpuinfo, or what ``platform`` knows; plus
    the compiled kernels' path when ``$POOLWISE_KERNEL_PATH`` forces one."""
    forced = os.environ.get("POOLWISE_KERNEL_PATH")
    return _cpu() + (f", kernels forced to the {forced} path" if forced else "")


def _cpu() -> str:
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
        model = next(line.split(":", 1)[1].strip() for line in lines if line.startswith("model name"))
        flags = next(line for line in lines if line.startswith("flags")).split()
        ext = [f for f in ("avx512f", "avx2") if f in flags]
        return f"{model} ({', '.join(ext) or 'no AVX2'})"
    except (OSError, StopIteration):
        return platform.processor() or "unknown CPU"
