"""The sweep driver: skip what is done, execute the rest, record every outcome."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from .executors import LocalExecutor, Outcome, RayExecutor
from .progress import Progress
from .spec import RunSpec
from .store import Heartbeat, ResultsStore


@dataclass
class SweepSummary:
    """What a sweep did: runs done, skipped (already in the store) and failed, with errors."""

    total: int
    skipped: int = 0
    done: int = 0
    failed: int = 0
    elsewhere: int = 0  # running in another live sweep on the same store
    wall_s: float = 0.0
    errors: dict[str, str] = field(default_factory=dict)


def plan(specs: Sequence[RunSpec], store: ResultsStore, retry_failed: bool = False) -> list[RunSpec]:
    """Runs still to do: not finished, and not failed unless ``retry_failed``. A run left
    ``running`` stays in the plan: :meth:`ResultsStore.claim` decides, when its turn comes,
    whether its owner still holds it."""
    unique = list({s.key: s for s in specs}.values())
    todo = []
    for spec in unique:
        status = store.status(spec.key)
        if status == "done" or (status == "failed" and not retry_failed):
            continue
        todo.append(spec)
    return todo


def run_sweep(specs: Sequence[RunSpec], store: ResultsStore,
              executor: LocalExecutor | RayExecutor | None = None, retry_failed: bool = False,
              progress: Progress | None = None) -> SweepSummary:
    """Run every spec that the store does not hold as done (failed ones too with
    ``retry_failed``) on ``executor`` (a one-process local pool by default), recording each
    outcome as it arrives; a killed sweep resumes where it stopped. Each run is claimed in the
    store right before it starts, so sweeps sharing a store split the work: a run that another
    live sweep holds is left to it (counted in ``elsewhere``)."""
    executor = executor or LocalExecutor()
    unique = list({s.key: s for s in specs}.values())
    todo = plan(unique, store, retry_failed)
    summary = SweepSummary(total=len(unique), skipped=len(unique) - len(todo))
    progress = progress or Progress(quiet=True)
    start = time.perf_counter()
    progress.begin(len(unique), summary.skipped)

    def claim(spec: RunSpec) -> bool:
        state = store.claim(spec, retry_failed)
        if state == "claimed":
            progress.started(spec)
            return True
        if state == "busy":
            summary.elsewhere += 1
        else:  # finished by another sweep since the plan was made
            summary.skipped += 1
        return False

    try:
        with Heartbeat(store):
            for out in executor.run(todo, claim, progress.epoch):
                _record(store, out, summary)
                progress.finished(out.spec, out.error is None, out.wall_s)
    finally:
        progress.end()
        summary.wall_s = time.perf_counter() - start
    return summary


def _record(store: ResultsStore, out: Outcome, summary: SweepSummary) -> None:
    if out.error is None and out.result is not None:
        store.mark_done(out.spec, out.result, out.wall_s)
        summary.done += 1
    else:
        store.mark_failed(out.spec, out.error or "no result", out.wall_s)
        summary.failed += 1
        summary.errors[out.spec.key] = (out.error or "").strip().splitlines()[-1:][0] if out.error else ""
