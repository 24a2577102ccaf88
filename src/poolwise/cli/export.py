"""``poolwise export MODEL --onnx OUT``: a Hugging Face backbone and its pooler as one ONNX graph."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from ._common import UsageError, check_writable_file, first_line

SAMPLE = ["a short text", "a somewhat longer text to pad the other rows of the batch", "x"]
TOLERANCE = 1e-4


def register(commands: Any, experiments: Any) -> None:
    p = commands.add_parser(
        "export", help="export a Hugging Face model + poolwise pooler as one ONNX graph (parity-checked)",
        description="Trace a local Hugging Face model directory and a pooler into one ONNX graph "
        "(input_ids, attention_mask -> embedding; dynamic batch and sequence axes), then run it with "
        "onnxruntime on right- and left-padded batches against PyTorch. Exit 1 when they differ.")
    p.add_argument("model", type=Path, help="a local Hugging Face model directory")
    p.add_argument("--onnx", type=Path, required=True, help="output .onnx file")
    p.add_argument("--pooler", help="a pooler name, or a folder with a saved poolwise pooler "
                   "(default: the pooler saved in MODEL, else mean)")
    p.add_argument("--normalize", action="store_true", help="L2-normalise the embeddings in the graph")
    p.add_argument("--opset", type=int, default=17, help="ONNX opset (default 17)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import torch

    from ..integrations.transformers import PooledEncoder, load_pooler

    check_writable_file(args.onnx, "--onnx")
    try:
        import onnxruntime
    except ImportError:
        raise UsageError("export checks the graph with onnxruntime: pip install 'poolwise[onnx]'") from None
    pooler: Any = None
    if args.pooler and Path(args.pooler).is_dir():
        try:
            pooler = load_pooler(args.pooler)
        except ValueError as err:
            raise UsageError(first_line(err)) from None
    elif args.pooler:
        pooler = args.pooler
    try:
        enc = PooledEncoder.from_pretrained(args.model, pooler)
    except (ValueError, OSError) as err:
        raise UsageError(f"{args.model}: {first_line(err)}") from None
    path = enc.export_onnx(args.onnx, normalize=args.normalize, opset=args.opset)
    session = onnxruntime.InferenceSession(str(path))
    worst = 0.0
    for side in ("right", "left"):
        enc.tokenizer.padding_side = side
        batch = enc.tokenizer(SAMPLE, padding=True, return_tensors="pt")
        got = session.run(None, {"input_ids": batch["input_ids"].numpy(),
                                 "attention_mask": batch["attention_mask"].numpy()})[0]
        with torch.no_grad():
            ref = enc(batch["input_ids"], batch["attention_mask"])
            if enc.head is not None:
                ref = enc.head(ref)
            elif args.normalize:
                ref = torch.nn.functional.normalize(ref, dim=-1)
        worst = max(worst, float((torch.from_numpy(got).float() - ref.float()).abs().max()))
    ok = worst <= TOLERANCE
    verdict = "ok" if ok else "FAIL"
    print(f"{path}: {enc.pooler.name} pooler, onnxruntime {onnxruntime.__version__} vs PyTorch on right- and "
          f"left-padded batches: max difference {worst:.1e} ({verdict}, tolerance {TOLERANCE:.0e})")
    return 0 if ok else 1
