"""GPU reductions over real tokens: the Triton kernel against PyTorch's ways, padded and packed.

    python benchmarks/segment_reduce.py --json out.json --md out.md

At (64, 512, 768), lengths U[N/4, N] (about 60% real tokens), float32 and bfloat16, times
with CUDA events (median of rounds, each the mean of many launches) and reports the real
tokens' bytes over the time against a device-to-device copy of the padded batch (read +
write), i.e. the fraction of the bandwidth the device really moves:

* padded mean / sum / max: poolwise's PyTorch path (``POOLWISE_NO_TRITON=1``: counts,
  weights, ``bmm``), the sentence-transformers recipe, and the Triton kernel;
* packed mean / sum / max: poolwise's PyTorch path (segment view + ``embedding_bag``),
  ``torch.segment_reduce``, ``index_add_``, and the Triton kernel;
* the Triton kernel's launch configurations (block sizes, warps) on the padded mean.

Needs a CUDA device and Triton; prints a line and exits 0 without them.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import torch

import poolwise as pw

CONFIGS = [(bn, bd, 4) for bn in (16, 32, 64) for bd in (64, 128, 256)] + [
    (32, 128, 8), (32, 256, 8), (64, 256, 8)]
DEV = "cuda"  # a dry run on CPU (interpreted Triton) sets "cpu"


@contextlib.contextmanager
def no_triton() -> Iterator[None]:
    old = os.environ.get("POOLWISE_NO_TRITON")
    os.environ["POOLWISE_NO_TRITON"] = "1"
    try:
        yield
    finally:
        if old is None:
            del os.environ["POOLWISE_NO_TRITON"]
        else:
            os.environ["POOLWISE_NO_TRITON"] = old


def timed(fn: Callable[[], object], reps: int = 50, rounds: int = 7) -> float:
    """Median over rounds of the mean milliseconds per call, timed with CUDA events."""
    for _ in range(3):
        fn()
    torch.cuda.synchronize()
    out = []
    for _ in range(rounds):
        start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        for _ in range(reps):
            fn()
        stop.record()
        torch.cuda.synchronize()
        out.append(start.elapsed_time(stop) / reps)
    return statistics.median(out)


def graph_timed(fn: Callable[[], object], reps: int = 20) -> float:
    """Device milliseconds per call: ``reps`` calls captured in one CUDA graph, replayed (no
    host launch cost in the figure; only for calls without a host sync)."""
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for _ in range(3):
            fn()
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        for _ in range(reps):
            fn()
    return timed(graph.replay, reps=5) / reps


def host_ms(fn: Callable[[], object], calls: int = 200) -> float:
    """Host milliseconds per call when calls are queued back to back (launch overhead)."""
    fn()
    torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(calls):
        fn()
    host = (time.perf_counter() - start) * 1e3 / calls
    torch.cuda.synchronize()
    return host


def batch(b: int, n: int, d: int, dtype: torch.dtype, device: str) -> tuple[torch.Tensor, ...]:
    """``(x, mask, packed, cu_seqlens, lengths)`` on ``device``: lengths U[N/4, N], seed 0
    (``lengths`` stays on the CPU)."""
    gen = torch.Generator().manual_seed(0)
    lengths = torch.randint(n // 4, n + 1, (b,), generator=gen)
    x = torch.randn(b, n, d, generator=gen).to(device, dtype)
    mask = (torch.arange(n)[None] < lengths[:, None]).to(device)
    cu = torch.cat([torch.zeros(1, dtype=torch.long), lengths.cumsum(0)]).to(device)
    return x, mask, x[mask].contiguous(), cu, lengths


def run(b: int, n: int, d: int, dtype: torch.dtype, sweep: bool) -> dict:
    from poolwise.pooling import triton_kernels as tk

    x, mask, packed, cu, lengths = batch(b, n, d, dtype, DEV)
    row_ids = torch.repeat_interleave(torch.arange(b), lengths).to(DEV)
    lengths_dev = lengths.to(DEV)
    size = x.element_size()
    real_bytes = int(lengths.sum()) * d * size
    buf = torch.empty_like(x)
    copy_ms = timed(lambda: buf.copy_(x))
    copy_gbps = 2 * x.numel() * size / copy_ms / 1e6
    poolers = {m: pw.get_pooler(m) for m in ("mean", "sum", "max")}
    cands: dict[str, Callable[[], object]] = {}
    for m, p in poolers.items():
        cands[f"{m} padded: triton"] = lambda p=p: p(x, mask)
        cands[f"{m} packed: triton"] = lambda p=p: p.packed(packed, cu)
    base: dict[str, Callable[[], object]] = {}
    for m, p in poolers.items():
        base[f"{m} padded: pytorch path"] = lambda p=p: p(x, mask)
        base[f"{m} packed: pytorch path"] = lambda p=p: p.packed(packed, cu)
    keep = mask[..., None].to(dtype)
    base["mean padded: recipe"] = lambda: (x * keep).sum(1) / keep.sum(1).clamp(min=1e-9)
    base["sum padded: recipe"] = lambda: (x * keep).sum(1)
    base["max padded: recipe"] = lambda: x.masked_fill(~mask[..., None], float("-inf")).amax(1)
    for m, how in (("mean", "mean"), ("sum", "sum"), ("max", "max")):
        base[f"{m} packed: torch.segment_reduce"] = (
            lambda how=how: torch.segment_reduce(packed, how, lengths=lengths_dev, axis=0))
    base["sum packed: index_add_"] = lambda: x.new_zeros(b, d).index_add_(0, row_ids, packed)
    base["mean packed: index_add_"] = (
        lambda: x.new_zeros(b, d).index_add_(0, row_ids, packed) / lengths_dev[:, None].clamp_min(1))
    with torch.no_grad():
        ms = {k: timed(f) for k, f in cands.items()}
        with no_triton():
            ms.update({k: timed(f) for k, f in base.items()})
        launch = {  # where the time of a call goes: device (graph replay) and host (queueing)
            "triton kernel, mean padded": lambda: tk.masked_reduce(x, mask, "mean"),
            "triton kernel, mean packed": lambda: tk.segment_reduce(packed, cu, "mean"),
            "mean pooler, padded (triton)": lambda: poolers["mean"](x, mask),
            "copy of the padded batch": lambda: buf.copy_(x),
        }
        split = [{"case": k, "graph_ms": graph_timed(f), "host_ms": host_ms(f)} for k, f in launch.items()]
        with no_triton():
            split.append({"case": "mean pooler, padded (pytorch path)",
                          "graph_ms": graph_timed(lambda: poolers["mean"](x, mask)),
                          "host_ms": host_ms(lambda: poolers["mean"](x, mask))})
        for r in split:
            r["real_GBps_graph"] = real_bytes / r["graph_ms"] / 1e6
        ref = poolers["mean"](x.float(), mask)
        check = float((tk.masked_reduce(x, mask, "mean").float() - ref).abs().max())
        sweep_rows = []
        if sweep:
            for bn, bd, w in CONFIGS:
                cfg = tk.LaunchConfig(bn, bd, w)
                padded_ms = timed(lambda c=cfg: tk.masked_reduce(x, mask, "mean", c), 20, 3)
                packed_ms = timed(lambda c=cfg: tk.segment_reduce(packed, cu, "mean", c), 20, 3)
                sweep_rows.append({"block_n": bn, "block_d": bd, "num_warps": w, "padded_ms": padded_ms,
                                   "packed_ms": packed_ms})
    rows = []
    for name in sorted(ms):
        rows.append({"case": name, "ms": ms[name], "real_GBps": real_bytes / ms[name] / 1e6,
                     "fraction_of_copy_bw": real_bytes / ms[name] / 1e6 / copy_gbps})
    return {"shape": [b, n, d], "dtype": str(dtype).replace("torch.", ""), "copy_ms": copy_ms,
            "copy_GBps": copy_gbps, "real_token_fraction": float(mask.float().mean()),
            "max_abs_err_vs_fp32_mean": check, "rows": rows, "sweep": sweep_rows, "launch": split}


def markdown(report: dict) -> str:
    lines = [f"# Token reductions on {report['device']} (torch {report['torch']}, "
             f"triton {report['triton']})", ""]
    for res in report["runs"]:
        lines += [f"## {tuple(res['shape'])} {res['dtype']}, {res['real_token_fraction']:.0%} real tokens; "
                  f"copy {res['copy_ms'] * 1e3:.1f} us ({res['copy_GBps']:.0f} GB/s read + write)", "",
                  "| case | us | real-token GB/s | / copy bandwidth |", "|---|---|---|---|"]
        for r in res["rows"]:
            lines.append(f"| {r['case']} | {r['ms'] * 1e3:.1f} | {r['real_GBps']:.0f} | "
                         f"{r['fraction_of_copy_bw']:.2f} |")
        if res.get("launch"):
            lines += ["", "Device time (calls replayed from a CUDA graph) and host time per call (queued "
                      "back to back); a call costs the larger of the two:", "",
                      "| case | device us | host us | real-token GB/s on the device |", "|---|---|---|---|"]
            lines += [f"| {r['case']} | {r['graph_ms'] * 1e3:.1f} | {r['host_ms'] * 1e3:.1f} | "
                      f"{r['real_GBps_graph']:.0f} |" for r in res["launch"]]
        if res["sweep"]:
            best = sorted(res["sweep"], key=lambda r: r["padded_ms"] + r["packed_ms"])[:5]
            lines += ["", "Fastest launch configurations (mean, padded + packed):", "",
                      "| block_n | block_d | warps | padded us | packed us |", "|---|---|---|---|---|"]
            lines += [f"| {r['block_n']} | {r['block_d']} | {r['num_warps']} | {r['padded_ms'] * 1e3:.1f} | "
                      f"{r['packed_ms'] * 1e3:.1f} |" for r in best]
        lines.append("")
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shapes", default="64,512,768", help="B,N,D[;B,N,D...] (default: 64,512,768)")
    ap.add_argument("--no-sweep", action="store_true", help="skip the launch-configuration sweep")
    ap.add_argument("--json", type=Path)
    ap.add_argument("--md", type=Path)
    args = ap.parse_args()
    from poolwise.pooling import triton_kernels as tk

    if not torch.cuda.is_available() or not tk.available():
        print("segment_reduce: needs a CUDA device and Triton; nothing to measure")
        return 0
    report = {"device": torch.cuda.get_device_name(), "torch": torch.__version__,
              "triton": tk.triton.__version__, "runs": []}
    for shape in args.shapes.split(";"):
        b, n, d = (int(v) for v in shape.split(","))
        for dtype in (torch.float32, torch.bfloat16):
            report["runs"].append(run(b, n, d, dtype, sweep=not args.no_sweep and dtype == torch.float32))
            print(f"{shape} {dtype} done", file=sys.stderr, flush=True)
            if args.json:
                args.json.write_text(json.dumps(report, indent=2))
    text = markdown(report)
    print(text)
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
    if args.md:
        args.md.write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
