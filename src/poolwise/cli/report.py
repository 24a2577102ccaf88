"""``poolwise report``: rebuild tables, plots and CSV from a results database."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from ._common import UsageError, check_writable_dir, open_store, print_paths


def register(commands: Any, experiments: Any) -> None:
    rp = commands.add_parser(
        "report", help="rebuild plot, table and CSV from a results database",
        description="Rebuild every report file from a results database (kNN sweep, vision sweep, RL sweep, "
        "comparison or the pool-me-wisely study, whichever it holds), or the kNN scaling report from "
        "a report's runs.csv.")
    source = rp.add_mutually_exclusive_group(required=True)
    source.add_argument("--db", type=Path, help="the results database (runs.sqlite)")
    source.add_argument("--runs", type=Path, metavar="RUNS_CSV",
                        help="a report's runs.csv (kNN, vision, RL with curves.csv beside it, a comparison "
                        "or the pool-me-wisely study, with items.csv beside it where kept): rebuild "
                        "the report's files from it, for studies whose database was not kept")
    rp.add_argument("--out", type=Path, required=True, help="output directory")
    rp.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..report import compare_frame, write_compare_files, write_knn_report

    if args.runs is not None:
        return _from_runs_csv(args.runs, args.out)
    if not args.db.exists():
        raise UsageError(f"no results database at {args.db}")
    check_writable_dir(args.out)
    with open_store(args.db, create=False, read_only=True) as store:
        try:  # a kNN sweep, a vision sweep or a frozen-backbone comparison, whichever it holds
            frame = compare_frame(store)
            if store.rows("adapool-rl", "done") and not store.rows("adapool-knn", "done"):
                from ..report.rl import write_rl_report

                paths = write_rl_report(store, args.out)
            elif store.rows("adapool-vision", "done") and not store.rows("adapool-knn", "done"):
                from ..report.vision import write_vision_report

                paths = write_vision_report(store, args.out)
            elif store.rows("adapool-knn", "done") or frame.empty:
                from ..report.knn_scaling import scaling_frame, write_scaling_report_if_several

                paths = write_knn_report(store, args.out)
                if paths:  # several settings (a scaling or variants sweep): loss and margin against FLOPs
                    paths.update(write_scaling_report_if_several(scaling_frame(store), args.out))
            else:
                from ..report.pool_me_wisely import write_findings

                paths = write_compare_files(frame, args.out)
                if frame["modality"].nunique() > 1:  # a pool-me-wisely study
                    paths["findings"] = write_findings(frame, args.out)
        except ValueError as err:
            raise UsageError(str(err)) from None
    print_paths(paths)
    return 0


def _from_runs_csv(path: Path, out: Path) -> int:
    import pandas as pd

    if not path.is_file():
        raise UsageError(f"no runs.csv at {path}")
    check_writable_dir(out)
    df = pd.read_csv(path, float_precision="round_trip")  # the rebuilt runs.csv is byte-identical
    source = f"rebuilt from `{path.name}`"
    try:
        if "test_signal_loss" in df:
            paths = _knn_from_csv(df, path, out, source)
        elif {"test_acc", "canvas"} <= set(df.columns):
            from ..report.vision import write_vision_files

            paths = write_vision_files(df, out, source)
        elif "final_return" in df:
            from ..report.rl import write_rl_files

            curves = path.with_name("curves.csv")
            curve = pd.read_csv(curves, float_precision="round_trip") if curves.is_file() else pd.DataFrame(
                columns=["env", "config", "pooler", "seed", "env_steps", "return_mean"])
            paths = write_rl_files(df, curve, out, source)
        elif {"metric", "value", "task", "pooler"} <= set(df.columns):
            paths = _compare_from_csv(path, out)
        else:
            raise UsageError(f"{path} is not the runs.csv of a poolwise report (its columns: "
                             f"{', '.join(map(str, df.columns[:8]))}, ...)")
    except ValueError as err:
        raise UsageError(str(err)) from None
    print_paths(paths)
    return 0


def _knn_from_csv(df: Any, path: Path, out: Path, source: str) -> dict[str, Path]:
    from ..report.knn import write_knn_files
    from ..report.knn_scaling import scaling_frame_from_csv, write_scaling_report_if_several

    paths = write_knn_files(df, out, source)
    if {"sample_gradients", "train_flops"} <= set(df.columns) and df["train_flops"].notna().all():
        paths.update(write_scaling_report_if_several(scaling_frame_from_csv(path), out))
    return paths


def _compare_from_csv(path: Path, out: Path) -> dict[str, Path]:
    from ..report import write_compare_files
    from ..report.compare import read_runs_csv
    from ..report.pool_me_wisely import write_findings

    df = read_runs_csv(path)  # with the per-item results kept beside it
    paths = write_compare_files(df, out)
    if df["modality"].nunique() > 1:  # a pool-me-wisely study
        paths["findings"] = write_findings(df, out)
    return paths
