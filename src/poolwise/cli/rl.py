"""``poolwise reproduce adapool-rl`` (PPO with each pooler on MPE Simple Tag, Simple Centroid
and BoxWorld) and ``poolwise rl-play`` (one episode of a trained policy as a GIF/MP4)."""

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
ENV_CHOICES = ("tag", "centroid", "boxworld", "all")


def register(commands: Any, experiments: Any) -> None:
    p = experiments.add_parser(
        "adapool-rl",
        help="PPO with each pooler on MPE Simple Tag / Centroid and BoxWorld (AdaPool paper, RL)",
        description="Train a token-transformer policy with PPO (stable-baselines3) for each pooler and noise "
        "configuration on vectorised environments; return curves with seed bands, final-return table, "
        "relative drop under noise, findings.md, runs.csv and a safetensors checkpoint per run. Resumable: "
        "rerun the same command.",
    )
    p.add_argument("--env", default=None, help="tag, centroid, boxworld or all (default: the preset's)")
    p.add_argument("--preset", default="quick", help="demo, quick or paper (default: quick)")
    p.add_argument(
        "--configs",
        help="comma-separated noise configurations, e.g. 1v3v0,1v3v28 (tag), "
        "1v31v0,1v1v30 (centroid), entities,pixels (boxworld); default: the preset's",
    )
    p.add_argument(
        "--poolers",
        help="comma-separated: adapool, mean, max, cls_token or any registered "
        "pooler (default: the preset's)",
    )
    p.add_argument("--seeds", help="comma-separated seeds (default: the preset's)")
    p.add_argument("--steps", type=int, help="environment steps per run (default: the preset's)")
    add_sweep_options(
        p, workers=CORE_WORKERS, workers_note=": one per core, at most 2", out="results/adapool-rl-PRESET"
    )
    p.set_defaults(func=run)

    play = commands.add_parser(
        "rl-play",
        help="render one episode of a trained RL policy as a GIF or MP4",
        description="Load a checkpoint written by `poolwise reproduce adapool-rl` "
        "(OUT/checkpoints/*.safetensors) "
        "and render one episode: agent, signal and noise entities coloured (MPE), or the room (BoxWorld).",
    )
    play.add_argument("checkpoint", type=Path, help="a .safetensors checkpoint of the RL report")
    play.add_argument("--out", type=Path, required=True, help="output file, .gif (Pillow) or .mp4 (ffmpeg)")
    play.add_argument("--seed", type=int, default=0, help="episode seed (default 0)")
    play.add_argument("--deterministic", action="store_true", help="take the most likely action")
    play.add_argument("--fps", type=int, default=10, help="frames per second (default 10)")
    play.set_defaults(func=run_play)


def _envs(args: argparse.Namespace, preset: Any) -> list[str]:
    if args.env is None:
        return list(preset.configs)
    if args.env not in ENV_CHOICES:
        raise UsageError(f"unknown env {args.env!r}; choose from {', '.join(ENV_CHOICES)}")
    return ["tag", "centroid", "boxworld"] if args.env == "all" else [args.env]


def _configs(args: argparse.Namespace, preset: Any, env: str) -> tuple[str, ...]:
    from ..envs import ENVS

    if args.configs:
        return tuple(c.strip() for c in args.configs.split(",") if c.strip())
    return preset.configs.get(env) or (ENVS[env].configs[0], ENVS[env].configs[-1])


def run(args: argparse.Namespace) -> int:
    from ..experiments.rl_presets import PRESETS
    from ..report.rl import AXES, write_rl_report
    from ..runner import RunSpec, run_sweep
    from ..runner.progress import Progress

    if args.preset not in PRESETS:
        raise UsageError(f"unknown preset {args.preset!r}; choose from {', '.join(PRESETS)}")
    preset = PRESETS[args.preset]
    envs = _envs(args, preset)
    if args.configs and len(envs) > 1:
        raise UsageError("--configs names one environment's configurations: give --env too")
    if args.steps is not None and args.steps < 1:
        raise UsageError(f"--steps must be >= 1; got {args.steps}")
    poolers = preset.poolers
    if args.poolers:
        poolers = tuple(p.strip() for p in args.poolers.split(",") if p.strip())
    specs = []
    try:
        for env in envs:
            base = {**preset.base.get(env, {}), **overrides(args.set)}
            if args.steps:
                base["steps"] = args.steps
            seeds = int_list(args.seeds, "--seeds") if args.seeds else preset.seeds_for(env)
            specs += [
                RunSpec("adapool-rl", {**base, "env": env, "config": config, "pooler": pooler, "seed": seed})
                for config in _configs(args, preset, env)
                for pooler in poolers
                for seed in seeds
            ]
    except (ValueError, TypeError) as err:
        raise UsageError(first_line(err)) from None
    out = check_writable_dir(args.out or Path("results") / f"adapool-rl-{args.preset}")
    db = check_writable_file(args.db or out / "runs.sqlite")
    runner = executor(args)
    with open_store(db, create=True) as store:
        print(
            f"adapool-rl, preset {args.preset!r}: {len(specs)} runs ({', '.join(envs)}; "
            f"{len(poolers)} poolers), "
            f"results in {db}",
            file=sys.stderr,
        )
        note_other_settings(store, specs, AXES)
        summary = run_sweep(specs, store, runner, args.retry_failed, Progress(quiet=args.quiet))
        paths = write_rl_report(store, out) if store.rows("adapool-rl", "done") else {}
    print_summary(summary)
    print_paths(paths, width=11)
    return 1 if summary.failed else 0


def run_play(args: argparse.Namespace) -> int:
    from ..experiments.rl import load_checkpoint, play_episode
    from ..report.rl_render import render_episode

    if not args.checkpoint.is_file():
        raise UsageError(f"no checkpoint at {args.checkpoint}")
    if args.out.suffix not in (".gif", ".mp4"):
        raise UsageError(f"--out must end in .gif or .mp4; got {args.out.name!r}")
    if args.fps < 1:
        raise UsageError(f"--fps must be >= 1; got {args.fps}")
    check_writable_dir(args.out.parent if str(args.out.parent) else Path("."), "--out folder")
    try:
        cfg, weights = load_checkpoint(str(args.checkpoint))
    except (ValueError, TypeError) as err:
        raise UsageError(first_line(err)) from None
    frames, total = play_episode(cfg, weights, seed=args.seed, deterministic=args.deterministic)
    title = f"{cfg.env} {cfg.config}, {cfg.pooler}, seed {cfg.seed}"
    render_episode(frames, cfg.env, args.out, title=title, fps=args.fps)
    print(f"{args.out}: {len(frames)} frames, return {total:.2f}")
    return 0
