"""A busy machine: the same small training job idle and beside one busy-looping process, with
poolwise's thread budget (the default: torch threads sized to the free cores, followed every
epoch) and, for comparison, every core given to torch with the OpenMP runtime's default
(spinning) wait policy or with ``OMP_WAIT_POLICY=PASSIVE``.

Issue 17 section 4: with every core given to torch, a parallel region whose threads share a
core with another process waits at each barrier for the descheduled thread; spinning threads
burn the time slices that thread needs. Each configuration runs the job in a fresh process
(the wait policy is read when the OpenMP runtime starts), in turns, ``--repeats`` times.

    python benchmarks/busy_cpu.py --repeats 1 --json busy.json
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _machine import cpu_name

JOB = ["reproduce", "adapool-knn", "--preset", "demo", "--k", "4", "--poolers", "adapool,mean", "--quiet"]
CORES = str(os.cpu_count() or 1)
#: name -> extra environment of the job's process
POLICIES = {
    "thread budget (default)": {},  # threads = the free cores, checked every epoch
    "all cores, spinning": {"POOLWISE_THREADS": CORES},  # what poolwise did before
    "all cores, passive wait": {"POOLWISE_THREADS": CORES, "OMP_WAIT_POLICY": "PASSIVE"},
}
DEFAULT = "thread budget (default)"


def _poolwise() -> list[str]:
    return [sys.executable, "-c", "from poolwise.cli import main; raise SystemExit(main())"]


def run_job(extra: dict[str, str], busy: bool) -> float:
    """Seconds of one job in a fresh process with ``extra`` in its environment, beside a busy
    loop when ``busy``."""
    skip = {"OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "POOLWISE_THREADS", "OMP_NUM_THREADS"}
    env = {k: v for k, v in os.environ.items() if k not in skip} | {"HF_HUB_OFFLINE": "1"} | extra
    hog = subprocess.Popen([sys.executable, "-c", "while True: pass"]) if busy else None
    try:
        with tempfile.TemporaryDirectory() as out:
            start = time.perf_counter()
            r = subprocess.run([*_poolwise(), *JOB, "--out", out], env=env, capture_output=True, text=True)
            seconds = time.perf_counter() - start
        if r.returncode != 0:
            raise RuntimeError(r.stderr[-2000:])
        return seconds
    finally:
        if hog is not None:
            hog.kill()
            hog.wait()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--json", type=Path)
    ap.add_argument("--md", type=Path, help="also write the table here")
    args = ap.parse_args()
    times: dict[str, list[float]] = {}
    for _ in range(args.repeats):
        for busy in (False, True):
            for name, policy in POLICIES.items():
                key = f"{'busy' if busy else 'idle'}/{name}"
                times.setdefault(key, []).append(run_job(policy, busy))
                print(f"{key}: {times[key][-1]:.1f} s", flush=True)
    best = {k: min(v) for k, v in times.items()}
    lines = [f"{cpu_name()}, {os.cpu_count()} cores; job: poolwise {' '.join(JOB)}; "
             f"best of {args.repeats}", "",
             "| threads | idle (s) | beside a busy process (s) | busy / idle | busy / default idle |",
             "|---|---|---|---|---|"]
    for name in POLICIES:
        idle, busy = best[f"idle/{name}"], best[f"busy/{name}"]
        lines.append(f"| {name} | {idle:.1f} | {busy:.1f} | {busy / idle:.2f} | "
                     f"{busy / best[f'idle/{DEFAULT}']:.2f} |")
    print("\n" + "\n".join(lines))
    if args.md:
        args.md.write_text("\n".join(lines) + "\n")
    if args.json:
        args.json.write_text(json.dumps({"cpu": cpu_name(), "cores": os.cpu_count(), "job": JOB,
                                         "seconds": times, "best": best}, indent=2))


if __name__ == "__main__":
    main()
