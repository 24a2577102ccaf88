"""``poolwise probe``: measure poolings on a text encoder (plots, tables, JSON)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from ._common import UsageError, check_writable_dir, first_line, pooler_names

PROBES = ("expressivity", "similarity", "agreement", "snr", "weights")
#: the study's own pooling-neutral word encoders (three sizes), probed as the study ran them
WORD_ENCODERS = ("mlm", "mlm-s", "mlm-l")


def register(commands: Any, experiments: Any) -> None:
    pr = commands.add_parser(
        "probe", help="measure poolings on a text encoder (plots, tables, JSON)",
        description="Expressivity curves, cross-pooler similarity and agreement, distractor (SNR) "
        "robustness and learned weight profiles, measured on any local text encoder.")
    pr.add_argument("--model", default="minilm",
                    help="'minilm' (shipped, offline), one of the study's masked-word encoders (mlm, mlm-s, "
                    "mlm-l; shipped or pretrained on first use) or a local HF model directory")
    pr.add_argument("--texts", type=Path, required=True, help="text file, one input per line")
    pr.add_argument("--out", type=Path, required=True, help="output directory")
    pr.add_argument("--poolers", default="mean,sum,max,first,last", help="comma-separated pooler names")
    pr.add_argument("--probe", default="all", help="expressivity, similarity, agreement, snr, weights or "
                    "all (comma list)")
    pr.add_argument("--max-length", type=int, default=128, help="tokens per input (default 128)")
    pr.add_argument("--samples", type=int, default=3, help="noise draws per epsilon (expressivity)")
    pr.add_argument("--norm", choices=("frobenius", "spectral"), default="frobenius",
                    help="size of the expressivity perturbations: Frobenius (default) or spectral, the "
                         "operator norm of Theorem 4.2 (max pooling's constant: sqrt(min(n, d)))")
    pr.add_argument("--trained", type=Path, action="append", default=[], metavar="DIR",
                    help="directory with a trained poolwise_pooler.json (+ .safetensors), e.g. from "
                         "PooledEncoder.save_pretrained; for the weights probe")
    pr.add_argument("--from-db", type=Path, metavar="DB",
                    help="a compare / pool-me-wisely results store: the poolers trained there (seed 0) "
                         "join the agreement and weights probes; give --task, and --model the same "
                         "encoder those runs used")
    pr.add_argument("--task", help="with --from-db: the task label whose trained poolers to load "
                    "(e.g. text-bbc@minilm)")
    pr.set_defaults(func=run)


def read_texts(path: Path) -> list[str]:
    """Non-empty lines of a UTF-8 text file; a binary or non-UTF-8 file is refused with the
    number of bytes that do not decode."""
    if not path.is_file():
        raise UsageError(f"no texts file at {path}")
    data = path.read_bytes()
    if b"\0" in data:
        raise UsageError(f"{path} is a binary file (it holds NUL bytes); expected text, one input per line")
    text = data.decode("utf-8", errors="replace")
    bad = text.count("\ufffd") - data.decode("utf-8", errors="ignore").count("\ufffd")
    if bad:
        raise UsageError(f"{path} is not valid UTF-8 ({bad} undecodable byte sequence(s)); "
                         "convert it, e.g. iconv -f latin1 -t utf-8")
    texts = [line.strip() for line in text.splitlines() if line.strip()]
    if not texts:
        raise UsageError(f"{path} holds no text (one input per line expected)")
    return texts


def _has_weights(name: str) -> bool:
    from ..pooling import pooler_class

    return pooler_class(name).has_weights


def run(args: argparse.Namespace) -> int:
    poolers = pooler_names(args.poolers)
    probes = PROBES if args.probe == "all" else tuple(p.strip() for p in args.probe.split(",") if p.strip())
    if args.probe == "all" and not (any(map(_has_weights, poolers)) or args.trained or args.from_db):
        probes = PROBES[:-1]  # nothing to profile
    unknown = [p for p in probes if p not in PROBES]
    if unknown or not probes:
        raise UsageError(f"unknown probe {', '.join(unknown) or '(none)'}; "
                         f"choose from {', '.join(PROBES)} or all")
    if args.max_length < 2 or args.samples < 1:
        raise UsageError("--max-length must be >= 2 and --samples >= 1")
    check_writable_dir(args.out)
    texts = read_texts(args.texts)
    from ..probes import HFTextEncoder

    try:
        if args.model in WORD_ENCODERS:
            encoder = _word_encoder(args.model, args.max_length, "snr" in probes)
        else:
            encoder = (HFTextEncoder.minilm(args.max_length) if args.model == "minilm"
                       else HFTextEncoder(Path(args.model), args.max_length))
    except ValueError as err:
        raise UsageError(str(err)) from None
    from_db = _trained_from_store(args.from_db, args.task, encoder.dim) if args.from_db else {}
    weighted = _weighted_poolers(poolers, args.trained, encoder.dim) if "weights" in probes else {}
    weighted.update({k: p for k, p in from_db.items() if p.has_weights})
    if "weights" in probes and not weighted:
        raise UsageError("the weights probe needs a learned pooler with token weights (wavg, adapool, "
                         "attention, gated) in --poolers, or --trained DIR")
    return _run_probes(encoder, texts, poolers, probes, args, weighted, from_db)


def _word_encoder(name: str, max_length: int, snr: bool) -> object:
    """The study's masked-word encoder ``name`` (seed 0) wrapped for the probes; checked
    before any work that the longest input (with the snr probe's distractors) fits it."""
    from ..experiments import pretrain as pt
    from ..probes import WordEncoder
    from ..probes.measures import DISTRACTOR_COUNTS

    longest = max_length + (max(DISTRACTOR_COUNTS) if snr else 0)
    if longest > pt.MLM_CONTEXT:
        extra = f" plus the snr probe's {max(DISTRACTOR_COUNTS)} distractor words" if snr else ""
        raise UsageError(f"--max-length {max_length}{extra} exceeds the {name} encoder's {pt.MLM_CONTEXT} "
                         f"words; use --max-length {pt.MLM_CONTEXT - (longest - max_length)} or less")
    model, _ = pt.load_backbone(name, 0)
    return WordEncoder(model, pt.mlm_vocab(0), max_length, name)


def _weighted_poolers(names: list[str], trained: list[Path], dim: int) -> dict:
    """Untrained instances of the named poolers that have token weights, and the trained
    poolers saved in ``trained`` (labelled by folder)."""
    from ..integrations.transformers import load_pooler
    from ..pooling import get_pooler

    out = {f"{name} (untrained)": get_pooler(name, defaults={"dim": dim, "max_len": 4096}).eval()
           for name in names if _has_weights(name)}
    for folder in trained:
        try:
            pooler = load_pooler(folder)
        except ValueError as err:
            raise UsageError(first_line(err)) from None
        if not pooler.has_weights:
            raise UsageError(f"the pooler in {folder} ({pooler.name}) has no token weights")
        out[f"{pooler.name} ({folder.name})"] = pooler.eval()
    return out


def _trained_from_store(db: Path, task: str | None, dim: int) -> dict:
    """The seed-0 poolers trained by the runs of task label ``task`` in store ``db``
    (labelled ``name (trained on task)``)."""
    from ..experiments.frozen import pooler_from_state
    from ..report import compare_frame
    from ._common import open_store

    if not task:
        raise UsageError("--from-db needs --task (a task label of that store, e.g. text-bbc@minilm)")
    with open_store(db, create=False) as store:
        frame = compare_frame(store)
        if frame.empty or task not in set(frame["task"]):
            known = ", ".join(sorted(set(frame["task"]))) if not frame.empty else "none"
            raise UsageError(f"{db} holds no finished runs of {task}; its tasks: {known}")
        keys = set(frame[(frame["task"] == task) & (frame["seed"] == 0)]["key"])
        states = {r["config"]["pooler"]: r["metrics"].get("trained_pooler") for r in store.rows(status="done")
                  if r["key"] in keys}
    out = {}
    for name, state in sorted(states.items()):
        if not state:
            continue
        pooler = pooler_from_state(state)
        width = pooler.config().get("dim")
        if width not in (None, dim):
            raise UsageError(f"the {name} pooler trained on {task} reads {width}-d tokens; the probe's "
                             f"encoder gives {dim}-d ones: give --model the backbone those runs used")
        out[f"{name} (trained on {task})"] = pooler
    if not out:
        raise UsageError(f"no trained pooler of {task} in {db} (seed 0 of a learned pooler is kept)")
    return out


def _run_probes(encoder: Any, texts: list[str], poolers: list[str], probes: tuple[str, ...],
                args: argparse.Namespace, weighted: dict, trained: dict | None = None) -> int:
    from rich.progress import Progress

    from ..probes import measures
    from ..report import write_probe_report

    calls = {
        "expressivity": lambda: measures.expressivity_curve(encoder, texts, poolers, samples=args.samples,
                                                            norm=args.norm),
        "similarity": lambda: measures.similarity_gap(encoder, poolers=poolers),
        "agreement": lambda: measures.agreement_matrix(encoder, texts, {**{p: p for p in poolers},
                                                                         **(trained or {})}),
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
                raise UsageError(f"probe {name}: {first_line(err)}") from None
            bar.advance(task)
    paths = write_probe_report(results, args.out, encoder.name)
    for what, path in paths.items():
        if what.endswith((".png", ".md")):
            print(f"{what:>17}: {path}")
    return 0
