"""Side-by-side timing of this checkout's poolers against another version of poolwise, in one
process (interleaved rounds, medians), with a check that both give the same outputs.

    git worktree add /tmp/old <rev>
    python benchmarks/ab_versions.py --old /tmp/old/src [--json out.json]
    python benchmarks/ab_versions.py --old /tmp/old/src --train --only "latent_attention[study]"
    python benchmarks/ab_versions.py --old /tmp/old/src --train --shape 32,128,384 --no-padding \\
        --only "latent_attention[study],gated"     # a training step of text-bbc's study

``--train`` times a training step on frozen features instead (forward, then backward to the
pooler's parameters only), as the frozen-backbone studies run it.

Use it to show that a refactor changed no speed: ratios new/old near 1 on this machine.
"""

from __future__ import annotations

import argparse
import importlib
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

import poolwise as new
from _machine import cpu_name  # benchmarks/ is on sys.path when run as a script

CASES = {
    "mean": ("mean", {}), "sum": ("sum", {}), "first": ("first", {}), "max": ("max", {}),
    "weighted_mean": ("weighted_mean", {}),
    "wavg": ("wavg", {"max_len": "N"}), "softmax": ("softmax", {}), "gem": ("gem", {}),
    "attention": ("attention", {"dim": "D"}), "adapool": ("adapool", {"dim": "D"}),
    "gated": ("gated", {"dim": "D"}),
    "adapool[query=0]": ("adapool", {"dim": "D", "query": 0}),
    "adapool[heads=8]": ("adapool", {"dim": "D", "num_heads": 8}),
    "attention[heads=8]": ("attention", {"dim": "D", "num_heads": 8}),
    # the frozen-backbone studies' settings (experiments.frozen.POOLER_DEFAULTS)
    "attention[study]": ("attention", {"dim": "D", "num_heads": 4}),
    "latent_attention[study]": ("latent_attention", {"dim": "D", "num_latents": 64, "num_heads": 4,
                                                      "mlp_ratio": 0.0}),
}


def _load_old(src: Path):
    """The other version as the package ``poolwise_old`` (poolwise uses relative imports)."""
    tmp = Path(tempfile.mkdtemp())
    shutil.copytree(src / "poolwise", tmp / "poolwise_old")
    sys.path.insert(0, str(tmp))
    return importlib.import_module("poolwise_old")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--old", type=Path, required=True, help="the src/ folder of the other version")
    ap.add_argument("--rounds", type=int, default=21)
    ap.add_argument("--json", type=Path)
    ap.add_argument("--md", type=Path, help="also write the table as Markdown here")
    ap.add_argument("--train", action="store_true", help="time forward + backward to the parameters")
    ap.add_argument("--only", default="", help="comma-separated case labels (default: all)")
    ap.add_argument("--shape", default="64,512,768", help="B,N,D of the batch (default: 64,512,768)")
    ap.add_argument("--no-padding", action="store_true",
                    help="every token real (lengths are U[N/4, N] otherwise), as in text-bbc's study")
    args = ap.parse_args()
    try:
        b, n, d = (int(v) for v in args.shape.split(","))
    except ValueError:
        ap.error(f"--shape must be three integers B,N,D; got {args.shape!r}")
    if min(b, n, d) < 1 or n < 4:
        ap.error(f"--shape needs B, D >= 1 and N >= 4; got {args.shape!r}")
    only = [c.strip() for c in args.only.split(",") if c.strip()]
    unknown = [c for c in only if c not in CASES]
    if unknown:
        ap.error(f"unknown case(s) {unknown}; known: {', '.join(CASES)}")
    old = _load_old(args.old)
    torch.manual_seed(0)
    x = torch.randn(b, n, d)
    lengths = torch.full((b,), n) if args.no_padding else torch.randint(n // 4, n + 1, (b,))
    mask = torch.arange(n)[None] < lengths[:, None]
    pairs = {}
    for label, (name, kwargs) in CASES.items():
        if only and label not in only:
            continue
        kw = {k: {"N": n, "D": d}.get(v, v) for k, v in kwargs.items()}
        torch.manual_seed(1)
        a = old.get_pooler(name, **kw).train(args.train)
        c = new.get_pooler(name, **kw).train(args.train)
        c.load_state_dict(a.state_dict())
        pairs[label] = (a, c)
    times = {k: ([], []) for k in pairs}
    with torch.no_grad():
        for a, c in pairs.values():
            torch.testing.assert_close(c(x, mask), a(x, mask), atol=1e-4, rtol=1e-4)

    def call(pooler: torch.nn.Module) -> None:
        if not args.train or not any(p.requires_grad for p in pooler.parameters()):
            with torch.no_grad():
                pooler(x, mask)
            return
        pooler.zero_grad(set_to_none=True)
        pooler(x, mask).square().mean().backward()

    for r in range(args.rounds):
        for label, pair in pairs.items():
            order = (0, 1) if r % 2 else (1, 0)  # alternate who goes first
            for i in order:
                start = time.perf_counter()
                call(pair[i])
                times[label][i].append((time.perf_counter() - start) * 1e3)
    rows = [{"pooler": k, "old_ms": statistics.median(o), "new_ms": statistics.median(c),
             "new_over_old": statistics.median(c) / statistics.median(o)} for k, (o, c) in times.items()]
    what = "training step (frozen features)" if args.train else "inference"
    what += ", no padding" if args.no_padding else ""
    print(f"poolwise A/B, {what}, at (B={b}, N={n}, D={d}) fp32, {torch.get_num_threads()} threads, "
          f"{cpu_name()}; outputs equal to 1e-4")
    print(f"{'pooler':20} {'old ms':>8} {'new ms':>8} {'new/old':>8}")
    for r in rows:
        print(f"{r['pooler']:20} {r['old_ms']:8.2f} {r['new_ms']:8.2f} {r['new_over_old']:8.3f}")
    if args.json:
        args.json.write_text(json.dumps({"cpu": cpu_name(), "shape": [b, n, d], "what": what, "rows": rows},
                                        indent=2))
    if args.md:
        lines = [f"{what}; {cpu_name()}, {torch.get_num_threads()} threads; "
                 f"(B, N, D) = ({b}, {n}, {d}) fp32; medians of {args.rounds} interleaved rounds; "
                 "outputs equal to 1e-4", "",
                 "| pooler | old ms | new ms | new / old |", "|---|---|---|---|"]
        lines += [f"| {r['pooler']} | {r['old_ms']:.2f} | {r['new_ms']:.2f} | {r['new_over_old']:.2f} |"
                  for r in rows]
        args.md.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
