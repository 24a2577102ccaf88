"""The ``poolwise`` command.

    poolwise reproduce adapool-knn [--preset demo|quick|paper] [--executor local|ray] [--out DIR]
    poolwise report --db PATH --out DIR
    poolwise probe --model minilm --texts FILE --out DIR [--poolers ...] [--probe ...]
    poolwise poolers
    poolwise compare --list | --task TASK [--poolers ...] [--seeds 5] [--executor local|ray]
    poolwise compare --data FILE.csv [--model DIR] [--text-column text] [--label-column label]
    poolwise pretrain NAME|all [--seed 0] [--steps N]
    poolwise reproduce pool-me-wisely [--modalities text,vision,timeseries] [--seeds 5]

Bad input ends with a one-line error on stderr and exit code 2, before anything is written.
"""

from __future__ import annotations

import argparse
import ast
import os
import sys
from pathlib import Path
from typing import Any, NoReturn


class UsageError(Exception):
    """A user mistake: reported in one line, exit code 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message} (see {self.prog} --help)")


def _parse_value(text: str) -> Any:
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def _overrides(items: list[str]) -> dict[str, Any]:
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UsageError(f"--set expects KEY=VALUE; got {item!r}")
        out[key.strip()] = _parse_value(value.strip())
    return out


def _int_list(text: str, what: str) -> tuple[int, ...]:
    try:
        values = tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise UsageError(f"{what} must be a comma-separated list of integers; got {text!r}") from None
    if not values:
        raise UsageError(f"{what} is empty")
    return values


def build_parser() -> argparse.ArgumentParser:
    ap = _Parser(prog="poolwise", description="Pooling of transformer outputs: benchmarks and reproductions.")
    sub = ap.add_subparsers(dest="command", required=True, parser_class=_Parser)

    rep = sub.add_parser("reproduce", help="reproduce a paper's experiment")
    rep.add_argument("experiment", choices=["adapool-knn", "pool-me-wisely"], help="which experiment")
    rep.add_argument("--preset", default="quick", help="adapool-knn: demo, quick or paper (default: quick)")
    rep.add_argument("--modalities",
                     help="pool-me-wisely: comma list of text, vision, timeseries (default all)")
    rep.add_argument("--executor", default="local", choices=["local", "ray"])
    rep.add_argument("--address", help="Ray cluster to join (HOST:PORT, ray://..., auto)")
    rep.add_argument("--workers", type=int,
                     help="local process pool size (default 1; pool-me-wisely: one per core, at most 2)")
    rep.add_argument("--out", type=Path, help="output directory (default results/adapool-knn-PRESET)")
    rep.add_argument("--db", type=Path, help="results database (default OUT/runs.sqlite)")
    rep.add_argument("--poolers", help="comma-separated poolers (registered names or 'cls')")
    rep.add_argument("--k", help="comma-separated k values (SNR = k/128)")
    rep.add_argument("--seeds",
                     help="adapool-knn: comma-separated seeds; pool-me-wisely: how many (default 5)")
    rep.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                     help="override a run setting, e.g. --set epochs=3 --set depth=4")
    rep.add_argument("--retry-failed", action="store_true", help="rerun runs recorded as failed")
    rep.add_argument("--quiet", action="store_true", help="no progress display")

    rp = sub.add_parser("report", help="rebuild plot, table and CSV from a results database")
    rp.add_argument("--db", type=Path, required=True)
    rp.add_argument("--out", type=Path, required=True)

    pr = sub.add_parser("probe", help="measure poolings on a text encoder (plots, tables, JSON)")
    pr.add_argument("--model", default="minilm",
                    help="'minilm' (shipped, offline) or a local HF model directory")
    pr.add_argument("--texts", type=Path, required=True, help="text file, one input per line")
    pr.add_argument("--out", type=Path, required=True)
    pr.add_argument("--poolers", default="mean,sum,max,first,last", help="comma-separated pooler names")
    pr.add_argument("--probe", default="all",
                    help="expressivity, similarity, agreement, snr or all (comma list)")
    pr.add_argument("--max-length", type=int, default=128)
    pr.add_argument("--samples", type=int, default=3, help="noise draws per epsilon (expressivity)")
    pr.add_argument("--trained", type=Path, action="append", default=[], metavar="DIR",
                    help="directory with a trained poolwise_pooler.json (+ .safetensors), e.g. from "
                         "PooledEncoder.save_pretrained; for the weights probe")

    sub.add_parser("poolers", help="list the registered poolers")
    from .cli_frozen import add_commands

    add_commands(sub)
    return ap


PROBES = ("expressivity", "similarity", "agreement", "snr", "weights")
LEARNED_WITH_WEIGHTS = ("wavg", "adapool", "attention", "map", "pma", "gated")


def _probe(args: argparse.Namespace) -> int:
    probes = PROBES if args.probe == "all" else tuple(p.strip() for p in args.probe.split(",") if p.strip())
    learned = [p for p in args.poolers.split(",") if p.strip() in LEARNED_WITH_WEIGHTS]
    if args.probe == "all" and not (learned or args.trained):
        probes = PROBES[:-1]  # nothing to profile
    unknown = [p for p in probes if p not in PROBES]
    if unknown or not probes:
        raise UsageError(f"unknown probe {', '.join(unknown) or '(none)'}; "
                         f"choose from {', '.join(PROBES)} or all")
    poolers = _pooler_names(args.poolers)
    if args.max_length < 2 or args.samples < 1:
        raise UsageError("--max-length must be >= 2 and --samples >= 1")
    if not args.texts.is_file():
        raise UsageError(f"no texts file at {args.texts}")
    texts = [line.strip() for line in args.texts.read_text(errors="replace").splitlines() if line.strip()]
    if not texts:
        raise UsageError(f"{args.texts} holds no text (one input per line expected)")
    from .probes import HFTextEncoder, measures

    try:
        encoder = (HFTextEncoder.minilm(args.max_length) if args.model == "minilm"
                   else HFTextEncoder(Path(args.model), args.max_length))
    except ValueError as err:
        raise UsageError(str(err)) from None
    weighted = _weighted_poolers(poolers, args.trained, encoder.dim) if "weights" in probes else {}
    if "weights" in probes and not weighted:
        raise UsageError("the weights probe needs a learned pooler with position weights "
                         f"({', '.join(LEARNED_WITH_WEIGHTS)}) in --poolers, or --trained DIR")
    return _run_probes(encoder, texts, poolers, probes, args, measures, weighted)


def _pooler_names(text: str) -> list[str]:
    """Comma-separated registered pooler names; a one-line error names the unknown ones."""
    from . import list_poolers

    names = [p.strip() for p in text.split(",") if p.strip()]
    known = set(list_poolers(aliases=True))
    bad = [p for p in names if p not in known]
    if bad or not names:
        raise UsageError(f"unknown pooler {', '.join(bad) or '(none)'}; known: {', '.join(list_poolers())}")
    return names


def _weighted_poolers(names: list[str], trained: list[Path], dim: int) -> dict:
    import json

    from .pooling import get_pooler, resolve_pooler

    out = {f"{name} (untrained)": resolve_pooler(name, dim, max_len=4096).eval()
           for name in names if name in LEARNED_WITH_WEIGHTS}
    for folder in trained:
        cfg_path = folder / "poolwise_pooler.json"
        if not cfg_path.is_file():
            raise UsageError(f"no poolwise_pooler.json in {folder}")
        try:
            pooler = get_pooler(json.loads(cfg_path.read_text()))
        except (ValueError, TypeError) as err:
            raise UsageError(f"{cfg_path}: {str(err).splitlines()[0]}") from None
        weights = folder / "poolwise_pooler.safetensors"
        if weights.is_file():
            from safetensors.torch import load_file

            pooler.load_state_dict(load_file(str(weights)))
        if not hasattr(pooler, "attention_weights"):
            raise UsageError(f"the pooler in {folder} ({pooler.name}) has no position weights")
        out[f"{pooler.name} ({folder.name})"] = pooler.eval()
    return out


def _run_probes(encoder, texts, poolers, probes, args, measures, weighted) -> int:
    from rich.progress import Progress

    from .report import write_probe_report

    calls = {
        "expressivity": lambda: measures.expressivity_curve(encoder, texts, poolers, samples=args.samples),
        "similarity": lambda: measures.similarity_gap(encoder, poolers=poolers),
        "agreement": lambda: measures.agreement_matrix(encoder, texts, poolers),
        "snr": lambda: measures.distractor_robustness(encoder, texts, poolers),
        "weights": lambda: measures.weight_profile(encoder, texts, weighted),
    }
    results = {}
    with Progress(transient=True, disable=not sys.stderr.isatty()) as bar:
        task = bar.add_task("probes", total=len(probes))
        for name in probes:
            bar.update(task, description=f"probe: {name} ({len(texts)} texts, {encoder.name})")
            try:
                results[name] = calls[name]()
            except (ValueError, TypeError) as err:
                raise UsageError(f"probe {name}: {str(err).splitlines()[0]}") from None
            bar.advance(task)
    paths = write_probe_report(results, args.out, encoder.name)
    for what, path in paths.items():
        if what.endswith((".png", ".md")):
            print(f"{what:>17}: {path}")
    return 0


def _reproduce(args: argparse.Namespace) -> int:
    if args.experiment == "pool-me-wisely":
        from .cli_frozen import reproduce_pool_me_wisely

        if args.k or args.preset != "quick":
            raise UsageError("--k and --preset apply to adapool-knn only")
        if args.seeds is not None:
            if "," in args.seeds:
                raise UsageError("pool-me-wisely --seeds is a count, e.g. --seeds 3")
            args.seeds = _int_list(args.seeds, "--seeds")[0]
        return reproduce_pool_me_wisely(args)
    if args.modalities:
        raise UsageError("--modalities applies to pool-me-wisely only")
    args.workers = 1 if args.workers is None else args.workers
    from .experiments.knn_presets import PRESETS
    from .report import write_knn_report
    from .runner import grid, run_sweep
    from .runner.progress import Progress

    if args.preset not in PRESETS:
        raise UsageError(f"unknown preset {args.preset!r}; choose from {', '.join(PRESETS)}")
    preset = PRESETS[args.preset]
    base = {**preset.base, **_overrides(args.set)}
    poolers = preset.poolers
    if args.poolers:
        poolers = tuple(p.strip() for p in args.poolers.split(",") if p.strip())
    ks = _int_list(args.k, "--k") if args.k else preset.ks
    seeds = _int_list(args.seeds, "--seeds") if args.seeds else preset.seeds
    try:  # validate every run before touching any file
        specs = grid("adapool-knn", base, k=ks, pooler=poolers, seed=seeds)
    except (ValueError, TypeError) as err:
        raise UsageError(str(err).splitlines()[0]) from None

    out = args.out or Path("results") / f"adapool-knn-{args.preset}"
    db = args.db or out / "runs.sqlite"
    executor = _executor(args)
    store = _open_store(db, create=True)
    with store:
        print(f"adapool-knn, preset {args.preset!r}: {len(specs)} runs ({len(poolers)} poolers x "
              f"{len(ks)} k x {len(seeds)} seeds), results in {db}", file=sys.stderr)
        summary = run_sweep(specs, store, executor, args.retry_failed, Progress(quiet=args.quiet))
        paths = write_knn_report(store, out) if store.rows("adapool-knn", "done") else {}
    print(f"{summary.done} runs done, {summary.skipped} already there, {summary.failed} failed "
          f"in {summary.wall_s / 60:.1f} min")
    for key, line in summary.errors.items():
        print(f"  failed {key}: {line}")
    for what, path in paths.items():
        print(f"{what:>5}: {path}")
    return 1 if summary.failed else 0


def _executor(args: argparse.Namespace):
    """The executor ``--executor``/``--address``/``--workers`` ask for; one-line errors."""
    from .runner.executors import LocalExecutor, RayExecutor

    if args.workers < 1:
        raise UsageError(f"--workers must be >= 1; got {args.workers}")
    if args.address and args.executor != "ray":
        raise UsageError("--address needs --executor ray")
    try:
        if args.executor == "ray":
            return RayExecutor(args.address, cpus_per_run=1)
        return LocalExecutor(args.workers)
    except (ConnectionError, ValueError) as err:
        raise UsageError(str(err)) from None


def _open_store(db: Path, create: bool):
    from .runner import ResultsStore, StoreError

    try:
        return ResultsStore(db, create=create)
    except StoreError as err:
        raise UsageError(str(err)) from None


def _report(args: argparse.Namespace) -> int:
    from .report import compare_frame, write_compare_files, write_knn_report

    if not args.db.exists():
        raise UsageError(f"no results database at {args.db}")
    with _open_store(args.db, create=False) as store:
        try:  # a kNN sweep or a frozen-backbone comparison, whichever the database holds
            frame = compare_frame(store)
            if store.rows("adapool-knn", "done") or frame.empty:
                paths = write_knn_report(store, args.out)
            else:
                from .report.pool_me_wisely import write_findings

                paths = write_compare_files(frame, args.out)
                if frame["modality"].nunique() > 1:  # a pool-me-wisely study
                    paths["findings"] = write_findings(frame, args.out)
        except ValueError as err:
            raise UsageError(str(err)) from None
    for what, path in paths.items():
        print(f"{what:>5}: {path}")
    return 0


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    try:
        args = build_parser().parse_args(argv)
        if args.command == "reproduce":
            return _reproduce(args)
        if args.command == "report":
            return _report(args)
        if args.command == "probe":
            return _probe(args)
        if args.command in ("compare", "pretrain"):
            from . import cli_frozen

            return getattr(cli_frozen, args.command)(args)
        from . import list_poolers

        print("\n".join(list_poolers()))
        return 0
    except UsageError as err:
        print(f"poolwise: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("poolwise: interrupted; finished runs are saved, rerun the same command to resume",
              file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
