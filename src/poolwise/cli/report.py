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
        "comparison or the pool-me-wisely study, whichever it holds).")
    rp.add_argument("--db", type=Path, required=True, help="the results database (runs.sqlite)")
    rp.add_argument("--out", type=Path, required=True, help="output directory")
    rp.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..report import compare_frame, write_compare_files, write_knn_report

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
                from ..report.knn_scaling import write_scaling_report_if_several

                paths = write_knn_report(store, args.out)
                if paths:  # several settings (a scaling or variants sweep): loss and margin against FLOPs
                    paths.update(write_scaling_report_if_several(store, args.out))
            else:
                from ..report.pool_me_wisely import write_findings

                paths = write_compare_files(frame, args.out)
                if frame["modality"].nunique() > 1:  # a pool-me-wisely study
                    paths["findings"] = write_findings(frame, args.out)
        except ValueError as err:
            raise UsageError(str(err)) from None
    print_paths(paths)
    return 0
