"""Where runs execute: in this process, in a local process pool, or on Ray.

Executors only compute; the sweep driver in the parent process writes every result, so the
database has a single writer whatever the executor.
"""

from __future__ import annotations

import concurrent.futures as cf
import multiprocessing as mp
import os
import platform
import queue as queue_mod
import socket
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from .spec import RunSpec
from .threads import ThreadBudget, process_budget

#: (spec, epoch, total_epochs, row) for live progress
EpochCallback = Callable[[RunSpec, int, int, dict[str, float]], None]


@dataclass
class Outcome:
    spec: RunSpec
    result: dict[str, Any] | None
    error: str | None
    wall_s: float


def execute(task: str, params: dict[str, Any], threads: int | None = None,
            on_epoch: Callable[[int, int, dict[str, float]], None] | None = None) -> dict[str, Any]:
    """Run one task in the current process; never raises (errors come back as text).

    Torch threads: ``threads`` when given (a pool worker's share), else the free cores; after
    every epoch the count follows the machine's load (:mod:`poolwise.runner.threads`)."""
    import torch

    from ..experiments import get_task

    budget = process_budget()

    def epoch_done(epoch: int, total: int, row: dict[str, float]) -> None:
        budget.apply()  # follow processes that started or stopped since the last look
        if on_epoch is not None:
            on_epoch(epoch, total, row)

    start = time.perf_counter()
    try:  # a bad POOLWISE_THREADS is this run's error too, not an exception out of here
        if threads:
            torch.set_num_threads(threads)  # the share the pool gave this worker, adapted below
        else:
            budget.apply()
        t = get_task(task)
        result = t.run(t.config(**params), epoch_done)
        result["host"] = platform.node()
        return {"result": result, "error": None, "wall_s": time.perf_counter() - start}
    except Exception:  # a failed run is recorded, not fatal to the sweep
        error = traceback.format_exc(limit=20)
        return {"result": None, "error": error, "wall_s": time.perf_counter() - start}


#: a run is handed to an executor through ``claim(spec) -> bool``, called right before a free
#: worker starts it; False means another sweep holds it (or finished it): skip it
Claim = Callable[[RunSpec], bool]

_PROGRESS: Any = None  # the pool worker's progress queue, set by _pool_init


def _pool_init(progress_queue: Any, parent: int) -> None:
    """Pool worker start-up: keep the progress queue, and exit as soon as the parent process
    is gone (a SIGKILLed sweep would otherwise leave its workers running for good)."""
    global _PROGRESS
    _PROGRESS = progress_queue

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(1)

    threading.Thread(target=watch, name="poolwise-parent-watch", daemon=True).start()


def threads_per_worker(workers: int) -> int:
    """Torch threads for each of ``workers`` processes: the cores other processes leave free,
    split evenly (:class:`~poolwise.runner.threads.ThreadBudget`)."""
    return ThreadBudget(workers).threads()


def _pool_worker(task: str, params: dict[str, Any], key: str, threads: int) -> dict[str, Any]:
    def report(epoch: int, total: int, row: dict[str, float]) -> None:
        _PROGRESS.put((key, epoch, total, row))

    return execute(task, params, threads, report)


class LocalExecutor:
    """Sequential in this process (``workers=1``, the default) or a process pool.
    The machine's cores are split evenly between workers (torch threads)."""

    name = "local"

    def __init__(self, workers: int = 1) -> None:
        if workers < 1:
            raise ValueError(f"workers must be >= 1; got {workers}")
        self.workers = workers
        self.threads = threads_per_worker(workers)

    def run(self, specs: list[RunSpec], claim: Claim, on_epoch: EpochCallback) -> Iterator[Outcome]:
        if self.workers == 1:
            for spec in specs:
                if not claim(spec):
                    continue
                out = execute(spec.task, dict(spec.params), None,
                              lambda e, t, r, s=spec: on_epoch(s, e, t, r))
                yield Outcome(spec, out["result"], out["error"], out["wall_s"])
            return
        ctx = mp.get_context("spawn")
        by_key = {s.key: s for s in specs}
        progress = ctx.Queue()
        with cf.ProcessPoolExecutor(self.workers, mp_context=ctx, initializer=_pool_init,
                                    initargs=(progress, os.getpid())) as pool:
            queue = iter(specs)
            running: dict[cf.Future, RunSpec] = {}

            def submit_next() -> None:
                for spec in queue:  # claimed only when a worker is free to start it
                    if claim(spec):
                        running[pool.submit(_pool_worker, spec.task, dict(spec.params), spec.key,
                                            self.threads)] = spec
                        return

            for _ in range(self.workers):
                submit_next()
            while running:
                done, _ = cf.wait(running, timeout=0.5, return_when=cf.FIRST_COMPLETED)
                _drain(progress, by_key, on_epoch)
                for fut in done:
                    spec = running.pop(fut)
                    out = fut.result()
                    yield Outcome(spec, out["result"], out["error"], out["wall_s"])
                    submit_next()
            _drain(progress, by_key, on_epoch)


