"""Operator benchmark: every registered pooler against the sentence-transformers recipe for the
same mode and a streaming reference (copying a buffer of the input's size), in one run.

    python benchmarks/ops.py                 # B=64, N=512, D=768, fp32, lengths U[N/4, N]
    python benchmarks/ops.py --quick --json bench-ops.json
    python benchmarks/ops.py --device cuda --md ops-gpu.md   # CUDA events, same table

Timings are medians of interleaved rounds (every candidate once per round), so slow drift of
a noisy machine hits all candidates alike. Ratios are what to compare across machines. On
CUDA a round's sample is the mean of 20 launches timed with CUDA events, and the bandwidth
columns compare the real tokens' bytes with a device-to-device copy of the padded batch.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
import poolwise as pw
from _machine import cpu_name
from poolwise.pooling import use_dense

SIMPLE = ["first", "last", "mean", "sum", "max", "min", "mean_sqrt_len", "weighted_mean"]
FAST_TARGET = ["mean", "sum", "max", "first", "last", "weighted_mean"]


# ----------------------------------------------------------- reference recipes
def st_recipes(x: torch.Tensor, mask: torch.Tensor) -> dict[str, Callable[[], torch.Tensor]]:
    """The sentence-transformers (5.x/6.x) way of each mode: expand the mask to B x N x D,
    multiply, reduce; masked_fill then max; multiply then gather for the last token."""
    n = x.shape[1]

    def expanded() -> torch.Tensor:
        return mask.unsqueeze(-1).expand(x.size()).to(x.dtype)

    def mean() -> torch.Tensor:
        m = expanded()
        return (x * m).sum(1) / m.sum(1).clamp(min=1e-9)

    def total() -> torch.Tensor:
        return (x * expanded()).sum(1)

    def sqrt_len() -> torch.Tensor:
        m = expanded()
        return (x * m).sum(1) / m.sum(1).clamp(min=1e-9).sqrt()

    def maximum() -> torch.Tensor:
        return x.masked_fill(~mask.unsqueeze(-1), float("-inf")).max(1).values

    def minimum() -> torch.Tensor:
        return x.masked_fill(~mask.unsqueeze(-1), float("inf")).min(1).values

    def gather_at(index: torch.Tensor) -> torch.Tensor:
        return torch.gather(x * expanded(), 1, index.view(-1, 1, 1).expand(-1, 1, x.shape[2]))[:, 0]

    def first() -> torch.Tensor:
        return gather_at(mask.int().argmax(1))

    def last() -> torch.Tensor:
        values, index = mask.int().flip(1).max(1)
        return gather_at(torch.where(values == 0, n - 1, n - index - 1))

    def weighted() -> torch.Tensor:
        m = expanded()
        w = torch.arange(1, n + 1, dtype=x.dtype, device=x.device)[None, :, None].expand(x.size()) * m
        return (x * w).sum(1) / w.sum(1).clamp(min=1e-9)

    return {"mean": mean, "sum": total, "mean_sqrt_len": sqrt_len, "max": maximum, "min": minimum,
            "first": first, "last": last, "weighted_mean": weighted}


# ----------------------------------------------------------------- timing
def measure(cands: dict[str, Callable[[], object]], rounds: int, budget_s: float,
            device: str = "cpu") -> dict[str, float]:
    """Median milliseconds per candidate over interleaved rounds. A candidate stops taking
    part once it has 3 samples and has used ``budget_s`` (keeps very slow ones affordable).
    On CUDA a sample is the mean of 20 calls between two CUDA events."""
    samples: dict[str, list[float]] = {k: [] for k in cands}
    cuda = device.startswith("cuda")
    reps = 20 if cuda else 1
    with torch.no_grad():
        for fn in cands.values():  # warm-up: allocator, thread pool, caches, kernel compiles
            fn()
        if cuda:
            torch.cuda.synchronize()
        for _ in range(rounds):
            for name, fn in cands.items():
                if len(samples[name]) >= 3 and sum(samples[name]) * reps > budget_s * 1e3:
                    continue
                if cuda:
                    start_ev = torch.cuda.Event(enable_timing=True)
                    stop_ev = torch.cuda.Event(enable_timing=True)
                    start_ev.record()
                    for _ in range(reps):
                        fn()
                    stop_ev.record()
                    torch.cuda.synchronize()
                    samples[name].append(start_ev.elapsed_time(stop_ev) / reps)
                    continue
                start = time.perf_counter()
                fn()
                samples[name].append((time.perf_counter() - start) * 1e3)
    return {k: statistics.median(v) for k, v in samples.items()}


def lengths_between(b: int, low: int, high: int, seed: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.randint(low, high + 1, (b,), generator=gen)


def padded_batch(b: int, n: int, d: int, lens: torch.Tensor, seed: int):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(b, n, d, generator=gen)
    mask = torch.arange(n)[None, :] < lens[:, None]
    return x, mask


def pooler_specs(d: int) -> dict[str, dict]:
    specs = {name: {} for name in pw.list_poolers()}
    specs.update({
        "adapool": {"dim": d},  # defaults: num_heads=1, query="mean"
        "attention": {"dim": d},
        "gated": {"dim": d},
        "latent_attention": {"dim": d},
        "wavg": {"max_len": 4096},
        "multi": {"poolers": ["mean", "max"]},
    })
    return specs


# ------------------------------------------------------------------ main
def run(args: argparse.Namespace) -> dict:
    torch.manual_seed(0)
    b, n, d = args.batch, args.length, args.dim
    dev = torch.device(args.device)
    lens = lengths_between(b, n // 4, n, seed=1)
    x, mask = (t.to(dev) for t in padded_batch(b, n, d, lens, seed=2))
    valid = int(mask.sum())
    buf = torch.empty_like(x)
    flat = torch.randn(valid * d, device=dev)  # the real tokens' bytes, contiguous: a pure read

    poolers = {name: pw.get_pooler(name, **kw).eval().to(dev) for name, kw in pooler_specs(d).items()}
    extra = {
        "adapool[query=0]": pw.get_pooler("adapool", dim=d, query=0).eval().to(dev),
        "adapool[heads=8]": pw.get_pooler("adapool", dim=d, num_heads=8).eval().to(dev),
        "attention[heads=8]": pw.get_pooler("attention", dim=d, num_heads=8).eval().to(dev),
    }
    cands: dict[str, Callable[[], object]] = {"stream:copy": lambda: buf.copy_(x),
                                              "stream:read": lambda: flat.sum()}
    for name, p in {**poolers, **extra}.items():
        cands[name] = (lambda p=p: p(x, mask))
    with use_dense():
        dense_mean = pw.get_pooler("mean")
    cands["mean[dense bmm]"] = lambda: _dense(dense_mean, x, mask)
    if not args.quick:
        unfolded = pw.get_pooler("adapool", dim=d).eval().to(dev)
        unfolded.folded = False
        cands["adapool[per-token K/V]"] = lambda: unfolded(x, mask)
    for name, fn in st_recipes(x, mask).items():
        cands[f"recipe:{name}"] = fn
    print(f"{device_name(dev)}: timing {len(cands)} candidates at (B={b}, N={n}, D={d}) fp32, "
          f"lengths U[{n // 4}, {n}], "
          f"{valid / mask.numel():.0%} real tokens, {torch.get_num_threads()} threads ...", file=sys.stderr)
    ms = measure(cands, args.rounds, args.budget, args.device)

    # packed against padded, with about half of the padded batch being padding
    lens_half = lengths_between(b, 1, n, seed=3)
    xh, mh = (t.to(dev) for t in padded_batch(b, n, d, lens_half, seed=4))
    packed = xh[mh]
    cu = torch.cat([torch.zeros(1, dtype=torch.long), lens_half.cumsum(0)]).to(dev)
    pcands: dict[str, Callable[[], object]] = {}
    for name in SIMPLE:
        p = poolers[name]
        pcands[f"{name}:packed"] = (lambda p=p: p.packed(packed, cu))
        pcands[f"{name}:padded"] = (lambda p=p: p(xh, mh))
        pcands[f"{name}:padded-dense"] = (lambda p=p: _dense(p, xh, mh))
    pms = measure(pcands, args.rounds, args.budget, args.device)

    copy_bw = 2 * x.numel() * 4 / (ms["stream:copy"] * 1e-3) / 1e9  # read + write, GB/s
    # a pure read of the real tokens' bytes: steadier than the copy on machines whose writes
    # vary (a 2-core EPYC's copy moved 4.2-7.8 ms between runs)
    read_bw = valid * d * 4 / (ms["stream:read"] * 1e-3) / 1e9
    rows = []
    for name in [*poolers, *extra, "mean[dense bmm]", "adapool[per-token K/V]"]:
        if name not in ms:
            continue
        row = {"pooler": name, "ms": ms[name], "x_mean": ms[name] / ms["mean"]}
        base = name.split("[")[0]
        if f"recipe:{base}" in ms and "[" not in name:
            row["recipe_ms"] = ms[f"recipe:{base}"]
            row["speedup_vs_recipe"] = ms[f"recipe:{base}"] / ms[name]
        if base in ("mean", "sum", "max", "min", "mean_sqrt_len", "weighted_mean") and "[" not in name:
            bw = valid * d * 4 / (ms[name] * 1e-3) / 1e9
            row["valid_read_GBps"] = bw
            row["bw_vs_stream"] = bw / copy_bw
            row["bw_vs_read"] = bw / read_bw
        rows.append(row)
    half_bytes = int(mh.sum()) * d * 4
    packed_rows = [{"pooler": name, "packed_ms": pms[f"{name}:packed"], "padded_ms": pms[f"{name}:padded"],
                    "padded_dense_ms": pms[f"{name}:padded-dense"],
                    "packed_bw_vs_copy": half_bytes / (pms[f"{name}:packed"] * 1e-3) / 1e9 / copy_bw,
                    "padded_bw_vs_copy": half_bytes / (pms[f"{name}:padded"] * 1e-3) / 1e9 / copy_bw,
                    "packed_vs_padded": pms[f"{name}:packed"] / pms[f"{name}:padded"],
                    "packed_vs_padded_dense": pms[f"{name}:packed"] / pms[f"{name}:padded-dense"]}
                   for name in SIMPLE]
    by = {r["pooler"]: r for r in rows}
    targets = {
        "simple >= 5x faster than recipe": {
            k: round(by[k]["speedup_vs_recipe"], 1) for k in FAST_TARGET},
        "mean/sum valid-token bandwidth >= 0.8 of streaming copy": {
            k: round(by[k]["bw_vs_stream"], 2) for k in ("mean", "sum")},
        "mean/sum valid-token bandwidth against a pure read (for reference)": {
            k: round(by[k]["bw_vs_read"], 2) for k in ("mean", "sum")},
        "adapool/attention <= 4x mean (8 heads), <= 2.5x (1 head)": {
            k: round(by[k]["x_mean"], 1) for k in
            ("adapool", "adapool[query=0]", "attention", "adapool[heads=8]", "attention[heads=8]")},
        "gem/softmax/gated <= 5x mean": {k: round(by[k]["x_mean"], 1) for k in ("gem", "softmax", "gated")},
        "packed <= 0.6x padded": {r["pooler"]: round(r["packed_vs_padded"], 2) for r in packed_rows},
        "packed <= 0.6x padded (dense kernel, reads padding)": {
            r["pooler"]: round(r["packed_vs_padded_dense"], 2) for r in packed_rows},
    }
    return {
        "shape": {"batch": b, "length": n, "dim": d, "dtype": "float32",
                  "real_token_fraction": valid / mask.numel(),
                  "packed_case_padding_fraction": 1 - float(mh.float().mean())},
        "stream_copy_ms": ms["stream:copy"], "stream_copy_GBps": copy_bw,
        "stream_read_ms": ms["stream:read"], "stream_read_GBps": read_bw,
        "rows": rows, "packed": packed_rows, "targets": targets,
        "machine": {"platform": platform.platform(), "processor": platform.processor(),
                    "cpu": device_name(dev), "device": str(dev),
                    "torch": torch.__version__, "threads": torch.get_num_threads(),
                    "poolwise": pw.__version__, "rounds": args.rounds},
    }


def device_name(dev: torch.device) -> str:
    """The CPU's name and vector extensions, or the GPU's name."""
    return torch.cuda.get_device_name(dev) if dev.type == "cuda" else cpu_name()


def _dense(pooler: pw.Pooler, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    with use_dense():
        return pooler(x, mask)


def render(res: dict) -> str:
    s = res["shape"]
    out = [f"poolwise operator benchmark: B={s['batch']} N={s['length']} D={s['dim']} fp32, "
           f"{s['real_token_fraction']:.0%} real tokens; streaming copy {res['stream_copy_ms']:.2f} ms "
           f"({res['stream_copy_GBps']:.0f} GB/s read+write)", ""]
    head = ["ms", "x mean", "recipe ms", "speedup", "GB/s", "bw/copy"]
    out.append(f"{'pooler':<24}" + "".join(f"{h:>{w}}" for h, w in zip(head, (9, 9, 11, 9, 8, 9))))
    for r in res["rows"]:
        rec = f"{r['recipe_ms']:>11.2f}{r['speedup_vs_recipe']:>8.1f}x" if "recipe_ms" in r else " " * 20
        bw = f"{r['valid_read_GBps']:>8.1f}{r['bw_vs_stream']:>9.2f}" if "bw_vs_stream" in r else ""
        out.append(f"{r['pooler']:<24}{r['ms']:>9.3f}{r['x_mean']:>9.2f}{rec}{bw}")
    out += ["", f"packed vs padded, {s['packed_case_padding_fraction']:.0%} of the padded batch is padding",
            f"{'pooler':<16}{'packed ms':>11}{'padded ms':>11}{'dense ms':>10}{'pk/pad':>8}{'pk/dense':>10}"]
    for r in res["packed"]:
        out.append(f"{r['pooler']:<16}{r['packed_ms']:>11.3f}{r['padded_ms']:>11.3f}{r['padded_dense_ms']:>10.3f}"
                   f"{r['packed_vs_padded']:>8.2f}{r['packed_vs_padded_dense']:>10.2f}")
    out += ["", "targets (measured ratios):"]
    for goal, vals in res["targets"].items():
        out.append(f"  {goal}: " + ", ".join(f"{k} {v}" for k, v in vals.items()))
    return "\n".join(out)


def render_md(res: dict) -> str:
    """The main table as Markdown, for the docs (``--md``)."""
    s = res["shape"]
    m = res["machine"]
    lines = [f"{m.get('cpu', m['processor'])}, {m['threads']} threads, torch {m['torch']}; "
             f"(B, N, D) = ({s['batch']}, {s['length']}, {s['dim']}) fp32, "
             f"{s['real_token_fraction']:.0%} real tokens; copy {res['stream_copy_ms']:.2f} ms"
             + (f", read {res['stream_read_ms']:.2f} ms" if "stream_read_ms" in res else ""), "",
             "| pooler | ms | x mean | vs the sentence-transformers recipe "
             "| real tokens read / copy bandwidth | / pure read bandwidth |",
             "|---|---|---|---|---|---|"]
    for r in res["rows"]:
        rec = f"{r['speedup_vs_recipe']:.1f}x faster" if "speedup_vs_recipe" in r else ""
        bw = f"{r['bw_vs_stream']:.2f}" if "bw_vs_stream" in r else ""
        rd = f"{r['bw_vs_read']:.2f}" if "bw_vs_read" in r else ""
        lines.append(f"| {r['pooler']} | {_ms(r['ms'])} | {r['x_mean']:.2f} | {rec} | {bw} | {rd} |")
    if m.get("device", "cpu") != "cpu":  # on GPUs the packed table is part of the question
        lines += ["", f"Packed against padded ({s['packed_case_padding_fraction']:.0%} of the padded batch "
                  "is padding); bandwidth = real tokens' bytes / time, over the copy's:", "",
                  "| pooler | packed ms | padded ms | packed bw / copy | padded bw / copy |",
                  "|---|---|---|---|---|"]
        lines += [f"| {r['pooler']} | {_ms(r['packed_ms'])} | {_ms(r['padded_ms'])} | "
                  f"{r['packed_bw_vs_copy']:.2f} | {r['padded_bw_vs_copy']:.2f} |" for r in res["packed"]]
    return "\n".join(lines) + "\n"


def _ms(v: float) -> str:
    return f"{v:.2f}" if v >= 1 else f"{v:.3f}"


def write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file: never a half-written result."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def write_json(path: Path, payload: dict) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(payload, indent=2))
    os.replace(tmp, path)  # never leave a half-written results file


def report_main(doc: str, run_fn: Callable[[int], dict], render_fn: Callable[[dict], str],
                count: str = "rounds", default: int = 15,
                png: Callable[[dict, Path], None] | None = None) -> int:
    """The command line of a benchmark that times ``--<count>`` rounds, prints its table and
    writes it as ``--json`` / ``--md`` (and ``--png`` when it can plot)."""
    ap = argparse.ArgumentParser(description=doc.split("\n")[0])
    ap.add_argument(f"--{count}", type=int, default=default)
    ap.add_argument("--json", type=Path)
    ap.add_argument("--md", type=Path)
    if png is not None:
        ap.add_argument("--png", type=Path)
    args = ap.parse_args()
    n = getattr(args, count)
    if n < 1:
        ap.error(f"--{count} must be >= 1; got {n}")
    res = run_fn(n)
    text = render_fn(res)
    print(text)
    if args.json:
        write_json(args.json, res)
    if args.md:
        write_text(args.md, text + "\n")
    if png is not None and args.png:
        png(res, args.png)
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--length", type=int, default=512)
    ap.add_argument("--dim", type=int, default=768)
    ap.add_argument("--rounds", type=int, default=15, help="interleaved timing rounds (median)")
    ap.add_argument("--budget", type=float, default=2.0, help="seconds a slow candidate may use")
    ap.add_argument("--quick", action="store_true", help="7 rounds, skip the per-token K/V reference")
    ap.add_argument("--device", default="cpu", help="cpu (default) or cuda[:N]")
    ap.add_argument("--json", type=Path, help="also write the results as JSON here")
    ap.add_argument("--md", type=Path, help="also write the main table as Markdown here")
    args = ap.parse_args(argv)
    for flag in ("batch", "length", "dim", "rounds"):
        if getattr(args, flag) < 1:
            ap.error(f"--{flag} must be >= 1; got {getattr(args, flag)}")
    if args.length < 4:
        ap.error("--length must be >= 4 (lengths are drawn from [N/4, N])")
    if args.quick:
        args.rounds = min(args.rounds, 7)
    if args.device != "cpu" and not (args.device.startswith("cuda") and torch.cuda.is_available()):
        ap.error(f"--device must be cpu or an available cuda device; got {args.device!r}")
    res = run(args)
    print(render(res))
    if args.json:
        write_json(args.json, res)
        print(f"\nJSON written to {args.json}")
    if args.md:
        write_text(args.md, render_md(res))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
