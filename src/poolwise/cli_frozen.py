"""``poolwise compare``, ``poolwise pretrain`` and ``poolwise reproduce pool-me-wisely``:
the frozen-backbone benchmarks (Pool Me Wisely protocol) from the command line."""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

from .cli import UsageError, _executor, _open_store, _overrides, _pooler_names

MODALITIES = ("text", "vision", "timeseries")
REPRODUCE_SEEDS = 5


def add_commands(sub: Any) -> None:
    cmp = sub.add_parser(
        "compare",
        help="which pooling for my backbone and data? (frozen backbone)",
        description="Train each pooler (+ a linear head) on a frozen backbone's cached "
        "token outputs; table, bar plot, runs.csv and a recommendation.",
    )
    cmp.add_argument("--list", action="store_true", help="list the tasks and exit")
    cmp.add_argument("--task", help="task name (see --list)")
    cmp.add_argument("--model", help="a local Hugging Face model directory (text tasks; default MiniLM)")
    cmp.add_argument("--data", type=Path, help="your CSV file (task text-csv, implied)")
    cmp.add_argument("--text-column", default="text")
    cmp.add_argument("--label-column", default="label")
    cmp.add_argument("--poolers", help="comma-separated poolers (default: the paper's six + adapool)")
    cmp.add_argument("--seeds", type=int, default=5, help="number of seeds (default 5)")
    _sweep_options(cmp)

    pre = sub.add_parser("pretrain", help="pretrain the project's own backbones (deterministic by seed)")
    pre.add_argument("names", nargs="*", help="backbone names, or 'all' (see --list)")
    pre.add_argument("--list", action="store_true", help="list the backbones and exit")
    pre.add_argument("--seed", type=int, default=0)
    pre.add_argument("--steps", type=int, help="training steps (default: the recipe's)")


def _sweep_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--executor", default="local", choices=["local", "ray"])
    p.add_argument("--address", help="Ray cluster to join (HOST:PORT, ray://..., auto)")
    p.add_argument("--workers", type=int, default=1, help="local process pool size (default 1)")
    p.add_argument("--out", type=Path, help="output directory")
    p.add_argument("--db", type=Path, help="results database (default OUT/runs.sqlite)")
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a run setting, e.g. --set epochs=3 --set max_samples=500",
    )
    p.add_argument("--retry-failed", action="store_true", help="rerun runs recorded as failed")
    p.add_argument("--quiet", action="store_true", help="no progress display")


def _log(quiet: bool):
    def log(msg: str) -> None:
        if not quiet:
            print(msg, file=sys.stderr, flush=True)

    return log


def _list_tasks() -> int:
    from .experiments import FROZEN_TASKS

    width = max(map(len, FROZEN_TASKS))
    for t in FROZEN_TASKS.values():
        print(f"{t.name:<{width}}  {t.modality:<10} {t.context:<6} {t.description}")
    return 0


def _poolers(text: str | None, task: str) -> list[str]:
    from .experiments.frozen import default_poolers

    return _pooler_names(text) if text else default_poolers(task)


def _specs(task: str, poolers: list[str], seeds: int, base: dict[str, Any]):
    from .runner import grid

    if seeds < 1:
        raise UsageError(f"--seeds must be >= 1; got {seeds}")
    try:
        return grid(task, base, pooler=poolers, seed=range(seeds))
    except (ValueError, TypeError) as err:
        raise UsageError(str(err).splitlines()[0]) from None


def prepare_features(specs: list, log) -> dict[str, float]:
    """Run each task's backbone once, before the sweep (workers then only read the cache).
    Returns the seconds spent per task (0 when the features were already cached)."""
    from .experiments.frozen import load_task_features

    seconds: dict[str, float] = {}
    for spec in specs:
        if spec.task in seconds:
            continue
        start = time.perf_counter()
        try:
            feats = load_task_features(spec.config(), log)
        except (ValueError, ImportError) as err:
            raise UsageError(f"{spec.task}: {str(err).splitlines()[0]}") from None
        seconds[spec.task] = feats.build_s
        cached = "" if feats.build_s else " (cached)"
        log(
            f"{spec.task}: features ready in {time.perf_counter() - start:.1f} s{cached}: "
            f"{', '.join(f'{k} {len(v)}' for k, v in feats.splits.items())} inputs, dim {feats.dim}"
        )
    return seconds


