"""``poolwise reproduce adapool-knn``: the kNN-Centroid sweep of the AdaPool paper."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from ._common import (
    UsageError,
    add_sweep_options,
    check_writable_dir,
    check_writable_file,
    executor,
    grid_specs,
    int_list,
    note_other_settings,
    open_store,
    overrides,
    print_paths,
    print_summary,
)


def register(commands: Any, experiments: Any) -> None:
    p = experiments.add_parser(
        "adapool-knn", help="kNN-Centroid signal loss against SNR (AdaPool paper, from scratch)",
        description="Train encoder + pooler from scratch on kNN-Centroid at several SNRs; "
        "signal-loss plot, table and runs.csv. Resumable: rerun the same command.")
    p.add_argument("--preset", default="quick",
                   help="demo, quick, scaling, variants, curve, paper, paper-gpu or paper-short "
                   "(default: quick)")
    p.add_argument("--poolers",
                   help="comma-separated poolers: registered names, or cls_token for the learned CLS token")
    p.add_argument("--k", help="comma-separated k values (SNR = k/128)")
    p.add_argument("--seeds", help="comma-separated seeds (default: the preset's)")
    add_sweep_options(p, out="results/adapool-knn-PRESET")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    # every report module is imported before the runs, not after: a sweep can last hours, and a
    # report module edited meanwhile must not break the report step of a sweep started before
    from ..experiments.knn_presets import PRESETS
    from ..report import write_knn_report
    from ..report.knn import AXES as KNN_AXES
    from ..report.knn_curve import curve_frame, write_curve_report
    from ..report.knn_scaling import scaling_frame, write_scaling_report_if_several
    from ..runner import run_sweep
    from ..runner.progress import Progress

    if args.preset not in PRESETS:
        raise UsageError(f"unknown preset {args.preset!r}; choose from {', '.join(PRESETS)}")
    preset = PRESETS[args.preset]
    bases = preset.configs(overrides(args.set))
    poolers = preset.poolers
    if args.poolers:
        poolers = tuple(p.strip() for p in args.poolers.split(",") if p.strip())
    ks = int_list(args.k, "--k") if args.k else preset.ks
    seeds = int_list(args.seeds, "--seeds") if args.seeds else preset.seeds
    specs = [s for base in bases for s in grid_specs("adapool-knn", base, k=ks, pooler=poolers, seed=seeds)]
    cuda = [str(b["device"]) for b in bases if str(b.get("device", "auto")).startswith("cuda")]
    if cuda and not args.address:
        import torch

        if not torch.cuda.is_available():  # fail before anything is written, not in every run
            raise UsageError(f"device {cuda[0]!r} (preset {args.preset!r} or --set) needs a CUDA device; "
                             "none is visible here (use --set device=cpu, or run on a GPU machine)")

    out = check_writable_dir(args.out or Path("results") / f"adapool-knn-{args.preset}")
    db = check_writable_file(args.db or out / "runs.sqlite")
    runner = executor(args)
    with open_store(db, create=True) as store:
        points = f" x {len(bases)} compute points" if len(bases) > 1 else ""
        print(f"adapool-knn, preset {args.preset!r}: {len(specs)} runs ({len(poolers)} poolers x "
              f"{len(ks)} k x {len(seeds)} seeds{points}), results in {db}", file=sys.stderr)
        note_other_settings(store, specs, KNN_AXES)
        summary = run_sweep(specs, store, runner, args.retry_failed, Progress(quiet=args.quiet))
        paths = write_knn_report(store, out) if store.rows("adapool-knn", "done") else {}
        if preset.points and paths:  # a compute-scaling sweep: loss and margin against FLOPs
            paths.update(write_scaling_report_if_several(scaling_frame(store), out))
        curves = curve_frame(store, specs)
        if not curves.empty:  # learning curves, with the runs still under way (their checkpoints)
            paths.update(write_curve_report(curves, out))
    print_summary(summary)
    print_paths(paths)
    return 1 if summary.failed else 0
