"""One training step (forward + backward) of the elementwise-heavy poolers, compiled kernel
against the PyTorch formula, side by side in one run.

    python benchmarks/train_step.py --json docs/results/train-step.json --md docs/results/train-step.md

At (B=64, N=512, D=768) fp32 with lengths U[128, 512]: ``gem`` and ``softmax`` with gradients
to the input and the pooler's parameter (fine-tuning), and to the parameter only (a pooler
trained on frozen features), beside ``mean``'s step. The PyTorch formula is what
``use_dense()``, ``torch.compile``, GPUs and half precision run. Median of ``--repeats``.
"""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
import poolwise as pw
from _machine import cpu_name
from ops import lengths_between, padded_batch, report_main
from poolwise.pooling import use_dense


def median_ms(fn: Callable[[], None], repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)


def run(repeats: int) -> dict:
    b, n, d = 64, 512, 768
    x, mask = padded_batch(b, n, d, lengths_between(b, n // 4, n, seed=1), seed=2)

    def step(pool: pw.Pooler, inp: torch.Tensor, dense: bool) -> Callable[[], None]:
        def go() -> None:
            inp.grad = None
            pool.zero_grad()
            with use_dense(dense):
                pool(inp, mask).square().sum().backward()
        return go

    mean_ms = median_ms(step(pw.get_pooler("mean"), x.clone().requires_grad_(True), False), repeats)
    rows = []
    for name in ("gem", "softmax"):
        pool = pw.get_pooler(name)
        for to_input in (True, False):
            inp = x.clone().requires_grad_(to_input)
            formula = median_ms(step(pool, inp, True), repeats)
            kernel = median_ms(step(pool, inp, False), repeats)
            rows.append({"pooler": name, "grad_to_input": to_input, "pytorch_ms": formula,
                         "kernel_ms": kernel, "speedup": formula / kernel, "x_mean_step": kernel / mean_ms})
    return {"cpu": cpu_name(), "threads": torch.get_num_threads(), "torch": torch.__version__,
            "shape": [b, n, d], "mean_step_ms": mean_ms, "rows": rows}


def render(res: dict) -> str:
    lines = [f"{res['cpu']}, {res['threads']} threads; (B, N, D) = {tuple(res['shape'])} fp32; "
             f"mean's training step {res['mean_step_ms']:.1f} ms", "",
             "| pooler | gradients to | PyTorch formula (ms) | compiled kernel (ms) | faster "
             "| x mean's step |",
             "|---|---|---|---|---|---|"]
    for r in res["rows"]:
        to = "input and parameter" if r["grad_to_input"] else "parameter only"
        lines.append(f"| {r['pooler']} | {to} | {r['pytorch_ms']:.0f} | {r['kernel_ms']:.1f} | "
                     f"{r['speedup']:.0f}x | {r['x_mean_step']:.1f} |")
    return "\n".join(lines)


def main() -> int:
    return report_main(__doc__, run, render, count="repeats", default=3)


if __name__ == "__main__":
    raise SystemExit(main())
