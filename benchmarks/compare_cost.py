"""What evaluating K poolers costs against evaluating one, on a frozen-backbone task.

    python benchmarks/compare_cost.py [--task text-bbc] [--poolers all|a,b,...] [--json out.json]

In one process, with a fresh feature cache: (1) the backbone pass that builds the cached
features, then one pooler ``mean`` trained on them; (2) every other pooler trained on the same
cached features. Reports the time of all K poolers against one, and against the naive protocol
that runs the backbone again for every pooler (K backbone passes).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--task", default="text-bbc")
    ap.add_argument("--backbone", default="", help="the task's encoder (default: its own default)")
    ap.add_argument("--poolers", default="all", help="'all' registered poolers, or a comma list")
    ap.add_argument("--epochs", type=int, default=0, help="0: the task's default")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)

    # fresh features (backbones already pretrained stay where they are: they are not the question)
    backbones = Path(os.environ.get("POOLWISE_CACHE") or Path.home() / ".cache" / "poolwise") / "backbones"
    scratch = tempfile.mkdtemp(prefix="poolwise-cost-")
    os.environ["POOLWISE_CACHE"] = scratch
    if backbones.is_dir():
        os.symlink(backbones, Path(scratch) / "backbones")

    from poolwise.experiments import FrozenConfig, run_frozen
    from poolwise.pooling import list_poolers

    names = list_poolers() if args.poolers == "all" else [p.strip() for p in args.poolers.split(",")]
    names = ["mean"] + [n for n in names if n != "mean"]
    rows = []
    for name in names:
        cfg = FrozenConfig(task=args.task, pooler=name, epochs=args.epochs, backbone=args.backbone)
        start = time.perf_counter()
        m = run_frozen(cfg)["metrics"]
        rows.append({"pooler": name, "wall_s": time.perf_counter() - start, "features_s": m["features_s"],
                     "train_s": m["train_s"], "value": m["value"], "metric": m["metric"]})
        print(f"{name:>18}: {rows[-1]['wall_s']:7.2f} s (backbone {m['features_s']:.2f} s), "
              f"{m['metric']} {m['value']:.4g}", file=sys.stderr, flush=True)
    backbone = rows[0]["features_s"]
    one = rows[0]["wall_s"]
    all_k = sum(r["wall_s"] for r in rows)
    naive = all_k + backbone * (len(rows) - 1)
    result = {"task": args.task, "poolers": len(rows), "backbone_s": backbone, "one_pooler_s": one,
              "all_poolers_s": all_k, "ratio_all_vs_one": all_k / one, "naive_s": naive,
              "ratio_naive_vs_one": naive / one, "runs": rows}
    print(f"\n{args.task}: backbone pass {backbone:.1f} s; one pooler (mean) {one:.1f} s in all; "
          f"all {len(rows)} poolers {all_k:.1f} s = {all_k / one:.2f}x one "
          f"(re-running the backbone per pooler: {naive:.1f} s = {naive / one:.2f}x)")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
