"""Training throughput of the adapool-vision ViT against a plain ``nn.MultiheadAttention`` build.

    python benchmarks/vit_train.py [--threads 1,2] [--rounds 7] [--json out.json] [--md out.md]

Times full training steps (forward, cross-entropy, backward, gradient clipping, AdamW) of
poolwise's ``VisionTransformer`` and of the same model whose encoder layers call
``nn.MultiheadAttention`` (same weights: the outputs are checked equal first), interleaved round
by round in one process on the same batch, at the ``quick`` preset's shapes (14-pixel patches,
canvas 56 and 84, d=64, 4 layers, 4 heads, batch 128) and optionally the paper's (``--paper``:
32x32x3, patch 4, d=512, 6 layers, 8 heads, batch 64). Prints images/s and the ratio ours/reference.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from _machine import cpu_name  # benchmarks/ is on sys.path when run as a script
from poolwise.models.encoder import PreLNLayer
from poolwise.models.vit import VisionTransformer


class MHALayer(nn.Module):
    """A :class:`PreLNLayer` whose attention is ``nn.MultiheadAttention`` (shared weights)."""

    def __init__(self, layer: PreLNLayer) -> None:
        super().__init__()
        dim = layer.qkv.in_features
        self.layer = layer
        self.mha = nn.MultiheadAttention(dim, layer.num_heads, bias=False, batch_first=True)
        self.mha.in_proj_weight = layer.qkv.weight  # q, k, v stacked in the same order
        self.mha.out_proj.weight = layer.proj.weight

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        lay = self.layer
        h = lay.norm1(x)
        x = x + self.mha(h, h, h, need_weights=False)[0]
        return x + lay.fc2(F.gelu(lay.fc1(lay.norm2(x))))


def reference_of(model: VisionTransformer) -> VisionTransformer:
    """A copy of ``model`` whose encoder layers use ``nn.MultiheadAttention``."""
    import copy

    ref = copy.deepcopy(model)
    ref.encoder.layers = nn.ModuleList(MHALayer(layer) for layer in ref.encoder.layers)
    return ref


def step_fn(model: nn.Module, x: torch.Tensor, y: torch.Tensor):
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.1)
    cuda = x.device.type == "cuda"

    def step() -> None:
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if cuda:  # time the work, not its launch
            torch.cuda.synchronize()

    return step


def measure(shape: dict, pooler: str, rounds: int, device: str = "cpu") -> dict:
    torch.manual_seed(0)
    ffn = 2 * shape["dim"] if shape["dim"] < 512 else 2048
    model = VisionTransformer(shape["size"], shape["patch"], 10, shape["channels"], shape["dim"],
                              shape["depth"], shape["heads"], ffn,
                              dropout=0.0, emb_dropout=0.0, pooler=pooler)
    model = model.to(device)
    ref = reference_of(model)
    x = torch.randn(shape["batch"], shape["channels"], shape["size"], shape["size"], device=device)
    y = torch.randint(0, 10, (shape["batch"],), device=device)
    model.eval()
    ref.eval()
    with torch.no_grad():
        diff = float((model(x) - ref(x)).abs().max())
    assert diff < (1e-4 if device == "cpu" else 1e-2), f"reference differs from the model by {diff}"
    model.train()
    ref.train()
    steps = {"poolwise": step_fn(model, x, y), "nn.MultiheadAttention": step_fn(ref, x, y)}
    for s in steps.values():  # warm-up
        s()
        s()
    times: dict[str, list[float]] = {k: [] for k in steps}
    for _ in range(rounds):
        for name, s in steps.items():
            t = time.perf_counter()
            s()
            times[name].append(time.perf_counter() - t)
    ips = {k: shape["batch"] / statistics.median(v) for k, v in times.items()}
    ratio = ips["poolwise"] / ips["nn.MultiheadAttention"]
    return {"images_per_s": ips, "ratio": ratio, "max_abs_diff": diff}


QUICK = [{"name": f"quick canvas {s}", "size": s, "patch": 14, "channels": 1, "dim": 64, "depth": 4,
          "heads": 4, "batch": 128} for s in (56, 84)]
PAPER = {"name": "paper CIFAR", "size": 32, "patch": 4, "channels": 3, "dim": 512, "depth": 6, "heads": 8,
         "batch": 64}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", default="1,2", help="comma-separated torch thread counts (default 1,2)")
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--poolers", default="mean,adapool-focal")
    ap.add_argument("--paper", action="store_true", help="also the paper's CIFAR shape (slow on a CPU)")
    ap.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    ap.add_argument("--json", type=Path)
    ap.add_argument("--md", type=Path)
    args = ap.parse_args()
    shapes = QUICK + ([PAPER] if args.paper else [])
    rows = []
    where = torch.cuda.get_device_name() if args.device.startswith("cuda") else cpu_name()
    print(f"device: {where}; torch {torch.__version__}")
    for threads in (int(t) for t in args.threads.split(",")):
        torch.set_num_threads(threads)
        for shape in shapes:
            for pooler in args.poolers.split(","):
                r = measure(shape, pooler, args.rounds, args.device)
                row = {"shape": shape["name"], "pooler": pooler, "threads": threads, **r}
                rows.append(row)
                ips = r["images_per_s"]
                print(f"{threads} thr  {shape['name']:<16} {pooler:<14} "
                      f"poolwise {ips['poolwise']:7.0f} img/s  "
                      f"nn.MHA {ips['nn.MultiheadAttention']:7.0f} img/s  ratio {r['ratio']:.2f}", flush=True)
    meta = {"cpu": cpu_name(), "device": where, "torch": torch.__version__, "rounds": args.rounds,
            "rows": rows}
    if args.json:
        args.json.write_text(json.dumps(meta, indent=1) + "\n")
    if args.md:
        lines = [f"Training steps of the adapool-vision ViT, images/s (median of {args.rounds} interleaved "
                 f"rounds), {where}, torch {meta['torch']}.", "",
                 "| threads | shape | pooler | poolwise | nn.MultiheadAttention | ours / reference |",
                 "|---|---|---|---|---|---|"]
        for r in rows:
            ips = r["images_per_s"]
            lines.append(f"| {r['threads']} | {r['shape']} | {r['pooler']} | {ips['poolwise']:.0f} | "
                         f"{ips['nn.MultiheadAttention']:.0f} | {r['ratio']:.2f} |")
        args.md.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
