"""``poolwise compare``, ``poolwise pretrain`` and ``poolwise reproduce pool-me-wisely``: the
frozen-backbone benchmarks (Pool Me Wisely protocol)."""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ._common import (
    UsageError,
    add_sweep_options,
    check_writable_dir,
    check_writable_file,
    executor,
    first_line,
    grid_specs,
    note_other_settings,
    open_store,
    overrides,
    pooler_names,
    print_paths,
    print_summary,
    stderr_log,
)
from ._prepare import prepare_backbones, warm_features

MODALITIES = ("text", "vision", "timeseries")
BACKBONE_SETS = ("neutral", "objective", "all")
REPRODUCE_SEEDS = 5
CORE_WORKERS = max(1, min(2, os.cpu_count() or 1))  # pool-me-wisely runs are small: one per core


def register(commands: Any, experiments: Any) -> None:
    cmp = commands.add_parser(
        "compare", help="which pooling for my backbone and data? (frozen backbone)",
        description="Train each pooler (+ a linear head) on a frozen backbone's cached token outputs; "
        "table, bar plot, runs.csv and a recommendation.")
    cmp.add_argument("--list", action="store_true", help="list the tasks and exit")
    cmp.add_argument("--task", help="task name (see --list)")
    cmp.add_argument("--backbone", help="the task's encoder (default: its pooling-neutral one; "
                     "choices per task in --list)")
    cmp.add_argument("--model", help="a local Hugging Face model directory (text tasks; backbone hf)")
    cmp.add_argument("--data", type=Path, help="your CSV file (task text-csv, implied)")
    cmp.add_argument("--text-column", default="text", help="the CSV's text column (default text)")
    cmp.add_argument("--label-column", default="label", help="the CSV's label column (default label)")
    cmp.add_argument("--encoding", default="utf-8", help="the CSV's text encoding (default utf-8)")
    cmp.add_argument("--drop-missing", action="store_true",
                     help="leave out CSV rows without a text or label (default: refuse them)")
    cmp.add_argument("--poolers", help="comma-separated poolers (default: the paper's six + adapool)")
    cmp.add_argument("--seeds", type=int, default=5, help="number of seeds (default 5)")
    add_sweep_options(cmp, out="results/compare-TASK")
    _shipped_option(cmp)
    cmp.set_defaults(func=compare)

    pre = commands.add_parser(
        "pretrain", help="pretrain the project's own backbones (deterministic by seed)",
        description="Pretrain the project's own backbones into the cache (safetensors).")
    pre.add_argument("names", nargs="*", help="backbone names, or 'all' (see --list)")
    pre.add_argument("--list", action="store_true", help="list the backbones and exit")
    pre.add_argument("--seed", type=int, default=0)
    pre.add_argument("--steps", type=int, help="training steps (default: the recipe's)")
    pre.set_defaults(func=pretrain)

    pmw = experiments.add_parser(
        "pool-me-wisely", help="every pooler on every frozen-backbone task (Pool Me Wisely study)",
        description="The Pool Me Wisely study at a size that fits in about 15 minutes on 2 cores: "
        "tables, plots and findings.md (agreement with the paper's claims).")
    pmw.add_argument("--modalities", help="comma list of text, vision, timeseries (default all)")
    pmw.add_argument("--poolers", help="comma-separated poolers (default: the paper's six + adapool)")
    pmw.add_argument("--seeds", type=_seed_count, default=REPRODUCE_SEEDS,
                     help=f"number of seeds (default {REPRODUCE_SEEDS})")
    pmw.add_argument("--backbones", choices=BACKBONE_SETS, default="neutral",
                     help="neutral: backbones pretrained without a pooling head (default); objective: "
                     "the ones whose pretraining favours a pooler (supervised CLS ViT, MiniLM, causal LM); "
                     "all: both, to measure the objective's effect")
    pmw.add_argument("--sizes", help="comma list of s, m, l: the neutral backbones in these sizes "
                     "(model-size axis; default m only)")
    pmw.add_argument("--max-lengths", help="comma list of lengths, e.g. 16,32,64,128: the text tasks "
                     "(text-bbc, text-rt) also with inputs cut to each (the paper's Table 9)")
    add_sweep_options(pmw, workers=CORE_WORKERS, workers_note=": one per core, at most 2",
                      out="results/pool-me-wisely")
    _shipped_option(pmw)
    pmw.set_defaults(func=reproduce_pool_me_wisely)


def _shipped_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--no-shipped-backbones", action="store_true",
                   help="pretrain the project's backbones on this machine instead of starting from the "
                   "weights that ship with poolwise (the study's default backbones; minutes, not seconds)")


