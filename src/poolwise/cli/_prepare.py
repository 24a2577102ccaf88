"""Before a frozen-backbone sweep: pretrain the missing backbones and compute each task's
features, in parallel over the local workers (the runs then only read the cache).

Run one after another in the main process, the default backbones' pretraining was about as
long as the study's runs on two cores; one backbone per worker, largest first, brought 1,029 s
of pretraining down to 698 s with the features (measured from an empty cache)."""

from __future__ import annotations

import concurrent.futures as cf
import multiprocessing as mp
import time
from collections.abc import Callable
from typing import Any

from ..runner.executors import threads_per_worker
from ._common import UsageError, first_line, stderr_log

#: run settings that do not change a task's features
_RUN_ONLY = {"pooler", "pooler_kwargs", "seed", "epochs", "lr", "batch_size", "attack_eps"}


def _pretrain_one(name: str, seed: int, threads: int, quiet: bool) -> float:
    import torch

    from ..experiments import pretrain as pt

    torch.set_num_threads(threads)
    start = time.perf_counter()
    pt.pretrain(name, seed, log=stderr_log(quiet), only_if_missing=True)
    return time.perf_counter() - start


def _features_one(task: str, params: dict[str, Any], threads: int) -> float:
    import torch

    from ..experiments import get_task
    from ..experiments.frozen import load_task_features

    torch.set_num_threads(threads)
    try:
        return load_task_features(get_task(task).config(**params)).build_s
    except Exception:  # reported again, as a usage error, by the main process's pass
        return 0.0


def missing_backbones(specs: list) -> list[tuple[str, int]]:
    """The project's own backbones (name, seed) that ``specs`` need, that are not stored and
    do not ship with poolwise (:mod:`poolwise.experiments.shipped`), largest pretraining first."""
    from ..experiments import pretrain as pt

    wanted = {(s.params.get("backbone", ""), int(s.params.get("backbone_seed", 0))) for s in specs}
    todo = [(n, seed) for n, seed in wanted if n in pt.RECIPES and pt.needs_pretraining(n, seed)]
    return sorted(todo, key=lambda ns: (-pt.RECIPES[ns[0]].cost(), ns))


def _pool(workers: int) -> cf.ProcessPoolExecutor:
    return cf.ProcessPoolExecutor(workers, mp_context=mp.get_context("spawn"))


def prepare_backbones(specs: list, workers: int, log: Callable[[str], None], quiet: bool) -> dict[str, float]:
    """Pretrain what :func:`missing_backbones` lists, ``workers`` at a time; returns the
    seconds each took. A failure stops the sweep before any run starts."""
    todo = missing_backbones(specs)
    if not todo:
        return {}
    log(f"pretraining {len(todo)} backbone(s) first ({', '.join(n for n, _ in todo)}), "
        f"{min(workers, len(todo))} at a time")
    seconds: dict[str, float] = {}
    if workers == 1 or len(todo) == 1:
        for name, seed in todo:
            seconds[name] = _pretrain_one(name, seed, threads_per_worker(1), quiet)
        return seconds
    with _pool(min(workers, len(todo))) as pool:
        threads = threads_per_worker(workers)
        futures = {pool.submit(_pretrain_one, n, seed, threads, quiet): n for n, seed in todo}
        for fut in cf.as_completed(futures):
            name = futures[fut]
            try:
                seconds[name] = fut.result()
            except Exception as err:
                raise UsageError(f"pretraining {name} failed: {first_line(err)}") from None
            log(f"backbone {name} ready ({seconds[name]:.0f} s)")
    return seconds


def warm_features(specs: list, workers: int) -> float:
    """Compute every (task, backbone, length) feature set of ``specs`` not cached yet, one per
    worker; returns the backbone seconds spent. Errors are left for the main process's own
    pass to report."""
    seen, jobs = set(), []
    for spec in specs:
        ident = (spec.task, *sorted((k, repr(v)) for k, v in spec.params.items() if k not in _RUN_ONLY))
        if ident not in seen:
            seen.add(ident)
            jobs.append(spec)
    if workers == 1 or len(jobs) < 2:
        return 0.0
    with _pool(min(workers, len(jobs))) as pool:
        threads = threads_per_worker(workers)
        futures = [pool.submit(_features_one, s.task, dict(s.params), threads) for s in jobs]
        return sum(fut.result() for fut in futures)
