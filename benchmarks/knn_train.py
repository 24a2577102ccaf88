"""Training throughput of the kNN-Centroid model at the paper's configuration.

    python benchmarks/knn_train.py [--depth 12] [--heads 8] [--batch 750] [--steps 4] [--json out.json]

Times full training steps (forward, MSE, backward, Adam) of poolwise's ``KNNCentroidModel``
and of a reference layer stack written the way the AdaPool paper's code is structured
(separate Q and KV projections, ``scaled_dot_product_attention``, head split by
view/transpose, FFN with dropout 0.1, AdaPool on token 0 with a residual), interleaved in one
process on the same batch. Optionally adds ``torch.compile`` of the poolwise model.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from poolwise.models import KNNCentroidModel


class _RefAttention(nn.Module):
    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.q, self.kv = nn.Linear(dim, dim, False), nn.Linear(dim, 2 * dim, False)
        self.out = nn.Linear(dim, dim, False)
        self.heads, self.dim = heads, dim

    def forward(self, query: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        b = query.shape[0]
        q = self.q(query).view(b, -1, self.heads, self.dim // self.heads).transpose(1, 2)
        k, v = self.kv(context).split(self.dim, dim=2)
        k = k.view(b, -1, self.heads, self.dim // self.heads).transpose(1, 2)
        v = v.view(b, -1, self.heads, self.dim // self.heads).transpose(1, 2)
        e = F.scaled_dot_product_attention(q, k, v)
        return self.out(e.transpose(1, 2).contiguous().view(b, -1, self.dim))


class _RefBlock(nn.Module):
    def __init__(self, dim: int, heads: int, ffn: int) -> None:
        super().__init__()
        self.n1, self.n2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.attn = _RefAttention(dim, heads)
        self.ff = nn.Sequential(nn.Linear(dim, ffn), nn.GELU(), nn.Linear(ffn, dim), nn.Dropout(0.1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.n1(x)
        x = x + self.attn(h, h)
        return x + self.ff(self.n2(x))


class ReferenceModel(nn.Module):
    """The paper's model structure (query embedding, pre-LN stack, AdaPool on token 0)."""

    def __init__(self, dim: int = 16, depth: int = 12, heads: int = 8, ffn: int = 64) -> None:
        super().__init__()
        self.emb = nn.Embedding(2, dim)
        self.blocks = nn.ModuleList(_RefBlock(dim, heads, ffn) for _ in range(depth))
        self.pool = _RefAttention(dim, heads)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        idx = torch.ones(x.shape[1], dtype=torch.long)
        idx[0] = 0
        x = x + self.emb(idx)
        for blk in self.blocks:
            x = blk(x)
        q = x[:, :1]
        return (self.pool(q, x) + q)[:, 0]


def make_step(model: nn.Module, x: torch.Tensor, y: torch.Tensor):
    opt = torch.optim.Adam(model.parameters(), lr=5e-4)

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        F.mse_loss(model(x), y).backward()
        opt.step()

    return step


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--depth", type=int, default=12)
    ap.add_argument("--heads", type=int, default=8)
    ap.add_argument("--batch", type=int, default=750)
    ap.add_argument("--steps", type=int, default=4, help="timed steps per candidate (median)")
    ap.add_argument("--compile", action="store_true", help="also time torch.compile(model)")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)
    if min(args.depth, args.heads, args.batch, args.steps) < 1:
        ap.error("--depth, --heads, --batch and --steps must be >= 1")
    torch.manual_seed(0)
    x, y = torch.randn(args.batch, 128, 16), torch.randn(args.batch, 16)
    cands = {
        "reference (paper-structured)": make_step(
            ReferenceModel(16, args.depth, args.heads, 64).train(), x, y),
        "poolwise KNNCentroidModel": make_step(
            KNNCentroidModel(16, args.depth, args.heads, 64, "adapool", dropout=0.1).train(), x, y),
    }
    if args.compile:
        model = KNNCentroidModel(16, args.depth, args.heads, 64, "adapool", dropout=0.1).train()
        cands["poolwise + torch.compile"] = make_step(torch.compile(model), x, y)
    times: dict[str, list[float]] = {k: [] for k in cands}
    for step in cands.values():  # warm-up (and compilation)
        step()
    for _ in range(args.steps):
        for name, step in cands.items():
            t = time.perf_counter()
            step()
            times[name].append(time.perf_counter() - t)
    ref = statistics.median(times["reference (paper-structured)"])
    rows = []
    print(f"kNN-Centroid training step: depth {args.depth}, {args.heads} heads, d=16, N=128, batch "
          f"{args.batch}, {torch.get_num_threads()} threads, median of {args.steps}")
    for name, ts in times.items():
        med = statistics.median(ts)
        rows.append({"model": name, "s_per_step": med, "samples_per_s": args.batch / med,
                     "speedup_vs_reference": ref / med})
        print(f"  {name:<30} {med:7.3f} s/step {args.batch / med:8.0f} samples/s  x{ref / med:.2f}")
    if args.json:
        tmp = args.json.with_suffix(".tmp")
        tmp.write_text(json.dumps({"config": vars(args) | {"json": str(args.json)}, "rows": rows}, indent=2))
        os.replace(tmp, args.json)
    return 0 if all(math.isfinite(r["s_per_step"]) for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
