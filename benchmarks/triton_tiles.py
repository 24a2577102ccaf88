"""Triton reduction tiles, side by side: per-step reduction against a 2-D accumulator.

    python benchmarks/triton_tiles.py --json tiles.json

For each shape and dtype, every tile of ``TILES`` with ``acc2d`` off and on: device
microseconds per call (calls replayed from a CUDA graph, so host launch cost is left out) for
the padded mean, the packed mean and the padded max, and the real tokens' bandwidth of the
padded mean against a device-to-device copy. Needs a CUDA device and Triton.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

from segment_reduce import batch, graph_timed

TILES = [(64, 64, 4), (32, 128, 4), (64, 128, 4), (64, 256, 8)]
SHAPES = [(64, 512, 768), (256, 1024, 1024)]
DEV = "cuda"  # a dry run on CPU (interpreted Triton) sets "cpu"


def run(b: int, n: int, d: int, dtype: torch.dtype) -> list[dict]:
    from poolwise.pooling import triton_kernels as tk

    x, mask, packed, cu, lengths = batch(b, n, d, dtype, DEV)
    real_bytes = int(lengths.sum()) * d * x.element_size()
    buf = torch.empty_like(x)
    copy_gbps = 2 * x.numel() * x.element_size() / graph_timed(lambda: buf.copy_(x)) / 1e6
    ref = tk.masked_reduce(x, mask, "mean", tk.LaunchConfig(32, 128, 4, False)).float()
    rows = []
    for bn, bd, w in TILES:
        for acc2d in (False, True):
            cfg = tk.LaunchConfig(bn, bd, w, acc2d)
            err = float((tk.masked_reduce(x, mask, "mean", cfg).float() - ref).abs().max())
            padded = graph_timed(lambda c=cfg: tk.masked_reduce(x, mask, "mean", c))
            top = graph_timed(lambda c=cfg: tk.masked_reduce(x, mask, "max", c))
            rows.append({"shape": [b, n, d], "dtype": str(dtype).replace("torch.", ""), "block_n": bn,
                         "block_d": bd, "num_warps": w, "acc2d": acc2d, "mean_padded_us": padded * 1e3,
                         "mean_packed_us": graph_timed(
                             lambda c=cfg: tk.segment_reduce(packed, cu, "mean", c)) * 1e3,
                         "max_padded_us": top * 1e3, "max_abs_diff": err,
                         "mean_padded_bw_vs_copy": real_bytes / padded / 1e6 / copy_gbps})
            print(rows[-1], file=sys.stderr, flush=True)
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    from poolwise.pooling import triton_kernels as tk

    if not torch.cuda.is_available() or not tk.available():
        print("triton_tiles: needs a CUDA device and Triton; nothing to measure")
        return 0
    report = {"device": torch.cuda.get_device_name(), "torch": torch.__version__, "rows": []}
    for shape in SHAPES:
        for dtype in (torch.float32, torch.bfloat16):
            report["rows"] += run(*shape, dtype)
            if args.json:
                args.json.write_text(json.dumps(report, indent=2))
    print("| shape | dtype | tile | acc2d | mean padded us | mean packed us | max padded us | bw/copy |")
    for r in report["rows"]:
        print(f"| {tuple(r['shape'])} | {r['dtype']} | {r['block_n']}x{r['block_d']}/{r['num_warps']} | "
              f"{r['acc2d']} | {r['mean_padded_us']:.1f} | {r['mean_packed_us']:.1f} | "
              f"{r['max_padded_us']:.1f} | {r['mean_padded_bw_vs_copy']:.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
