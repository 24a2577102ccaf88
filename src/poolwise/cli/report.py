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
        "a kNN sweep's runs.csv.")
    source = rp.add_mutually_exclusive_group(required=True)
    source.add_argument("--db", type=Path, help="the results database (runs.sqlite)")
    source.add_argument("--runs", type=Path, metavar="RUNS_CSV",
                        help="a kNN sweep's runs.csv: rebuild scaling.md and scaling.png from it "
                        "(for studies whose database was not kept)")
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
    from ..report.knn_scaling import scaling_frame_from_csv, write_scaling_report_if_several

    if not path.is_file():
        raise UsageError(f"no runs.csv at {path}")
    check_writable_dir(out)
    try:
        frame = scaling_frame_from_csv(path)
    except ValueError as err:
        raise UsageError(str(err)) from None
    paths = write_scaling_report_if_several(frame, out)
    if not paths:
        settings = frame["setting"].nunique() if not frame.empty else 0
        raise UsageError(f"{path} holds {settings} setting(s) with a FLOP count; the scaling report "
                         "compares two or more")
    print_paths(paths)
    return 0