def _drain(q: Any, by_key: dict[str, RunSpec], on_epoch: EpochCallback) -> None:
    while True:
        try:
            key, epoch, total, row = q.get_nowait()
        except (queue_mod.Empty, OSError, ValueError):
            return
        on_epoch(by_key[key], epoch, total, row)


def check_ray_address(address: str, timeout: float = 3.0) -> None:
    """Fail fast (ConnectionError) when ``host:port`` does not accept connections, instead of
    letting ``ray.init`` retry for minutes. ``auto`` and ``ray://`` addresses are left to Ray."""
    if address == "auto":
        return
    target = address.removeprefix("ray://")
    host, _, port = target.rpartition(":")
    if not host or not port.isdigit():
        raise ValueError(f"Ray address must look like HOST:PORT or ray://HOST:PORT; got {address!r}")
    try:
        with socket.create_connection((host, int(port)), timeout=timeout):
            pass
    except OSError as err:
        raise ConnectionError(f"cannot reach a Ray cluster at {address}: {err}") from None


class RayExecutor:
    """Runs each spec as a Ray task. Without ``address`` it starts a local Ray with a capped
    object store; with one it joins that cluster (``HOST:PORT``, ``ray://...`` or ``auto``)."""

    name = "ray"

    def __init__(self, address: str | None = None, num_cpus: int | None = None,
                 cpus_per_run: int = 1, object_store_bytes: int = 2 * 1024**3) -> None:
        self.address, self.num_cpus, self.cpus_per_run = address, num_cpus, cpus_per_run
        self.object_store_bytes = object_store_bytes
        if address:
            check_ray_address(address)

    def run(self, specs: list[RunSpec], claim: Claim, on_epoch: EpochCallback) -> Iterator[Outcome]:
        import ray

        os.environ.setdefault("RAY_AUTH_MODE", "disabled")
        started_here, reaper = not ray.is_initialized(), None
        if started_here:
            if self.address:
                ray.init(address=self.address, log_to_driver=False)
            else:
                # "local": a Ray of our own, never a cluster that happens to run on this machine
                # (which plain ray.init() would join, with num_cpus refused)
                ray.init(address="local", num_cpus=self.num_cpus or os.cpu_count(), include_dashboard=False,
                         object_store_memory=self.object_store_bytes, log_to_driver=False)
                reaper = _reap_with_driver(_ray_process_ids())
        try:
            remote = ray.remote(num_cpus=self.cpus_per_run)(execute)
            # as many runs in flight as the cluster can start now: a run is claimed (marked
            # running) when a slot is free for it, not while it waits in Ray's queue
            slots = max(1, int(ray.cluster_resources().get("CPU", 1)) // self.cpus_per_run)
            queue = iter(specs)
            refs: dict[Any, RunSpec] = {}

            def submit_next() -> None:
                for spec in queue:
                    if claim(spec):
                        refs[remote.remote(spec.task, dict(spec.params), self.cpus_per_run)] = spec
                        return

            for _ in range(slots):
                submit_next()
            while refs:
                done, _ = ray.wait(list(refs), num_returns=1)
                for ref in done:
                    spec = refs.pop(ref)
                    out = ray.get(ref)
                    yield Outcome(spec, out["result"], out["error"], out["wall_s"])
                    submit_next()
        finally:
            if started_here:
                ray.shutdown()
            if reaper is not None:  # a clean shutdown: nothing left to reap
                reaper.kill()


def _ray_process_ids() -> list[int]:
    """PIDs of the local Ray processes this driver started (best effort: Ray's node object)."""
    try:
        import ray

        node = ray._private.worker._global_node
        return [info.process.pid for infos in node.all_processes.values() for info in infos
                if getattr(info, "process", None) is not None]
    except Exception:  # an internal API: without it there is nothing to reap
        return []


_REAPER = """
import os, signal, sys, time
driver, roots = int(sys.argv[1]), [int(p) for p in sys.argv[2:]]
def children(pid):
    out = []
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children") as fh:
                out += [int(c) for c in fh.read().split()]
    except OSError:
        pass
    return out
def ours(pid):  # the pid may have been reused: only a process that still runs Ray
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            return b"ray" in fh.read()
    except OSError:
        return False
def tree(known):
    todo, seen = list(known), []
    while todo:
        pid = todo.pop()
        if pid not in seen and ours(pid):
            seen.append(pid)
            todo += children(pid)
    return seen
pids = list(roots)
while True:  # the tree is read while the driver lives: its processes exit with it and orphan their agents
    pids = tree(set(pids) | set(roots))
    try:
        os.kill(driver, 0)
    except ProcessLookupError:
        break
    time.sleep(1.0)
for sig in (signal.SIGTERM, signal.SIGKILL):
    for pid in pids:
        if ours(pid):
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
    time.sleep(2.0)
"""


def _reap_with_driver(pids: list[int]) -> subprocess.Popen | None:
    """A small detached process that stops the local Ray processes once this driver is gone:
    a SIGKILLed driver skips ``ray.shutdown()`` and would leave them running."""
    if not pids:
        return None
    return subprocess.Popen([sys.executable, "-c", _REAPER, str(os.getpid()), *map(str, pids)],
                            start_new_session=True, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