def _apply_shipped_option(args: argparse.Namespace) -> None:
    from ..experiments import shipped

    if getattr(args, "no_shipped_backbones", False):
        os.environ[shipped.ENV] = "0"  # the workers inherit it


def _sizes(text: str | None) -> list[str]:
    from ..experiments.pretrain import SIZES

    sizes = [x.strip() for x in (text or "m").split(",") if x.strip()]
    bad = [x for x in sizes if x not in SIZES]
    if bad or not sizes:
        raise UsageError(f"--sizes takes a comma list of {', '.join(SIZES)}; got {text!r}")
    return sizes


def _lengths(text: str | None) -> list[int]:
    if not text:
        return []
    try:
        lengths = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        lengths = []
    if not lengths or min(lengths) < 1:
        raise UsageError(f"--max-lengths takes a comma list of positive lengths, e.g. 16,32,64; got {text!r}")
    return lengths


def study_backbones(task: str, which: str, sizes: list[str]) -> list[str]:
    """The backbones a study runs ``task`` on: its default (pooling-neutral) one in each of
    ``sizes`` where it comes in sizes, and with ``which`` = objective/all the others."""
    from ..experiments import FROZEN_TASKS
    from ..experiments import pretrain as pt

    default, *others = FROZEN_TASKS[task].backbones
    sized = default in pt.RECIPES and pt.RECIPES[default].family
    names = [pt.sized(default, s) for s in sizes] if sized else [default]
    if which == "objective":
        names = [n for n in names if n != default] + others
    elif which == "all":
        names += others
    return names


def _seed_count(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"pool-me-wisely --seeds is a count, e.g. --seeds 3; got {text!r}") from None


def _list_tasks() -> int:
    from ..experiments import FROZEN_TASKS
    from ..experiments.frozen_tasks import HF_BACKBONES, backbone_objective

    width = max(map(len, FROZEN_TASKS))
    for t in FROZEN_TASKS.values():
        print(f"{t.name:<{width}}  {t.modality:<10} {t.context:<6} {t.description}")
        names = ", ".join(f"{b} ({backbone_objective(b)})" for b in t.backbones)
        extra = [b for b in HF_BACKBONES if b not in t.backbones] if t.modality == "text" else []
        more = "".join(f", {b} ({backbone_objective(b)})" for b in extra)
        print(f"{'':<{width}}  backbones: {names}{more} "
              "(the first is the default; masked-pretrained ones also as NAME-s, NAME-l)")
    return 0


def _specs(task: str, poolers: str | None, seeds: int, base: dict[str, Any]) -> list:
    from ..experiments.frozen import default_poolers, planned_pooler_kwargs

    if seeds < 1:
        raise UsageError(f"--seeds must be >= 1; got {seeds}")
    names = pooler_names(poolers) if poolers else default_poolers(task, base.get("backbone", ""),
                                                                  base.get("model", ""))
    kwargs = planned_pooler_kwargs(task, names, base.get("pooler_kwargs"))
    if kwargs:
        base = {**base, "pooler_kwargs": kwargs}
    return grid_specs(task, base, pooler=names, seed=range(seeds))


def prepare_features(specs: list, log: Callable[[str], None]) -> dict[str, float]:
    """Run each task's backbone once, before the sweep (workers then only read the cache).
    Returns the seconds spent per task (0 when the features were already cached)."""
    from ..experiments.frozen import load_task_features

    seconds: dict[str, float] = {}
    for spec in specs:
        name = f"{spec.task} ({spec.params['backbone']})"
        if name in seconds:
            continue
        start = time.perf_counter()
        try:
            feats = load_task_features(spec.config(), log)
        except (ValueError, ImportError) as err:
            raise UsageError(f"{name}: {first_line(err)}") from None
        seconds[name] = feats.build_s
        cached = "" if feats.build_s else " (cached)"
        log(f"{name}: features ready in {time.perf_counter() - start:.1f} s{cached}: "
            f"{', '.join(f'{k} {len(v)}' for k, v in feats.splits.items())} inputs, dim {feats.dim}")
    return seconds


