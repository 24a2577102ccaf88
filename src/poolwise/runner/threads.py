"""One thread budget per job: torch's threads sized to the cores other processes leave free.

torch's intra-op pool and poolwise's compiled kernels share one OpenMP runtime, so one count
(:func:`torch.set_num_threads`) governs both. Giving that runtime every core is right on an
idle machine and costly on a busy one: its threads spin at each barrier while the thread they
wait for is descheduled, so one busy process beside a 2-thread job made it 3.1x slower, not
the 2x a lost core explains (``benchmarks/busy_cpu.py``). A job that uses only the free cores
has no descheduled thread to wait for.

:class:`ThreadBudget` measures the CPU time other processes used since its last look (the
machine's busy time from ``/proc/stat`` less this process's own) and sets the thread count to
the free cores; the runner asks it when a run starts and after every epoch, so a busy process
that starts or stops midway is followed. ``POOLWISE_THREADS=N`` fixes the count instead.
Without ``/proc/stat`` (not Linux) the count stays at the cores this process may use.
"""

from __future__ import annotations

import math
import os
import time

#: seconds of observation a decision needs; the first call waits this long once
MIN_WINDOW_S = 0.2


def usable_cores() -> int:
    """The cores this process may run on (its affinity mask), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def machine_busy_seconds() -> float | None:
    """CPU-seconds every process on the machine has spent busy since boot (``/proc/stat``),
    or None where that file does not exist."""
    try:
        with open("/proc/stat") as fh:
            fields = fh.readline().split()
    except OSError:
        return None
    if not fields or fields[0] != "cpu":
        return None
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(v) for v in fields[1:9])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def own_busy_seconds() -> float:
    """CPU-seconds this process (all its threads) has used."""
    t = os.times()
    return t.user + t.system


class ThreadBudget:
    """Torch threads for ``workers`` processes sharing this machine's free cores.

    Args:
        workers: processes of this job that share the cores (each gets an equal part).
        cores: cores to share; default :func:`usable_cores`.
    """

    def __init__(self, workers: int = 1, cores: int | None = None) -> None:
        if workers < 1:
            raise ValueError(f"ThreadBudget: workers must be >= 1; got {workers}")
        self.workers = workers
        self.cores = cores or usable_cores()
        self._last: tuple[float, float, float] | None = None  # (wall, machine busy, own busy)
        self.others = 0.0  # cores other processes used in the last window

    def fixed(self) -> int | None:
        """The count ``POOLWISE_THREADS`` asks for, or None."""
        value = os.environ.get("POOLWISE_THREADS", "").strip()
        if not value:
            return None
        if not value.isdigit() or int(value) < 1:
            raise ValueError(f"POOLWISE_THREADS must be a positive integer; got {value!r}")
        return int(value)

    def _sample(self) -> tuple[float, float, float] | None:
        busy = machine_busy_seconds()
        return None if busy is None else (time.monotonic(), busy, own_busy_seconds())

    def others_busy(self) -> float | None:
        """Cores other processes kept busy since the previous call, or the previous estimate
        when that was under :data:`MIN_WINDOW_S` ago (the first call watches that long);
        None without ``/proc/stat``."""
        now = self._sample()
        if now is None:
            return None
        if self._last is None:
            self._last = now
            time.sleep(MIN_WINDOW_S)
            now = self._sample()
            assert now is not None
        elif now[0] - self._last[0] < MIN_WINDOW_S:
            return self.others  # too soon to tell: keep the last estimate
        wall, busy, own = (b - a for a, b in zip(self._last, now))
        self._last = now
        self.others = min(float(self.cores), max(0.0, (busy - own) / max(wall, 1e-9)))
        return self.others

    def threads(self) -> int:
        """Threads for each worker: the free cores (rounded to nearest) split between workers."""
        fixed = self.fixed()
        if fixed is not None:
            return fixed
        others = self.others_busy()
        free = self.cores if others is None else self.cores - others
        return max(1, math.floor(free + 0.5) // self.workers)

    def apply(self) -> int:
        """Set torch's thread count to :meth:`threads` when it differs; returns the count."""
        import torch

        n = self.threads()
        if torch.get_num_threads() != n:
            torch.set_num_threads(n)
        return n


_PROCESS_BUDGET: ThreadBudget | None = None


def process_budget() -> ThreadBudget:
    """This process's budget (one per process, so only its first use waits to measure)."""
    global _PROCESS_BUDGET
    if _PROCESS_BUDGET is None:
        _PROCESS_BUDGET = ThreadBudget()
    return _PROCESS_BUDGET
