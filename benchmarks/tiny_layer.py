"""The fused tiny-width layer against the op-by-op PreLNLayer path, on the RL token policies.

    python benchmarks/tiny_layer.py [--threads 1] [--rounds 8] [--json out.json] [--md out.md]

For each of the AdaPool paper's RL bodies (Simple Tag d=3 / 6 layers / 32 tokens, Simple
Centroid d=8 / 3 layers, BoxWorld pixels d=6 / 6 layers / 50 tokens) times a training step
(forward, backward, Adam) on a PPO minibatch of 1,024 observations and a no-grad forward on
a rollout batch of 32, with the fused kernel and with ``use_fused=False``, interleaved round
by round in one process on the same weights. Prints medians and the ratio.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch

from _machine import cpu_name  # benchmarks/ is on sys.path when run as a script
from poolwise.models.token_policy import TokenEncoder

BODIES = {
    "tag 1v3v28": ({"dim": 3, "depth": 6, "num_heads": 3, "ffn_dim": 12}, 32, True),
    "centroid 1v1v30": ({"dim": 8, "depth": 3, "num_heads": 8, "ffn_dim": 32}, 32, True),
    "boxworld pixels": ({"dim": 6, "depth": 6, "num_heads": 6, "ffn_dim": 24, "init_std": 0.02}, 50, False),
}


def _train_step(enc: TokenEncoder, opt: torch.optim.Optimizer, x: torch.Tensor) -> float:
    t = time.perf_counter()
    loss = enc(x).square().mean()
    opt.zero_grad()
    loss.backward()
    opt.step()
    return time.perf_counter() - t


def _infer(enc: TokenEncoder, x: torch.Tensor) -> float:
    with torch.no_grad():
        t = time.perf_counter()
        enc(x)
        return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--rounds", type=int, default=8)
    ap.add_argument("--json", type=Path)
    ap.add_argument("--md", type=Path)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    rows = []
    for name, (kw, n, roles) in BODIES.items():
        x = torch.rand(1024, n, 5)
        if roles:
            x[..., 4] = torch.randint(0, 4, (1024, n)).float()
        enc = TokenEncoder(roles=roles, **kw)
        opt = torch.optim.Adam(enc.parameters(), 1e-3)
        train: dict[bool, list[float]] = {True: [], False: []}
        infer: dict[bool, list[float]] = {True: [], False: []}
        for _ in range(args.rounds + 2):
            for fused in (True, False):
                for layer in enc.encoder.layers:
                    layer.use_fused = fused
                train[fused].append(_train_step(enc, opt, x))
                infer[fused].append(_infer(enc, x[:32]))
        med = {
            k: {f: statistics.median(v[f][2:]) for f in (True, False)}
            for k, v in (("train", train), ("infer", infer))
        }
        rows.append(
            {
                "body": name,
                **{f"{k}_{'fused' if f else 'ops'}_ms": 1e3 * med[k][f] for k in med for f in (True, False)},
            }
        )
        r = rows[-1]
        print(
            f"{name}: train step (1024 obs) fused {r['train_fused_ms']:.0f} ms, "
            f"op-by-op {r['train_ops_ms']:.0f} ms ({r['train_ops_ms'] / r['train_fused_ms']:.2f}x); "
            f"rollout forward (32 obs) {r['infer_fused_ms']:.2f} "
            f"vs {r['infer_ops_ms']:.2f} ms ({r['infer_ops_ms'] / r['infer_fused_ms']:.2f}x)",
            flush=True,
        )
    cpu = f"{cpu_name()}, {args.threads} torch thread(s), torch {torch.__version__}"
    if args.json:
        args.json.write_text(json.dumps({"cpu": cpu, "rows": rows}, indent=2) + "\n")
    if args.md:
        md = [
            f"RL token bodies, fused layer vs op-by-op (median of {args.rounds} interleaved rounds), {cpu}.",
            "",
            "| body | train step, 1,024 obs: fused | op-by-op | speed-up | rollout forward, 32 obs: fused "
            "| op-by-op | speed-up |",
            "|---|---|---|---|---|---|---|",
        ]
        md += [
            f"| {r['body']} | {r['train_fused_ms']:.0f} ms | {r['train_ops_ms']:.0f} ms | "
            f"{r['train_ops_ms'] / r['train_fused_ms']:.2f}x | {r['infer_fused_ms']:.2f} ms | "
            f"{r['infer_ops_ms']:.2f} ms | {r['infer_ops_ms'] / r['infer_fused_ms']:.2f}x |"
            for r in rows
        ]
        args.md.write_text("\n".join(md) + "\n")


if __name__ == "__main__":
    main()
