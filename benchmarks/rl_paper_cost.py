"""What the ``paper`` preset of ``poolwise reproduce adapool-rl`` costs, from measured time.

    python benchmarks/rl_paper_cost.py [--threads 1] [--envs tag,centroid,boxworld]
                                       [--json out.json] [--md out.md]

For each environment at its noisiest configuration, with the paper's model and PPO settings,
times the rollout and the PPO update of one iteration with 2 epochs (after an untimed warm-up
iteration; SB3 on our vectorised environment) and scales the update to the paper's epochs.
Multiplied out by the paper's iterations, configurations, poolers
(4) and seeds, it gives CPU-hours on this machine at ``--threads`` per run.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

import torch

from _machine import cpu_name  # benchmarks/ is on sys.path when run as a script
from poolwise.envs import ENVS
from poolwise.experiments.rl import RLConfig, build_ppo
from poolwise.experiments.rl_presets import PRESETS


def iteration_seconds(cfg: RLConfig, epochs: int = 2) -> tuple[float, float]:
    """(seconds per paper iteration, seconds of it in the rollout): one iteration with
    ``epochs`` epochs after an untimed warm-up, its PPO update timed apart, the update scaled
    to the paper's epochs."""
    model, _ = build_ppo(dataclasses.replace(cfg, epochs=epochs))
    batch = cfg.num_envs * cfg.n_steps
    model.learn(batch)  # warm-up iteration (kernel build, allocator), not timed
    update = [0.0]
    train = model.train

    def timed_train() -> None:
        t = time.perf_counter()
        train()
        update[0] += time.perf_counter() - t

    model.train = timed_train
    t = time.perf_counter()
    model.learn(batch, reset_num_timesteps=False)
    wall = time.perf_counter() - t
    rollout = wall - update[0]
    return rollout + update[0] / epochs * cfg.epochs, rollout


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--envs", default="tag,centroid,boxworld")
    ap.add_argument("--json", type=Path)
    ap.add_argument("--md", type=Path)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    paper = PRESETS["paper"]
    rows = []
    for env in args.envs.split(","):
        cfg = RLConfig(env=env, config=ENVS[env].configs[-1], pooler="adapool")
        it, rollout = iteration_seconds(cfg)
        runs = len(ENVS[env].configs) * len(paper.poolers) * len(paper.seeds_for(env))
        hours = it * cfg.iterations * runs / 3600
        rows.append(
            {
                "env": env,
                "config": cfg.config,
                "iteration_s": it,
                "rollout_s": rollout,
                "iterations": cfg.iterations,
                "steps_per_run": cfg.iterations * cfg.num_envs * cfg.n_steps,
                "run_hours": it * cfg.iterations / 3600,
                "runs": runs,
                "cpu_hours": hours * args.threads,
            }
        )
        print(
            f"{env} {cfg.config}: {it:.1f} s per iteration ({rollout:.1f} s rollout), "
            f"{it * cfg.iterations / 3600:.1f} h per run, {runs} runs: {hours:.0f} h on "
            f"{args.threads} thread(s)",
            flush=True,
        )
    cpu = cpu_name()
    if args.json:
        args.json.write_text(json.dumps({"cpu": cpu, "threads": args.threads, "rows": rows}, indent=2) + "\n")
    if args.md:
        md = [
            f"Paper preset cost, {cpu}, {args.threads} torch thread(s) per run (measured: the rollout and "
            "the 2-epoch update of one iteration, the update scaled to the paper's epochs).",
            "",
            "| env (noisiest config) | s per iteration (rollout) | iterations | env steps per run "
            "| hours per run "
            "| runs (configs x 4 poolers x seeds) | CPU-hours |",
            "|---|---|---|---|---|---|---|",
        ]
        md += [
            f"| {r['env']} ({r['config']}) | {r['iteration_s']:.1f} ({r['rollout_s']:.1f}) | "
            f"{r['iterations']} | "
            f"{r['steps_per_run']:,} | {r['run_hours']:.1f} | {r['runs']} | {r['cpu_hours']:,.0f} |"
            for r in rows
        ]
        args.md.write_text("\n".join(md) + "\n")


if __name__ == "__main__":
    main()
