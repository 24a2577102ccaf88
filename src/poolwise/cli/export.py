"""``poolwise export MODEL --onnx OUT``: a Hugging Face backbone and its pooler as one ONNX graph."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from ._common import UsageError, check_writable_file, first_line

SAMPLE = ["a short text", "a somewhat longer text to pad the other rows of the batch", "x"]
TOLERANCE = 1e-4
#: opsets the TorchScript-based exporter writes and the graph's operators need (attention: 14)
OPSETS = range(14, 21)


def register(commands: Any, experiments: Any) -> None:
    p = commands.add_parser(
        "export", help="export a Hugging Face model + poolwise pooler as one ONNX graph (parity-checked)",
        description="Trace a local Hugging Face model directory and a pooler into one ONNX graph "
        "(input_ids, attention_mask -> embedding; dynamic batch and sequence axes), then run it with "
        "onnxruntime on right- and left-padded batches against the model's own forward pass on each "
        "text alone pooled by reference code (and sentence-transformers' encode for a "
        "sentence-transformers directory). Exit 1 when they differ.")
    p.add_argument("model", type=Path, help="a local Hugging Face model directory")
    p.add_argument("--onnx", type=Path, required=True, help="output .onnx file")
    p.add_argument("--pooler", help="a pooler name, or a folder with a saved poolwise pooler "
                   "(default: the pooler saved in MODEL, else mean)")
    p.add_argument("--normalize", action="store_true", help="L2-normalise the embeddings in the graph "
                   "(default: as the model declares; a sentence-transformers Normalize module)")
    p.add_argument("--opset", type=int, default=17, help=f"ONNX opset, {OPSETS.start} to {OPSETS.stop - 1} "
                   "(default 17)")
    p.add_argument("--force", action="store_true", help="overwrite --onnx even when it is not an ONNX file")
    p.add_argument("--gguf-file", help="the GGUF file to load in MODEL (default: its only .gguf file)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import torch

    from ..integrations.transformers import PooledEncoder, load_pooler

    check_writable_file(args.onnx, "--onnx")
    if args.opset not in OPSETS:
        raise UsageError(f"--opset must be {OPSETS.start} to {OPSETS.stop - 1}; got {args.opset}")
    if args.onnx.is_file() and args.onnx.stat().st_size and not args.force and not _is_onnx(args.onnx):
        raise UsageError(f"--onnx {args.onnx} exists and is not an ONNX file; pass --force to overwrite it")
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
        enc = PooledEncoder.from_pretrained(args.model, pooler, gguf_file=args.gguf_file)
    except (ValueError, TypeError, OSError) as err:
        raise UsageError(f"{args.model}: {first_line(err)}") from None
    saved = pooler is None and (args.model / "poolwise_pooler.json").is_file()  # MODEL's own pooler
    trained = saved or (pooler is not None and not isinstance(pooler, str))  # or --pooler DIR
    if any(True for _ in enc.pooler.parameters()) and not trained:
        print(f"poolwise: warning: the {enc.pooler.name} pooler is untrained (random weights): the graph is "
              "checked, but its embeddings mean nothing until the pooler is trained (pass --pooler DIR "
              "with a saved pooler)", file=sys.stderr)
    path = enc.export_onnx(args.onnx, normalize=args.normalize or None, opset=args.opset)
    session = onnxruntime.InferenceSession(str(path))
    want, how = _reference(enc, args.model, pooler)
    worst, side_of_worst = 0.0, "right"
    for side in ("right", "left"):
        enc.tokenizer.padding_side = side
        batch = enc.tokenizer(SAMPLE, padding=True, truncation=True, max_length=enc.max_length,
                              return_tensors="np")
        got = session.run(None, {"input_ids": batch["input_ids"].astype("int64"),
                                 "attention_mask": batch["attention_mask"].astype("int64")})[0]
        got = torch.from_numpy(got).double()
        for name, ref in want.items():
            dev = float((got - ref.double()).abs().max())
            if dev >= worst:
                worst, side_of_worst = dev, f"{side} padding vs {name}"
    ok = worst <= TOLERANCE
    verdict = "ok" if ok else "FAIL"
    print(f"{path}: {enc.pooler.name} pooler; onnxruntime {onnxruntime.__version__} on right- and "
          f"left-padded batches vs {' and vs '.join(how)}: max difference {worst:.1e} "
          f"({side_of_worst}; {verdict}, "
          f"tolerance {TOLERANCE:.0e})")
    return 0 if ok else 1


def _is_onnx(path: Path) -> bool:
    try:
        import onnx

        onnx.load(str(path), load_external_data=False)
        return True
    except Exception:  # any parse failure: not an ONNX file
        return False


def _reference(enc: Any, model_dir: Path, pooler: Any) -> tuple[dict[str, Any], list[str]]:
    """What the graph must equal, computed without the exported path: the Hugging Face model's
    own forward on each sample alone pooled by reference code (then the head or normalisation),
    and sentence-transformers' encode when the directory is a sentence-transformers model
    exported with its own pooling."""
    import torch
    import torch.nn.functional as F

    from ..integrations.reference import own_forward_tokens, reference_pool

    tokens = own_forward_tokens(enc.model, enc.tokenizer, SAMPLE, enc.max_length)
    emb, how = reference_pool(enc.pooler, tokens)
    if enc.head is not None:
        with torch.no_grad():
            emb = enc.head(emb.float())
        how += " + the head"
    elif enc.normalize:
        emb, how = F.normalize(emb, dim=-1), how + ", normalised"
    want = {"the model's own forward": emb}
    labels = [f"the model's own forward on each text alone + {how}"]
    if pooler is None and enc.head is None and (model_dir / "modules.json").is_file():
        try:
            from ..integrations.sentence_transformers import load_model

            st = load_model(str(model_dir), device="cpu")
            want["sentence-transformers"] = st.encode(SAMPLE, convert_to_tensor=True).cpu()
            labels.append("sentence-transformers' encode")
        except (ImportError, ValueError):
            pass  # no sentence-transformers here: the model's own forward is the reference
    return want, labels