def _sweep(specs: list, args: argparse.Namespace, out: Path, title: str, label: str) -> tuple[int, dict, Any]:
    """Features first, then the runs; writes the report. Returns the exit code, the written
    paths and the finished runs as a :func:`~poolwise.report.compare_frame` (None if none)."""
    from ..report import compare_frame, write_compare_files
    from ..report.compare import AXES
    from ..runner import run_sweep
    from ..runner.progress import Progress

    check_writable_dir(out)
    db = check_writable_file(args.db or out / "runs.sqlite")
    runner = executor(args)
    _apply_shipped_option(args)
    log = stderr_log(args.quiet)
    start = time.perf_counter()
    pretrain_s = prepare_backbones(specs, args.workers, log, args.quiet)
    warmed_s = warm_features(specs, args.workers)
    feature_s = prepare_features(specs, log)  # bad data fails here, before any file
    pretrained = f" ({sum(pretrain_s.values()):.0f} s of pretraining)" if pretrain_s else ""
    log(f"backbones and features ready in {time.perf_counter() - start:.0f} s{pretrained}")
    with open_store(db, create=True) as store:
        print(f"{label}: {len(specs)} runs, results in {db}", file=sys.stderr)
        note_other_settings(store, specs, AXES)
        summary = run_sweep(specs, store, runner, args.retry_failed, Progress(quiet=args.quiet))
        frame = compare_frame(store, sorted({s.task for s in specs}))
        paths = write_compare_files(frame, out, title) if not frame.empty else {}
    print_summary(summary, f" (+{warmed_s + sum(feature_s.values()):.0f} s of backbone passes)")
    return (1 if summary.failed else 0), paths, (None if frame.empty else frame)


def compare(args: argparse.Namespace) -> int:
    if args.list:
        return _list_tasks()
    base = overrides(args.set)
    task = args.task
    if args.data is not None:
        task = task or "text-csv"
        if task != "text-csv":
            raise UsageError("--data goes with the text-csv task (or no --task)")
        base.update(data=str(args.data), text_column=args.text_column, label_column=args.label_column,
                    encoding=args.encoding, drop_missing=args.drop_missing)
    if args.model:
        base["model"] = args.model
    if args.backbone:
        base["backbone"] = args.backbone
    if not task:
        raise UsageError("give --task TASK (see --list), or --data FILE.csv for your own data")
    from ..experiments import FROZEN_TASKS

    if task not in FROZEN_TASKS:
        raise UsageError(f"unknown task {task!r}; known: {', '.join(FROZEN_TASKS)}")
    if args.model and FROZEN_TASKS[task].modality != "text":
        raise UsageError(f"--model applies to text tasks; {task} uses the project's own backbone")
    specs = _specs(task, args.poolers, args.seeds, base)
    out = args.out or Path("results") / f"compare-{task}"
    rc, paths, frame = _sweep(specs, args, out, f"Which pooling for {task}?", f"compare {task}")
    labels = [] if frame is None else list(frame["task"].unique())  # task, or task@backbone
    if labels:
        from ..report import recommend, summarize

        summary = summarize(frame)
        for label in labels:
            print(f"{label}: {recommend(summary, label, frame)['verdict']}")
    print_paths({w: p for w, p in paths.items() if not w.endswith(".png") or w[:-4] in labels})
    return rc


def pretrain(args: argparse.Namespace) -> int:
    from ..experiments import pretrain as pt

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
        folder = pt.pretrain(name, args.seed, args.steps, log=stderr_log(False))
        print(f"{name}: {folder} ({time.perf_counter() - start:.0f} s)")
    return 0


def reproduce_pool_me_wisely(args: argparse.Namespace) -> int:
    """The whole study at a size that fits in about 15 minutes on 2 cores."""
    from ..experiments import FROZEN_TASKS
    from ..report.pool_me_wisely import write_findings

    wanted = [m.strip() for m in (args.modalities or ",".join(MODALITIES)).split(",") if m.strip()]
    bad = [m for m in wanted if m not in MODALITIES]
    if bad or not wanted:
        raise UsageError(f"unknown modality {', '.join(bad) or '(none)'}; "
                         f"choose from {', '.join(MODALITIES)}")
    base = overrides(args.set)
    tasks = [t.name for m in wanted for t in FROZEN_TASKS.values()
             if t.modality == m and t.name != "text-csv"]
    lengths = _lengths(args.max_lengths)
    specs = [s for t in tasks for b in study_backbones(t, args.backbones, _sizes(args.sizes))
             for n in [0] + [n for n in lengths if FROZEN_TASKS[t].max_length not in (0, n)]
             for s in _specs(t, args.poolers, args.seeds, {**base, "backbone": b, "max_length": n})]
    out = args.out or Path("results") / "pool-me-wisely"
    start = time.perf_counter()
    rc, paths, frame = _sweep(specs, args, out, "Pool Me Wisely (frozen backbones)",
                              f"pool-me-wisely ({', '.join(wanted)})")
    if frame is None:
        return rc
    paths["findings"] = write_findings(frame, out)
    # our tables and the findings check, as written to findings.md
    print("\n" + paths["findings"].read_text().split("\n", 4)[-1])
    print(f"Pool Me Wisely at small scale: {(time.perf_counter() - start) / 60:.1f} min in this call")
    print_paths({w: paths[w] for w in ("table", "findings", "csv") if w in paths}, width=8)
    return rc
