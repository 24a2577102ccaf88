"""What AdaPool (mean query) costs part by part against ``mean``, and the least its design
could cost on this CPU, in one run.

    python benchmarks/attention_floor.py --md docs/results/attention-floor.md \\
        --json docs/results/attention-floor.json

At the operator benchmark's batch (B=64, N=512, D=768 fp32, lengths U[128, 512]), inference,
interleaved rounds (medians). AdaPool in folded form (``poolwise.pooling.attention_core``) is:

1. the query: the masked mean of the real tokens, one read of them (the ``mean`` pooler);
2. the key side: ``u = A q`` for one head (one (B, D) x (D, D) GEMM), ``W_Q`` then the
   per-head ``W_K^T`` for several (two);
3. scores, softmax and weighted sums of every real token under ``u`` (the compiled attention
   kernel): a second read, since ``u`` depends on every token, and ``4 T D H`` FLOPs;
4. the value side: ``W_O W_V z`` (one GEMM; two for several heads);
5. one head only: the fingerprint of the four weights that keys the cache of the folded
   products ``A`` and ``W_O W_V`` (four matrix-vector products).

Each part is timed alone on the same data, beside the whole pooler (and the whole pooler run
chunk by chunk, whose second read finds the chunk in cache); "sum of parts" adds them
at the speeds measured here. "At this CPU's limits" prices the same work at the best rates
measured in this run: both reads at the speed of ``sum()`` over a contiguous buffer of the
real tokens' size, the fingerprint's 4 D^2 floats at that speed too, every GEMM and the
kernel's FLOPs at the best GEMM rate (the kernel's read overlapping its FLOPs). Also timed:
the two passes on rows in chunks small enough (8 rows, about 8 MB) that the second read finds
them in the last-level cache.
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
from ops import lengths_between, measure, padded_batch, report_main
from poolwise._ext import extension_error
from poolwise.pooling.dispatch import kernel_mask, token_kernels
from poolwise.pooling.functional import masked_mean

TARGETS = {1: 2.5, 8: 4.0}  # issue 17: AdaPool at most 2.5x mean with one head, 4x with eight
CHUNK = 8


def run(rounds: int) -> dict:
    b, n, d = 64, 512, 768
    lens = lengths_between(b, n // 4, n, seed=1)
    x, mask = padded_batch(b, n, d, lens, seed=2)
    real = int(mask.sum())
    kernel = token_kernels()
    if kernel is None:
        raise SystemExit(f"the compiled kernels are unavailable: {extension_error('poolwise_token_kernels')}")
    km = kernel_mask(x, mask)
    flat = torch.randn(real * d)
    gen = torch.Generator().manual_seed(3)
    q = torch.randn(b, d, generator=gen)
    w = torch.randn(d, d, generator=gen) / d**0.5
    big = torch.randn(4096, d, generator=gen)
    probe = torch.randn(d, generator=gen)
    weights = [torch.randn(d, d, generator=gen) for _ in range(4)]
    u = {h: torch.randn(b, h, d, generator=gen) / d**0.5 for h in (1, 8)}
    mean = pw.get_pooler("mean")
    ada = {h: pw.get_pooler("adapool", dim=d, num_heads=h).eval() for h in (1, 8)}

    def chunked() -> None:  # mean then attention per chunk: the second read from cache
        for s in range(0, b, CHUNK):
            xs, ms = x[s:s + CHUNK], km[s:s + CHUNK]
            masked_mean(xs, mask[s:s + CHUNK])
            kernel.attend_masked(xs, ms, u[1][s:s + CHUNK])

    def chunked_adapool() -> torch.Tensor:  # the whole one-head pooler, chunk by chunk
        a, a_bias, w_out, b_out = ada[1]._folded_weights(kernel)
        outs = []
        for s in range(0, b, CHUNK):
            xs, ms = x[s:s + CHUNK], mask[s:s + CHUNK]
            z = kernel.attend_masked(xs, km[s:s + CHUNK], F.linear(masked_mean(xs, ms), a, a_bias)[:, None])
            outs.append(F.linear(z[:, 0], w_out, b_out))
        return torch.cat(outs)

    parts = {
        "mean": ("mean (one read of the real tokens)", lambda: mean(x, mask)),
        "read": ("read: sum() of a contiguous buffer of that size", lambda: flat.sum()),
        "gemm": ("GEMM (B, D) x (D, D)", lambda: F.linear(q, w)),
        "big": (f"GEMM ({big.shape[0]}, D) x (D, D): the best rate", lambda: F.linear(big, w)),
        "fingerprint": ("fingerprint of four (D, D) weights",
                        lambda: [kernel.row_dots(m, probe) for m in weights]),
        "kernel1": ("attention kernel, 1 head", lambda: kernel.attend_masked(x, km, u[1])),
        "kernel8": ("attention kernel, 8 heads", lambda: kernel.attend_masked(x, km, u[8])),
        "chunked": (f"mean + attention kernel (1 head) in chunks of {CHUNK} rows", chunked),
        "adapool": ("adapool", lambda: ada[1](x, mask)),
        "adapool chunked": (f"adapool, rows in chunks of {CHUNK} (both passes and GEMMs per chunk)",
                            chunked_adapool),
        "adapool[heads=8]": ("adapool[heads=8]", lambda: ada[8](x, mask)),
    }
    ms = measure(dict(parts.values()), rounds, 4.0)
    t = {key: ms[label] for key, (label, _) in parts.items()}
    gemm_flops = 2 * b * d * d
    best_rate = max(gemm_flops / t["gemm"], 2 * big.shape[0] * d * d / t["big"])  # FLOP/ms
    read_rate = real * d * 4 / t["read"]  # bytes/ms
    designs = {}
    for h in (1, 8):
        gemms = 2 if h == 1 else 4
        kernel_flops = 4 * real * d * h
        summed = t["mean"] + t[f"kernel{h}"] + gemms * t["gemm"]
        limit = t["read"] + max(t["read"], kernel_flops / best_rate) + gemms * gemm_flops / best_rate
        if h == 1:  # the fingerprint: four D x D weights read once
            summed += t["fingerprint"]
            limit += 4 * d * d * 4 / read_rate
        name = "adapool" if h == 1 else "adapool[heads=8]"
        designs[name] = {"heads": h, "gemms": gemms, "measured_ms": t[name], "parts_ms": summed,
                         "limit_ms": limit, "measured_x_mean": t[name] / t["mean"],
                         "parts_x_mean": summed / t["mean"], "limit_x_mean": limit / t["mean"],
                         "target_x_mean": TARGETS[h], "kernel_gflops": kernel_flops / t[f"kernel{h}"] / 1e6}
    return {"cpu": cpu_name(), "cores": os.cpu_count(), "threads": torch.get_num_threads(),
            "torch": torch.__version__, "shape": [b, n, d], "real_tokens": real, "ms": ms,
            "best_gemm_gflops": best_rate / 1e6, "read_gbps": read_rate / 1e6, "designs": designs}


def render(res: dict) -> str:
    ms, t_mean = res["ms"], res["ms"]["mean (one read of the real tokens)"]
    head = (f"*{res['cpu']}, {res['threads']} threads, torch {res['torch']}; (B, N, D) = "
            f"{tuple(res['shape'])} fp32, {res['real_tokens']:,} real tokens; best GEMM rate "
            f"{res['best_gemm_gflops']:.0f} GFLOP/s, read {res['read_gbps']:.1f} GB/s*")
    lines = [head, "", "| part | ms | x mean |", "|---|---|---|"]
    lines += [f"| {name} | {t:.2f} | {t / t_mean:.2f} |" for name, t in ms.items()]
    lines += ["", "| pooler | measured x mean | sum of parts x mean | at this CPU's limits x mean | target | "
              "attention kernel GFLOP/s |", "|---|---|---|---|---|---|"]
    for name, r in res["designs"].items():
        lines.append(f"| {name} | {r['measured_x_mean']:.2f} | {r['parts_x_mean']:.2f} | "
                     f"{r['limit_x_mean']:.2f} | {r['target_x_mean']:g} | {r['kernel_gflops']:.0f} |")
    return "\n".join(lines)


def main() -> int:
    return report_main(__doc__, run, render)


if __name__ == "__main__":
    raise SystemExit(main())
