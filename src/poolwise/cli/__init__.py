"""The ``poolwise`` command: one module per command family, shared pieces in ``_common``.

    poolwise reproduce adapool-knn [--preset demo|quick|paper] [--executor local|ray] [--out DIR]
    poolwise reproduce adapool-vision [--preset demo|quick|paper] [--data-dir DIR] [--device cuda]
    poolwise reproduce adapool-rl [--env tag|centroid|boxworld|all] [--preset demo|quick|paper]
    poolwise rl-play CHECKPOINT.safetensors --out episode.gif
    poolwise reproduce pool-me-wisely [--modalities text,vision,timeseries] [--seeds 5]
        [--backbones neutral|objective|all] [--sizes s,m,l] [--max-lengths 16,32,64]
    poolwise compare --list | --task TASK [--backbone NAME] [--poolers ...] | --data FILE.csv [--model DIR]
    poolwise pretrain NAME|all [--seed 0] [--steps N]
    poolwise probe --model minilm --texts FILE --out DIR [--poolers ...] [--probe ...] [--from-db DB --task T]
    poolwise report --db PATH --out DIR
    poolwise verify MODEL_DIR [--texts FILE] [--declared mean] [--json OUT]
    poolwise export MODEL_DIR --onnx OUT.onnx [--pooler NAME|DIR] [--normalize]
    poolwise poolers

Each command module has ``register(commands, experiments)``, which adds its sub-commands (with
``set_defaults(func=...)``) and its ``reproduce`` experiments; a new experiment is a new module.
Bad input ends with a one-line error on stderr and exit code 2, before anything is written.
"""

from __future__ import annotations

import argparse
import os
import sys

from . import export, frozen, knn, probe, report, rl, verify, vision
from ._common import Parser, UsageError

MODULES = (knn, vision, rl, frozen, probe, report, verify, export)


def _poolers(args: argparse.Namespace) -> int:
    from ..pooling import list_poolers, pooler_class

    for name in list_poolers():
        cls = pooler_class(name)
        summary = (cls.__doc__ or "").strip().splitlines()[0] if cls.__doc__ else ""
        print(f"{name:<17} {summary}" if args.describe else name)
    return 0


def build_parser() -> Parser:
    """The whole command line: every command and experiment with a one-line description."""
    ap = Parser(prog="poolwise", description="Pooling of transformer outputs: benchmarks, probes and "
                "reproductions of Pool Me Wisely and AdaPool.")
    commands = ap.add_subparsers(dest="command", required=True, parser_class=Parser, metavar="COMMAND")
    rep = commands.add_parser("reproduce", help="reproduce a paper's experiment (see reproduce --help)",
                              description="Reproduce a paper's experiment at the size of a preset.")
    experiments = rep.add_subparsers(dest="experiment", required=True, parser_class=Parser,
                                     metavar="EXPERIMENT")
    for module in MODULES:
        module.register(commands, experiments)
    pl = commands.add_parser("poolers", help="list the registered poolers",
                             description="List the registered pooler names (aliases resolve too).")
    pl.add_argument("--describe", action="store_true", help="add each pooler's one-line summary")
    pl.set_defaults(func=_poolers)
    # an option of one experiment given to another gets a precise error
    owners: dict[str, list[str]] = {}
    for name, sub in experiments.choices.items():
        for option in sub._option_string_actions:
            owners.setdefault(option, []).append(name)
    shared = {o for o, names in owners.items() if len(names) == len(experiments.choices)}
    ap.owners = {o: names for o, names in owners.items() if o not in shared}
    return ap


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit code (0 ok, 1 a run failed, 2 bad input, 130
    interrupted)."""
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    try:
        args = build_parser().parse_args(argv)
        return args.func(args)
    except UsageError as err:
        print(f"poolwise: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("poolwise: interrupted; finished runs are saved, rerun the same command to resume",
              file=sys.stderr)
        return 130


__all__ = ["UsageError", "build_parser", "main"]
