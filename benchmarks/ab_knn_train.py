"""kNN-Centroid training throughput of this checkout against another version of poolwise.

    git worktree add /tmp/old <rev>
    python benchmarks/ab_knn_train.py --old /tmp/old/src [--threads 1] [--rounds 3] \
        [--json out.json] [--md out.md]

Two versions cannot share one process (their compiled kernels have the same module name), so
each round runs ``benchmarks/knn_train.py`` once per version, alternating, in fresh processes
with the same seed and batch (kernel builds are cached by source hash, so both versions share
the cache without clashing). Reports
the median samples/s of ``KNNCentroidModel`` per version and configuration, and the ratio new /
old, on the CPU named in the header. The paper-structured reference model in each run is the
drift check: it is the same code on both sides, so its ratio should stay near 1.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from _machine import cpu_name  # benchmarks/ is on sys.path when run as a script

HERE = Path(__file__).resolve().parent
NEW_SRC = HERE.parent / "src"
#: (depth, batch): the quick presets' model and optimiser, and the paper's
CONFIGS = ((1, 64), (2, 64), (12, 750))
MODEL, REFERENCE = "poolwise KNNCentroidModel", "reference (paper-structured)"


def one_run(src: Path, depth: int, batch: int, steps: int, threads: int) -> dict[str, float]:
    """Samples/s of the poolwise model and of the reference in one fresh process."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "r.json"
        env = {**os.environ, "PYTHONPATH": str(src),
               "OMP_NUM_THREADS": str(threads), "POOLWISE_THREADS": str(threads)}
        cmd = [sys.executable, str(HERE / "knn_train.py"), "--depth", str(depth), "--batch", str(batch),
               "--steps", str(steps), "--json", str(out)]
        subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL)
        rows = json.loads(out.read_text())["rows"]
    return {r["model"]: r["samples_per_s"] for r in rows}


def markdown(result: dict) -> str:
    lines = [f"kNN-Centroid training, {result['cpu']}, {result['threads']} thread(s); median samples/s of "
             f"{result['rounds']} alternating rounds (fresh processes), old = {result['old']}.", "",
             "| depth | batch | old | new | new / old | reference new / old (drift) |",
             "|---|---|---|---|---|---|"]
    for r in result["rows"]:
        lines.append(f"| {r['depth']} | {r['batch']} | {r['old']:.0f} | {r['new']:.0f} "
                     f"| **{r['ratio']:.2f}x** | {r['reference_ratio']:.2f} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--old", type=Path, required=True, help="the other version's src directory")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--json", type=Path)
    ap.add_argument("--md", type=Path)
    args = ap.parse_args(argv)
    if not (args.old / "poolwise" / "__init__.py").is_file():
        ap.error(f"--old {args.old} is not a src directory holding a poolwise package")
    if args.rounds < 1 or args.threads < 1:
        ap.error("--rounds and --threads must be >= 1")
    sides = {"old": args.old.resolve(), "new": NEW_SRC}
    rows = []
    for depth, batch in CONFIGS:
        steps = 2 if depth * batch > 1000 else 20
        got: dict[str, dict[str, list[float]]] = {s: {MODEL: [], REFERENCE: []} for s in sides}
        for _ in range(args.rounds):
            for side, src in sides.items():
                for name, value in one_run(src, depth, batch, steps, args.threads).items():
                    got[side][name].append(value)
        med = {s: {n: statistics.median(v) for n, v in d.items()} for s, d in got.items()}
        rows.append({"depth": depth, "batch": batch, "old": med["old"][MODEL], "new": med["new"][MODEL],
                     "ratio": med["new"][MODEL] / med["old"][MODEL],
                     "reference_ratio": med["new"][REFERENCE] / med["old"][REFERENCE]})
        r = rows[-1]
        print(f"depth {depth:>2} batch {batch:>3}: old {r['old']:6.0f}  new {r['new']:6.0f} samples/s "
              f"= {r['ratio']:.2f}x (reference {r['reference_ratio']:.2f})", flush=True)
    result = {"cpu": cpu_name(), "threads": args.threads, "rounds": args.rounds, "old": str(args.old),
              "rows": rows}
    print(markdown(result))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    if args.md:
        args.md.write_text(markdown(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
