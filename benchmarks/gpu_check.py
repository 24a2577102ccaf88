"""GPU check: every pooler on CUDA against the CPU path (padded and packed, fp32; fp16/bf16
against fp32), finite gradients, a kNN-Centroid training run on CUDA, and timings at
(64, 512, 768) with CUDA events beside a device-to-device copy.

    python benchmarks/gpu_check.py --json gpu.json --md gpu.md

Needs a CUDA device; prints a line and exits 0 without one (CI never needs a GPU).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

import poolwise as pw
from segment_reduce import timed

D = 64
KWARGS = {
    "adapool": {"dim": D, "num_heads": 4}, "attention": {"dim": D, "num_heads": 4}, "gated": {"dim": D},
    "latent_attention": {"dim": D, "num_latents": 16, "num_heads": 4}, "wavg": {"max_len": 64},
    "multi": {"poolers": ["mean", "max", "adapool"], "dim": D},
}


def _batch(device: str, dtype: torch.dtype = torch.float32):
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(6, 20, D, generator=gen) * 2
    mask = torch.ones(6, 20, dtype=torch.bool)
    mask[1, :7] = False  # left padding
    mask[2, 12:] = False  # right padding
    mask[3, ::3] = False  # holes
    mask[4] = False  # empty row
    mask[5, 1:] = False  # one token
    return x.to(device, dtype), mask.to(device)


def parity() -> list[dict]:
    rows = []
    for name in pw.list_poolers():
        torch.manual_seed(0)
        cpu = pw.get_pooler(name, **KWARGS.get(name, {})).eval()
        gpu = pw.get_pooler(name, **KWARGS.get(name, {})).eval().cuda()
        gpu.load_state_dict(cpu.state_dict())
        x, mask = _batch("cpu")
        with torch.no_grad():
            ref = cpu(x, mask)
            out = gpu(x.cuda(), mask.cuda()).cpu()
            lengths = mask.sum(1)
            cu = torch.cat([torch.zeros(1, dtype=torch.long), lengths.cumsum(0)])
            packed = gpu.packed(x[mask].cuda(), cu.cuda()).cpu()
        row = {"pooler": name, "padded_max_abs": float((out - ref).abs().max()),
               "packed_max_abs": float((packed - ref).abs().max())}
        xg = x.cuda().requires_grad_(True)
        gpu.train()
        gpu(xg, mask.cuda()).float().pow(2).sum().backward()
        row["grad_finite"] = bool(torch.isfinite(xg.grad).all())
        gpu.eval()
        for dtype in (torch.float16, torch.bfloat16):
            half = gpu.to(dtype) if any(True for _ in gpu.parameters()) else gpu
            xh, mh = _batch("cuda", dtype)
            with torch.no_grad():
                got = half(xh, mh).float().cpu()
            scale = ref.abs().max().clamp_min(1e-6)
            row[f"{str(dtype)[6:]}_rel"] = float((got - ref).abs().max() / scale)
            row[f"{str(dtype)[6:]}_finite"] = bool(torch.isfinite(got).all())
            gpu.float()
        rows.append(row)
    return rows


def knn_on_cuda() -> dict:
    from poolwise.experiments import KNNConfig, run_knn

    start = time.perf_counter()
    out = run_knn(KNNConfig(k=4, pooler="adapool", num_samples=20_000, epochs=3, depth=2, num_heads=8,
                            batch_size=250, lr=2e-3, device="cuda"))
    m = out["metrics"]
    return {"device": m["device"], "test_signal_loss": m["test_signal_loss"], "best_epoch": m["best_epoch"],
            "train_samples_per_s": m["train_samples_per_s"], "wall_s": time.perf_counter() - start}


def _time(fn, reps: int = 50) -> float:
    """Milliseconds per call (CUDA events; the median of rounds of ``reps`` calls)."""
    return timed(fn, reps)


def speed() -> dict:
    b, n, d = 64, 512, 768
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(b, n, d, generator=gen).cuda()
    lengths = torch.randint(n // 4, n + 1, (b,), generator=gen)
    mask = (torch.arange(n)[None] < lengths[:, None]).cuda()
    cu = torch.cat([torch.zeros(1, dtype=torch.long), lengths.cumsum(0)]).cuda()
    packed_x = x[mask]
    real_bytes = int(lengths.sum()) * d * 4
    copy_ms = _time(lambda: x.clone())
    rows = []
    with torch.no_grad():
        for name, kw in [("mean", {}), ("sum", {}), ("max", {}), ("first", {}), ("last", {}),
                         ("weighted_mean", {}), ("gem", {}), ("softmax", {}), ("wavg", {"max_len": n}),
                         ("gated", {"dim": d}), ("attention", {"dim": d}), ("adapool", {"dim": d}),
                         ("adapool", {"dim": d, "num_heads": 8}), ("latent_attention", {"dim": d})]:
            pooler = pw.get_pooler(name, **kw).eval().cuda()
            label = name + ("[heads=8]" if kw.get("num_heads") == 8 else "")
            ms = _time(lambda p=pooler: p(x, mask))
            row = {"pooler": label, "padded_ms": ms}
            if name in ("mean", "sum", "max", "first", "last", "weighted_mean"):
                row["packed_ms"] = _time(lambda p=pooler: p.packed(packed_x, cu))
                row["real_token_GBps_padded"] = real_bytes / ms / 1e6
            rows.append(row)
    mean_ms = rows[0]["padded_ms"]
    for r in rows:
        r["x_mean"] = r["padded_ms"] / mean_ms
    return {"shape": [b, n, d], "copy_ms": copy_ms, "copy_GBps": 2 * b * n * d * 4 / copy_ms / 1e6,
            "real_token_fraction": float(lengths.sum()) / (b * n), "rows": rows}


def markdown(report: dict) -> str:
    lines = [f"# GPU check: {report['device']}, torch {report['torch']}", "",
             "## Parity with the CPU path (max abs difference; fp16/bf16: max error relative to the "
             "fp32 output's largest value)", "",
             "| pooler | padded | packed | grads finite | fp16 rel | bf16 rel |", "|---|---|---|---|---|---|"]
    for r in report["parity"]:
        lines.append(f"| {r['pooler']} | {r['padded_max_abs']:.1e} | {r['packed_max_abs']:.1e} | "
                     f"{r['grad_finite']} | {r['float16_rel']:.1e} | {r['bfloat16_rel']:.1e} |")
    k = report["knn"]
    lines += ["", "## kNN-Centroid on CUDA (k=4, 20k samples, 2 layers, 3 epochs, batch 250)", "",
              f"device {k['device']}, test signal loss {k['test_signal_loss']:.4f}, "
              f"{k['train_samples_per_s']:.0f} training samples/s, {k['wall_s']:.1f} s in all", ""]
    s = report["speed"]
    lines += [f"## Speed at {tuple(s['shape'])} fp32, {s['real_token_fraction']:.0%} real tokens "
              f"(device copy {s['copy_ms']:.3f} ms, {s['copy_GBps']:.0f} GB/s read+write)", "",
              "| pooler | padded ms | x mean | packed ms | real-token GB/s (padded) |",
              "|---|---|---|---|---|"]
    for r in s["rows"]:
        packed = f"{r['packed_ms']:.3f}" if "packed_ms" in r else ""
        bw = f"{r['real_token_GBps_padded']:.0f}" if "real_token_GBps_padded" in r else ""
        lines.append(f"| {r['pooler']} | {r['padded_ms']:.3f} | {r['x_mean']:.2f} | {packed} | {bw} |")
    return "\n".join(lines) + "\n"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", type=Path)
    ap.add_argument("--md", type=Path)
    args = ap.parse_args()
    if not torch.cuda.is_available():
        print("gpu_check: no CUDA device here; nothing to check")
        return 0
    report = {"device": torch.cuda.get_device_name(), "torch": torch.__version__}
    for part, fn in (("parity", parity), ("knn", knn_on_cuda), ("speed", speed)):
        start = time.perf_counter()
        report[part] = fn()
        print(f"{part}: {time.perf_counter() - start:.1f} s", file=sys.stderr, flush=True)
    text = markdown(report)
    print(text)
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
    if args.md:
        args.md.write_text(text)
    bad = [r["pooler"] for r in report["parity"] if r["padded_max_abs"] > 1e-3 or r["packed_max_abs"] > 1e-3
           or not r["grad_finite"]]
    if bad:
        print(f"gpu_check: CPU/CUDA mismatch or non-finite gradients for {bad}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
