"""What limits the reducing poolers on this CPU: memory bandwidth for mean/sum, FLOPs for gated.

    python benchmarks/roofline.py --json docs/results/roofline.json --md docs/results/roofline.md \\
        --png docs/results/roofline.png

At (B=64, N=512, D=768) fp32 with lengths U[128, 512] (the operator benchmark's batch), in one
run of interleaved rounds, with every thread and with one:

* the machine's read bandwidth: ``sum()`` of a contiguous buffer the size of the real tokens
  (the best a reduction can do), and a copy of the padded batch counted as read + write, the
  reference ``benchmarks/ops.py`` divides by;
* masked mean through poolwise (the compiled masked sum; and that kernel alone, without the
  pooler's per-call work), through ``embedding_bag`` on the
  real tokens (poolwise's previous path, still its path for half precision) and through the
  sentence-transformers recipe, as GB/s of real tokens read;
* gated attention pooling beside the GEMM it cannot avoid (every real token times the
  ``(D, 2 * hidden)`` gate matrix), as GFLOP/s.

The PNG puts each reduction's bandwidth beside the two references.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).parent))
import poolwise as pw
from _machine import cpu_name
from ops import lengths_between, measure, padded_batch, report_main, st_recipes
from poolwise._ext import extension_error
from poolwise.pooling.dispatch import token_kernels
from poolwise.pooling.functional import Segments


def run(rounds: int) -> dict:
    b, n, d = 64, 512, 768
    lens = lengths_between(b, n // 4, n, seed=1)
    x, mask = padded_batch(b, n, d, lens, seed=2)
    real = int(mask.sum())
    real_bytes = real * d * 4
    flat = torch.randn(real * d)
    buf = torch.empty_like(x)
    mean = pw.get_pooler("mean")
    kernel = token_kernels()
    if kernel is None:
        raise SystemExit(f"the compiled kernels are unavailable: {extension_error('poolwise_token_kernels')}")
    seg = Segments.from_mask(x, mask)
    w = torch.ones(seg.index.numel())
    gated = pw.get_pooler("gated", dim=d).eval()
    tokens = x[mask]
    gate = torch.randn(d, gated.gate.out_features)  # V and U stacked: (D, 2 * hidden)
    recipe = st_recipes(x, mask)["mean"]
    cands = {
        "read: sum of a contiguous buffer": lambda: flat.sum(),
        "copy of the padded batch": lambda: buf.copy_(x),
        "mean (poolwise, compiled masked sum)": lambda: mean(x, mask),
        "the masked-sum kernel alone": lambda: kernel.masked_sum(x, mask, 1),
        "mean (embedding_bag on the real tokens)": lambda: F.embedding_bag(
            seg.index, seg.table, seg.offsets, mode="sum", per_sample_weights=w),
        "mean (sentence-transformers recipe)": recipe,
        "gated (poolwise)": lambda: gated(x, mask),
        "gated's gate GEMM alone": lambda: tokens @ gate,
    }
    out: dict = {"cpu": cpu_name(), "cores": os.cpu_count(), "torch": torch.__version__,
                 "shape": [b, n, d], "real_tokens": real, "by_threads": {}}
    gemm_flops = 2 * real * d * gate.shape[1]
    for threads in sorted({torch.get_num_threads(), 1}, reverse=True):
        torch.set_num_threads(threads)
        ms = measure(cands, rounds, 3.0)
        rows = {}
        for name, t in ms.items():
            moved = 2 * x.numel() * 4 if name.startswith("copy") else real_bytes
            row = {"ms": t, "GBps": moved / (t * 1e-3) / 1e9}
            if name.startswith("gated"):
                row = {"ms": t, "GFLOPs": gemm_flops / (t * 1e-3) / 1e9}
            rows[name] = row
        read = rows["read: sum of a contiguous buffer"]["GBps"]
        copy = rows["copy of the padded batch"]["GBps"]
        for row in rows.values():
            if "GBps" in row:
                row["of_read"] = row["GBps"] / read
                row["of_copy"] = row["GBps"] / copy
        out["by_threads"][str(threads)] = rows
    return out


def render(res: dict) -> str:
    lines = [f"{res['cpu']}, {res['cores']} cores, torch {res['torch']}; (B, N, D) = {tuple(res['shape'])} "
             f"fp32, {res['real_tokens']} real tokens", "",
             "| threads | what | ms | GB/s read (FLOP/s for gated) | of pure read | of the copy |",
             "|---|---|---|---|---|---|"]
    for threads, rows in res["by_threads"].items():
        for name, r in rows.items():
            if "GBps" in r:
                lines.append(f"| {threads} | {name} | {r['ms']:.2f} | {r['GBps']:.1f} GB/s | "
                             f"{r['of_read']:.2f} | {r['of_copy']:.2f} |")
            else:
                lines.append(f"| {threads} | {name} | {r['ms']:.1f} | {r['GFLOPs']:.0f} GFLOP/s | | |")
    return "\n".join(lines)


def plot(res: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(res["by_threads"]), figsize=(11, 4), sharey=True)
    axes = list(axes) if hasattr(axes, "__len__") else [axes]
    for ax, (threads, rows) in zip(axes, res["by_threads"].items()):
        names = [k for k, r in rows.items() if "GBps" in r and not k.startswith(("read", "copy"))]
        vals = [rows[k]["GBps"] for k in names]
        ax.barh(range(len(names)), vals, color="tab:blue")
        ax.set_yticks(range(len(names)), [k.replace("mean ", "mean\n") for k in names], fontsize=8)
        read = rows["read: sum of a contiguous buffer"]["GBps"]
        copy = rows["copy of the padded batch"]["GBps"]
        ax.axvline(read, color="tab:red", ls="--", label=f"pure read {read:.1f} GB/s")
        ax.axvline(copy, color="tab:gray", ls=":", label=f"copy (read+write) {copy:.1f} GB/s")
        ax.axvline(0.8 * copy, color="tab:green", ls="-.", lw=1, label="0.8 of the copy")
        ax.set_title(f"{threads} thread(s)")
        ax.set_xlabel("GB/s of real tokens read")
        ax.legend(fontsize=7, loc="lower right")
    fig.suptitle(f"Masked mean against the memory roofline: {res['cpu']}", fontsize=10)
    fig.tight_layout()
    tmp = path.with_suffix(".tmp.png")
    fig.savefig(tmp, dpi=110)
    os.replace(tmp, path)


def main() -> int:
    return report_main(__doc__, run, render, default=11, png=plot)


if __name__ == "__main__":
    raise SystemExit(main())