def _sweep(specs: list, args: argparse.Namespace, out: Path, title: str, label: str) -> tuple[int, dict, Any]:
    """Features first, then the runs; writes the report. Returns the exit code, the written
    paths and the finished runs as a :func:`~poolwise.report.compare_frame` (None if none)."""
    from .report import compare_frame, write_compare_files
    from .runner import run_sweep
    from .runner.progress import Progress

    executor = _executor(args)
    log = _log(args.quiet)
    db = args.db or out / "runs.sqlite"
    feature_s = prepare_features(specs, log)  # bad data or models fail here, before any file is written
    store = _open_store(db, create=True)
    with store:
        print(f"{label}: {len(specs)} runs, results in {db}", file=sys.stderr)
        summary = run_sweep(specs, store, executor, args.retry_failed, Progress(quiet=args.quiet))
        frame = compare_frame(store, sorted({s.task for s in specs}))
        paths = write_compare_files(frame, out, title) if not frame.empty else {}
    print(
        f"{summary.done} runs done, {summary.skipped} already there, {summary.failed} failed "
        f"in {summary.wall_s / 60:.1f} min (+{sum(feature_s.values()):.0f} s of backbone passes)"
    )
    for key, line in summary.errors.items():
        print(f"  failed {key}: {line}")
    return (1 if summary.failed else 0), paths, (None if frame.empty else frame)


def compare(args: argparse.Namespace) -> int:
    if args.list:
        return _list_tasks()
    base = _overrides(args.set)
    task = args.task
    if args.data is not None:
        task = task or "text-csv"
        if task != "text-csv":
            raise UsageError("--data goes with the text-csv task (or no --task)")
        base.update(data=str(args.data), text_column=args.text_column, label_column=args.label_column)
    if args.model:
        base["model"] = args.model
    if not task:
        raise UsageError("give --task TASK (see --list), or --data FILE.csv for your own data")
    from .experiments import FROZEN_TASKS

    if task not in FROZEN_TASKS:
        raise UsageError(f"unknown task {task!r}; known: {', '.join(FROZEN_TASKS)}")
    if args.model and FROZEN_TASKS[task].modality != "text":
        raise UsageError(f"--model applies to text tasks; {task} uses the project's own backbone")
    specs = _specs(task, _poolers(args.poolers, task), args.seeds, base)
    out = args.out or Path("results") / f"compare-{task}"
    rc, paths, frame = _sweep(specs, args, out, f"Which pooling for {task}?", f"compare {task}")
    if frame is not None:
        from .report import recommend, summarize

        print(f"{task}: {recommend(summarize(frame), task)['verdict']}")
    for what, path in paths.items():
        if not what.endswith(".png") or what == f"{task}.png":
            print(f"{what:>5}: {path}")
    return rc


def pretrain(args: argparse.Namespace) -> int:
    from .experiments import pretrain as pt

    if args.list or not args.names:
        for name in pt.iter_names():
            print(f"{name:<24} {pt.RECIPES[name].description}")
        return 0
    names = list(pt.iter_names()) if args.names == ["all"] else args.names
    unknown = [n for n in names if n not in pt.RECIPES]
    if unknown:
        raise UsageError(f"unknown backbone {', '.join(unknown)}; known: {', '.join(pt.iter_names())}")
    if args.steps is not None and args.steps < 1:
        raise UsageError(f"--steps must be >= 1; got {args.steps}")
    for name in names:
        start = time.perf_counter()
        folder = pt.pretrain(name, args.seed, args.steps, log=_log(False))
        print(f"{name}: {folder} ({time.perf_counter() - start:.0f} s)")
    return 0


def reproduce_pool_me_wisely(args: argparse.Namespace) -> int:
    """The whole study at a size that fits in about 30 minutes on 2 cores."""
    from .experiments import FROZEN_TASKS
    from .report.pool_me_wisely import write_findings

    wanted = [m.strip() for m in (args.modalities or ",".join(MODALITIES)).split(",") if m.strip()]
    bad = [m for m in wanted if m not in MODALITIES]
    if bad or not wanted:
        raise UsageError(
            f"unknown modality {', '.join(bad) or '(none)'}; choose from {', '.join(MODALITIES)}"
        )
    seeds = args.seeds or REPRODUCE_SEEDS
    if args.workers is None:  # the runs are small: one per core
        args.workers = max(1, min(2, os.cpu_count() or 1))
    base = _overrides(args.set)
    by_modality = {
        m: [t.name for t in FROZEN_TASKS.values() if t.modality == m and t.name != "text-csv"] for m in wanted
    }
    specs = [
        s
        for tasks in by_modality.values()
        for t in tasks
        for s in _specs(t, _poolers(args.poolers, t), seeds, base)
    ]
    out = args.out or Path("results") / "pool-me-wisely"
    start = time.perf_counter()
    rc, paths, frame = _sweep(
        specs, args, out, "Pool Me Wisely (frozen backbones)", f"pool-me-wisely ({', '.join(wanted)})"
    )
    if frame is None:
        return rc
    paths["findings"] = write_findings(frame, out)
    # our tables and the findings check, as written to findings.md
    print("\n" + paths["findings"].read_text().split("\n", 4)[-1])
    print(f"Pool Me Wisely at small scale: {(time.perf_counter() - start) / 60:.1f} min in this call")
    for what in ("table", "findings", "csv"):
        if what in paths:
            print(f"{what:>8}: {paths[what]}")
    return rc
