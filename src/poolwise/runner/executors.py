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
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from .spec import RunSpec

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
    """Run one task in the current process; never raises (errors come back as text)."""
    import torch

    from ..experiments import get_task

    if threads:
        torch.set_num_threads(threads)
    start = time.perf_counter()
    try:
        t = get_task(task)
        result = t.run(t.config(**params), on_epoch)
        result["host"] = platform.node()
        return {"result": result, "error": None, "wall_s": time.perf_counter() - start}
    except Exception:  # a failed run is recorded, not fatal to the sweep
        error = traceback.format_exc(limit=20)
        return {"result": None, "error": error, "wall_s": time.perf_counter() - start}


def _pool_worker(task: str, params: dict[str, Any], key: str, threads: int, q: Any) -> dict[str, Any]:
    def report(epoch: int, total: int, row: dict[str, float]) -> None:
        q.put((key, epoch, total, row))

    return execute(task, params, threads, report)


class LocalExecutor:
    """Sequential in this process (``workers=1``, the default) or a process pool.
    The machine's cores are split evenly between workers (torch threads)."""

    name = "local"

    def __init__(self, workers: int = 1) -> None:
        if workers < 1:
            raise ValueError(f"workers must be >= 1; got {workers}")
        self.workers = workers
        self.threads = max(1, (os.cpu_count() or 1) // workers)

    def run(self, specs: list[RunSpec], on_start: Callable[[RunSpec], None],
            on_epoch: EpochCallback) -> Iterator[Outcome]:
        if self.workers == 1:
            for spec in specs:
                on_start(spec)
                out = execute(spec.task, dict(spec.params), None,
                              lambda e, t, r, s=spec: on_epoch(s, e, t, r))
                yield Outcome(spec, out["result"], out["error"], out["wall_s"])
            return
        ctx = mp.get_context("spawn")
        by_key = {s.key: s for s in specs}
        with ctx.Manager() as manager, cf.ProcessPoolExecutor(self.workers, mp_context=ctx) as pool:
            q = manager.Queue()
            futures = {}
            for spec in specs:
                fut = pool.submit(_pool_worker, spec.task, dict(spec.params), spec.key, self.threads, q)
                futures[fut] = spec
            started: set[str] = set()
            pending = set(futures)
            while pending:
                done, pending = cf.wait(pending, timeout=0.5, return_when=cf.FIRST_COMPLETED)
                _drain(q, by_key, started, on_start, on_epoch)
                for fut in done:
                    spec = futures[fut]
                    if spec.key not in started:
                        on_start(spec)
                        started.add(spec.key)
                    out = fut.result()
                    yield Outcome(spec, out["result"], out["error"], out["wall_s"])


def _drain(q: Any, by_key: dict[str, RunSpec], started: set[str], on_start: Callable[[RunSpec], None],
           on_epoch: EpochCallback) -> None:
    while True:
        try:
            key, epoch, total, row = q.get_nowait()
        except queue_mod.Empty:
            return
        spec = by_key[key]
        if key not in started:
            on_start(spec)
            started.add(key)
        on_epoch(spec, epoch, total, row)


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

    def run(self, specs: list[RunSpec], on_start: Callable[[RunSpec], None],
            on_epoch: EpochCallback) -> Iterator[Outcome]:
        import ray

        os.environ.setdefault("RAY_AUTH_MODE", "disabled")
        started_here = not ray.is_initialized()
        if started_here:
            if self.address:
                ray.init(address=self.address, log_to_driver=False)
            else:
                ray.init(num_cpus=self.num_cpus or os.cpu_count(), include_dashboard=False,
                         object_store_memory=self.object_store_bytes, log_to_driver=False)
        try:
            remote = ray.remote(num_cpus=self.cpus_per_run)(execute)
            refs = {}
            for spec in specs:
                refs[remote.remote(spec.task, dict(spec.params), self.cpus_per_run)] = spec
                on_start(spec)
            pending = list(refs)
            while pending:
                done, pending = ray.wait(pending, num_returns=1)
                for ref in done:
                    out = ray.get(ref)
                    yield Outcome(refs[ref], out["result"], out["error"], out["wall_s"])
        finally:
            if started_here:
                ray.shutdown()
