"""``poolwise verify MODEL``: a report card for an embedding pipeline's pooling."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from ._common import UsageError, check_writable_file, first_line


def register(commands: Any, experiments: Any) -> None:
    p = commands.add_parser(
        "verify", help="check an embedding pipeline against the model's own forward (padding, batch, "
        "fp16, declared pooling, normalisation)",
        description="Compare a sentence-transformers or Hugging Face model directory's embeddings with "
        "the model's own forward pass on each text alone pooled by reference code (and, for a "
        "sentence-transformers directory, poolwise's PooledEncoder with sentence-transformers' encode); "
        "run its pooling in ways that must agree (padding side, batch neighbours, fp16, empty and "
        "over-long input); find which pooling it really applies and whether it normalises, against "
        "what it declares. Exit 0 all pass, 1 a check fails, 2 bad input.")
    p.add_argument("model", type=Path, help="a local sentence-transformers model directory, or a Hugging "
                   "Face model directory (pooled with --declared, its saved poolwise pooler, or mean)")
    p.add_argument("--texts", type=Path, help="texts to check with, one per line (default: built-in)")
    p.add_argument("--declared", help="the pooling the model should apply (poolwise name; default: "
                   "what its pooling config says)")
    p.add_argument("--json", type=Path, help="also write the report as JSON")
    p.add_argument("--gguf-file", help="the GGUF file to load in MODEL (default: its only .gguf file)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..pooling import pooler_class

    st_dir = (args.model / "modules.json").is_file()
    if not st_dir and not (args.model / "config.json").is_file() and not any(args.model.glob("*.gguf")):
        raise UsageError(f"{args.model} is neither a sentence-transformers model directory (no modules.json) "
                         "nor a Hugging Face one (no config.json, no .gguf file)")
    texts = None
    if args.texts is not None:
        try:
            texts = [line for line in args.texts.read_text(encoding="utf-8").splitlines() if line.strip()]
        except (OSError, UnicodeDecodeError) as err:
            raise UsageError(f"--texts {args.texts}: {first_line(err)}") from None
        if len(texts) < 2:
            raise UsageError(f"--texts {args.texts} needs at least 2 non-empty lines")
    declared = None
    if args.declared:
        try:
            declared = pooler_class(args.declared).name  # a name: nothing is built here
        except ValueError as err:
            raise UsageError(first_line(err)) from None
    if args.json is not None:
        check_writable_file(args.json, "--json")
    from ..integrations.sentence_transformers import load_model
    from ..integrations.transformers import PooledEncoder
    from ..integrations.verify import TEXTS, Check, agreement, verify

    ours = None
    try:
        if st_dir:
            model = load_model(str(args.model), device="cpu")
            try:  # poolwise's own path on the same directory, checked against sentence-transformers
                ours = PooledEncoder.from_pretrained(args.model)
            except ValueError as err:
                skipped = first_line(err)
        else:
            model = PooledEncoder.from_pretrained(args.model, declared, gguf_file=args.gguf_file)
    except (ValueError, TypeError, OSError) as err:
        raise UsageError(f"{args.model}: {first_line(err)}") from None
    report = verify(model, texts, declared, name=str(args.model))
    if st_dir:
        label = "PooledEncoder equals sentence-transformers' encode"
        if ours is not None:
            report.checks.append(agreement(ours, model, texts or list(TEXTS), label,
                                           "poolwise's PooledEncoder of this directory vs its encode"))
        else:
            report.checks.append(Check(label, True, None, None, f"not run: {skipped[:80]}"))
    print(report.table())
    if args.json is not None:
        args.json.write_text(report.to_json() + "\n")
        print(f"json: {args.json}", file=sys.stderr)
    return 0 if report.passed else 1
