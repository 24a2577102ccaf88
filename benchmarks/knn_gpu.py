"""kNN-Centroid on a GPU: CPU/GPU agreement, the paper model's throughput, and paper-model runs.

    python benchmarks/knn_gpu.py --budget 150 --json knn-gpu.json --md knn-gpu.md

1. Agreement: one short run (k = 16, 4,000 sets, 2 layers, 2 epochs, batch 64) on the CPU and
   on CUDA from the same initial weights and batches: the untrained model's predictions
   (max abs difference) and both test signal losses (relative difference; float32 sums in
   another order make the trajectories drift, so a few percent is expected, not 1e-6).
2. Throughput of the ``paper-gpu`` preset's model (12 layers, d = 16, 8 heads, FFN 64, batch
   750, dropout 0.1) on CUDA: training samples/s over one epoch, and from it the preset's time
   (1M sets x 100 epochs x 32 runs), plus the data generation's time per set on this host.
3. With what is left of ``--budget`` seconds: AdaPool and MaxPool (and mean) at SNR 0.125 with
   the paper's model, the same epochs each: how the margin looks at more compute than a CPU
   preset can afford.

Needs a CUDA device; prints a line and exits 0 without one.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

from poolwise.data import knn_centroid
from poolwise.experiments import KNNConfig, run_knn
from poolwise.experiments.knn_presets import PRESETS
from poolwise.models import KNNCentroidModel

DEVICE = "cuda"  # a dry run on CPU sets "cpu"


#: the short run of the agreement check
AGREEMENT_RUN = {"k": 16, "pooler": "adapool", "num_samples": 4_000, "epochs": 2, "depth": 2, "num_heads": 8,
                 "ffn_dim": 64, "batch_size": 64, "lr": 2e-3, "data_seed": 7}


def agreement() -> dict:
    base = AGREEMENT_RUN
    torch.manual_seed(0)
    model = KNNCentroidModel(16, base["depth"], 8, 64, "adapool", {}, 0.0, 0.02).eval()
    x, _ = knn_centroid(256, 16, seed=7)
    with torch.no_grad():
        cpu_out = model(x)
        gpu_out = model.to(DEVICE)(x.to(DEVICE)).cpu()
    out = {"untrained_max_abs_diff": float((cpu_out - gpu_out).abs().max()),
           "untrained_output_scale": float(cpu_out.abs().max())}
    for label, dev in (("cpu", "cpu"), ("cuda", DEVICE)):
        start = time.perf_counter()
        m = run_knn(KNNConfig(**base, device=dev))["metrics"]
        out[label] = {"test_signal_loss": m["test_signal_loss"],
                                                "samples_per_s": m["train_samples_per_s"],
                                                "wall_s": time.perf_counter() - start}
    a, b = out["cpu"]["test_signal_loss"], out["cuda"]["test_signal_loss"]
    out["loss_rel_diff"] = abs(a - b) / a
    return out


def throughput(num_samples: int) -> dict:
    paper = {k: v for k, v in PRESETS["paper-gpu"].base.items() if k not in ("num_samples", "epochs")}
    start = time.perf_counter()
    knn_centroid(num_samples, 16, seed=11)
    gen_s = time.perf_counter() - start
    start = time.perf_counter()
    m = run_knn(KNNConfig(k=16, pooler="adapool", seed=1, num_samples=num_samples, epochs=1,
                          **{**paper, "data_seed": 11, "device": DEVICE}))["metrics"]
    wall = time.perf_counter() - start
    rate = m["train_samples_per_s"]
    preset = PRESETS["paper-gpu"]
    runs = len(preset.ks) * len(preset.poolers) * len(preset.seeds)
    train_sets = preset.base["num_samples"] * 0.9 * 4 / 5  # 5 folds: test 10%, one fold for validation
    run_s = train_sets * preset.base["epochs"] / rate
    return {"num_samples": num_samples, "train_samples_per_s": rate, "one_epoch_wall_s": wall,
            "data_on_device": m.get("data_on_device"), "data_gen_s_per_1k_sets": gen_s / num_samples * 1e3,
            "paper_gpu_run_h": run_s / 3600, "paper_gpu_runs": runs,
            "paper_gpu_total_h": runs * run_s / 3600,
            "paper_data_gen_min": gen_s / num_samples * preset.base["num_samples"] / 60}


def paper_model_runs(num_samples: int, budget_s: float, rate: float) -> list[dict]:
    skip = ("num_samples", "epochs", "folds")
    paper = {k: v for k, v in PRESETS["paper-gpu"].base.items() if k not in skip}
    poolers = ("adapool", "max", "mean")
    per_run = budget_s / len(poolers)
    epochs = max(1, int(per_run * rate / (num_samples * 0.8) * 0.85))  # 0.85: validation, test, start-up
    rows = []
    for pooler in poolers:
        start = time.perf_counter()
        m = run_knn(KNNConfig(k=16, pooler=pooler, seed=1, num_samples=num_samples, epochs=epochs,
                              **{**paper, "data_seed": 11, "device": DEVICE}))["metrics"]
        rows.append({"pooler": pooler, "k": 16, "snr": 0.125, "num_samples": num_samples, "epochs": epochs,
                     "test_signal_loss": m["test_signal_loss"], "best_epoch": m["best_epoch"],
                     "wall_s": time.perf_counter() - start})
        print(f"  {pooler}: {m['test_signal_loss']:.5f} ({rows[-1]['wall_s']:.0f} s)", file=sys.stderr,
              flush=True)
    return rows


def markdown(r: dict) -> str:
    a, t = r["agreement"], r["throughput"]
    lines = [f"# kNN-Centroid on {r['device']} (torch {r['torch']})", "",
             "## CPU / GPU agreement (k = 16, 4,000 sets, 2 layers, 2 epochs, batch 64)", "",
             f"Untrained model, same weights: max abs difference {a['untrained_max_abs_diff']:.1e} "
             f"(outputs up to {a['untrained_output_scale']:.2f}).", "",
             "| device | test signal loss | training samples/s | wall s |", "|---|---|---|---|"]
    for dev in ("cpu", "cuda"):
        lines.append(f"| {dev} | {a[dev]['test_signal_loss']:.5f} | {a[dev]['samples_per_s']:,.0f} | "
                     f"{a[dev]['wall_s']:.1f} |")
    lines += ["", f"Relative difference of the test losses: {a['loss_rel_diff']:.1%}.", "",
              "## The paper's model (12 layers, batch 750, dropout 0.1)", "",
              f"{t['train_samples_per_s']:,.0f} training samples/s over one epoch of "
              f"{t['num_samples']:,} sets "
              f"(data on the device: {t['data_on_device']}). The `paper-gpu` preset (1M sets, 100 epochs, "
              f"{t['paper_gpu_runs']} runs) would take {t['paper_gpu_run_h']:.2f} h per run, "
              f"{t['paper_gpu_total_h']:.1f} h in all on this GPU, plus {t['paper_data_gen_min']:.0f} min to "
              f"generate its 1M sets once on this host's CPU.", ""]
    if r["runs"]:
        lines += [f"## Paper model at SNR 0.125 ({r['runs'][0]['num_samples']:,} sets, "
                  f"{r['runs'][0]['epochs']} epochs, one seed)", "",
                  "| pooler | test signal loss | best epoch | wall s |", "|---|---|---|---|"]
        lines += [f"| {x['pooler']} | {x['test_signal_loss']:.5f} | {x['best_epoch']} | {x['wall_s']:.0f} |"
                  for x in r["runs"]]
    return "\n".join(lines) + "\n"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--budget", type=float, default=150.0, help="seconds for the paper-model runs (part 3)")
    ap.add_argument("--samples", type=int, default=50_000, help="sets for parts 2 and 3")
    ap.add_argument("--json", type=Path)
    ap.add_argument("--md", type=Path)
    args = ap.parse_args()
    if DEVICE == "cuda" and not torch.cuda.is_available():
        print("knn_gpu: no CUDA device here; nothing to measure")
        return 0
    name = torch.cuda.get_device_name() if DEVICE == "cuda" else "cpu"
    report = {"device": name, "torch": torch.__version__}
    steps = (("agreement", agreement), ("throughput", lambda: throughput(args.samples)),
             ("runs", lambda: paper_model_runs(args.samples, args.budget,
                                               report["throughput"]["train_samples_per_s"])))
    for name, fn in steps:
        start = time.perf_counter()
        report[name] = fn() if args.budget > 0 or name != "runs" else []
        print(f"{name}: {time.perf_counter() - start:.1f} s", file=sys.stderr, flush=True)
        if args.json:  # after every part: a killed run still leaves what it measured
            args.json.write_text(json.dumps(report, indent=2))
    text = markdown(report)
    print(text)
    if args.md:
        args.md.write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
