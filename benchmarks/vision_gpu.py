"""GPU check of the adapool-vision experiment at the paper's size.

    python benchmarks/vision_gpu.py [--epochs 2] [--poolers mean,adapool-focal] --json out.json --md out.md

Writes a synthetic CIFAR-10 in the official binary format (50,000 + 10,000 images whose class
sets the mean colour, so accuracy shows that learning happens), trains the paper's ViT (6
layers, d=512, 8 heads, batch 512, dropout 0.1, fold 0 of 5) through ``run_vision`` on CUDA
for a few epochs, and extrapolates the paper preset's GPU time from the measured training
throughput. Needs a CUDA device; prints a line and exits 0 without one.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from poolwise.data.cifar import write_cifar_file
from poolwise.experiments.vision_presets import PAPER_BASE, PRESETS
from poolwise.experiments.vision_scratch import VisionConfig, run_vision


def synthetic_cifar(folder: Path, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    colours = rng.integers(40, 216, (10, 3))
    files = [f"data_batch_{i}.bin" for i in range(1, 6)] + ["test_batch.bin"]
    for f in files:
        labels = rng.integers(0, 10, 10_000)
        noise = rng.integers(-40, 41, (10_000, 3, 32, 32))
        images = np.clip(colours[labels][:, :, None, None] + noise, 0, 255).astype(np.uint8)
        write_cifar_file(folder / "cifar-10-batches-bin" / f, images, labels)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--poolers", default="mean,adapool-focal")
    ap.add_argument("--precisions", default="fp32,bf16", help="fp32 and/or bf16 (autocast)")
    ap.add_argument("--json", type=Path)
    ap.add_argument("--md", type=Path)
    args = ap.parse_args()
    if not torch.cuda.is_available():
        print("no CUDA device: nothing to check")
        return 0
    gpu = torch.cuda.get_device_name()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        synthetic_cifar(Path(tmp))
        print(f"{gpu}: synthetic CIFAR-10 written in {time.perf_counter() - start:.1f} s", flush=True)
        combos = [(p, q) for p in args.precisions.split(",") for q in args.poolers.split(",")]
        for precision, pooler in combos:
            cfg = VisionConfig(**{**PAPER_BASE, "epochs": args.epochs, "warmup_epochs": 1}, dataset="cifar10",
                               data_dir=tmp, pooler=pooler, device="cuda", precision=precision)
            start = time.perf_counter()
            out = run_vision(cfg)
            m = out["metrics"]
            row = {"pooler": pooler, "precision": precision, "epochs": args.epochs,
                   "wall_s": time.perf_counter() - start,
                   "train_images_per_s": m["train_images_per_s"], "test_acc": m["test_acc"],
                   "parameters": m["parameters"], "device": m["device"]}
            rows.append(row)
            print(json.dumps(row), flush=True)
    preset = PRESETS["paper"]
    runs = len(preset.settings) * len(preset.poolers) * len(preset.seeds)
    hours = {}
    for precision in dict.fromkeys(r["precision"] for r in rows):
        ips = min(r["train_images_per_s"] for r in rows if r["precision"] == precision)
        hours[precision] = runs * 40_000 * PAPER_BASE["epochs"] / ips / 3600
        print(f"paper preset, {precision}: {runs} runs x 300 epochs x 40,000 images at {ips:.0f} images/s "
              f"= about {hours[precision]:.0f} GPU-hours of training (validation excluded)")
    summary = {"gpu": gpu, "torch": torch.__version__, "rows": rows, "paper_runs": runs,
               "paper_gpu_hours_estimate": hours}
    if args.json:
        args.json.write_text(json.dumps(summary, indent=1) + "\n")
    if args.md:
        lines = [f"# adapool-vision at the paper's size on {gpu} (torch {torch.__version__})", "",
                 "Synthetic CIFAR-10 in the binary format (class = mean colour), paper ViT (6 layers, d=512, "
                 f"8 heads, batch 512, dropout 0.1), fold 0 of 5, {args.epochs} epochs.", "",
                 "| pooler | precision | training images/s | wall s | test acc | parameters |",
                 "|---|---|---|---|---|---|"]
        lines += [f"| {r['pooler']} | {r['precision']} | {r['train_images_per_s']:.0f} | {r['wall_s']:.1f} | "
                  f"{r['test_acc']:.3f} | {r['parameters']:,} |" for r in rows]
        lines += ["", f"Paper preset: {runs} runs x 300 epochs x 40,000 images, at the slower pooler's rate: "
                  + ", ".join(f"{p} about **{h:.0f} GPU-hours**" for p, h in hours.items()) + "."]
        args.md.write_text("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
