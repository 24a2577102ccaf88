"""``poolwise reproduce adapool-vision``: ViTs trained from scratch with each pooler (AdaPool
paper's CIFAR runs), across image SNR on the laptop presets."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from ._common import (
    UsageError,
    add_sweep_options,
    check_writable_dir,
    check_writable_file,
    executor,
    first_line,
    int_list,
    note_other_settings,
    open_store,
    overrides,
    print_paths,
    print_summary,
)

CORE_WORKERS = max(1, min(2, os.cpu_count() or 1))


def register(commands: Any, experiments: Any) -> None:
    p = experiments.add_parser(
        "adapool-vision", help="ViT + pooler from scratch across image SNR (AdaPool paper, vision)",
        description="Train a ViT with each pooler (ClsToken, AvgPool, MaxPool, AdaPool with the focal, "
        "mean and corner queries) from scratch; accuracy table beside the paper's CIFAR numbers, "
        "accuracy-vs-SNR plot, findings.md and runs.csv. Resumable: rerun the same command.")
    p.add_argument("--preset", default="quick", help="demo, quick, tokens64 or paper (default: quick)")
    p.add_argument("--poolers", help="comma-separated variants: cls_token, adapool-focal, adapool-mean, "
                   "adapool-corner or any registered pooler (default: the paper's six)")
    p.add_argument("--seeds", help="comma-separated seeds (default: the preset's; paper: fold = seed %% 5)")
    p.add_argument("--dataset", help="mnist5k, digits, cifar10 or cifar100 (default: the preset's)")
    p.add_argument("--data-dir", type=Path,
                   help="folder of the CIFAR binary release (data_batch_*.bin / train.bin); paper preset")
    p.add_argument("--canvases", help="comma-separated canvas sides in pixels (image SNR = "
                   "(28/patch)^2 / (canvas/patch)^2; default: the preset's)")
    p.add_argument("--placements", help="centre and/or random (default: the preset's)")
    p.add_argument("--device", help="auto, cpu, cuda or cuda:N (default auto: CUDA when present)")
    add_sweep_options(p, workers=CORE_WORKERS, workers_note=": one per core, at most 2",
                      out="results/adapool-vision-PRESET")
    p.set_defaults(func=run)


def _settings(args: argparse.Namespace, preset: Any) -> list[tuple[str, int, str]]:
    settings = list(preset.settings)
    if args.dataset:
        settings = list(dict.fromkeys((args.dataset, c, p) for _, c, p in settings))
    if args.canvases or args.placements:
        datasets = list(dict.fromkeys(d for d, _, _ in settings))
        canvases = int_list(args.canvases, "--canvases") if args.canvases else \
            tuple(dict.fromkeys(c for _, c, _ in settings))
        placements = [p.strip() for p in args.placements.split(",") if p.strip()] if args.placements else \
            list(dict.fromkeys(p for _, _, p in settings))
        settings = [(d, c, p) for d in datasets for c in canvases for p in placements]
    return settings


def _check_data(specs: list) -> None:
    """Read every CIFAR file the sweep needs before anything is written (one-line errors)."""
    from ..data.cifar import load_cifar

    for name, folder in dict.fromkeys((s.params["dataset"], s.params["data_dir"]) for s in specs):
        if name.startswith("cifar"):
            try:
                load_cifar(folder, name)
            except ValueError as err:
                raise UsageError(first_line(err)) from None


def run(args: argparse.Namespace) -> int:
    from ..experiments.vision_presets import PRESETS
    from ..report.vision import AXES, write_vision_report
    from ..runner import RunSpec, run_sweep
    from ..runner.progress import Progress

    if args.preset not in PRESETS:
        raise UsageError(f"unknown preset {args.preset!r}; choose from {', '.join(PRESETS)}")
    preset = PRESETS[args.preset]
    base = {**preset.base, **overrides(args.set)}
    if args.data_dir is not None:
        base["data_dir"] = str(args.data_dir.resolve())
    if args.device:
        base["device"] = args.device
    poolers = preset.poolers
    if args.poolers:
        poolers = tuple(p.strip() for p in args.poolers.split(",") if p.strip())
    seeds = int_list(args.seeds, "--seeds") if args.seeds else preset.seeds
    settings = _settings(args, preset)
    if any(d.startswith("cifar") for d, _, _ in settings) and "data_dir" not in base:
        raise UsageError("CIFAR needs --data-dir: the folder of the official binary release "
                         "(cifar-10-batches-bin with data_batch_1.bin ... / cifar-100-binary with train.bin)")
    try:
        specs = [RunSpec("adapool-vision", {**base, "dataset": d, "canvas": c, "placement": p,
                                            "pooler": pooler, "seed": seed})
                 for d, c, p in settings for pooler in poolers for seed in seeds]
    except (ValueError, TypeError) as err:
        raise UsageError(first_line(err)) from None
    _check_data(specs)
    out = check_writable_dir(args.out or Path("results") / f"adapool-vision-{args.preset}")
    db = check_writable_file(args.db or out / "runs.sqlite")
    runner = executor(args)
    with open_store(db, create=True) as store:
        print(f"adapool-vision, preset {args.preset!r}: {len(specs)} runs ({len(poolers)} variants x "
              f"{len(settings)} settings x {len(seeds)} seeds), results in {db}", file=sys.stderr)
        note_other_settings(store, specs, AXES)
        summary = run_sweep(specs, store, runner, args.retry_failed, Progress(quiet=args.quiet))
        paths = write_vision_report(store, out) if store.rows("adapool-vision", "done") else {}
    print_summary(summary)
    print_paths(paths, width=8)
    return 1 if summary.failed else 0
