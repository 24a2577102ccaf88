"""Pool a decoder's outputs with the last real token under left padding.

    python examples/causal_lm_last_token.py --model PATH     # any local causal-LM directory

Decoder models are usually padded on the left so that the last position is real. poolwise's
``last`` finds the last real token from the mask whatever the padding side, and
``PooledEncoder`` numbers positions from the first real token, so each text's embedding is
the same as when it is encoded alone.
"""

from __future__ import annotations

import argparse

import torch

from poolwise.integrations.transformers import PooledEncoder

TEXTS = ["a short one", "a rather longer input that needs no padding at all", "mid length text"]


def main(argv: list[str] | None = None) -> float:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True, help="local causal-LM directory (config.json, tokenizer)")
    args = ap.parse_args(argv)
    enc = PooledEncoder.from_pretrained(args.model, pooler="last")
    enc.tokenizer.padding_side = "left"
    if enc.tokenizer.pad_token is None:
        enc.tokenizer.pad_token = enc.tokenizer.eos_token or enc.tokenizer.unk_token
    batched = enc.encode(TEXTS)
    alone = torch.cat([enc.encode([t]) for t in TEXTS])
    gap = float((batched - alone).abs().max())
    print(f"left-padded batch vs one-by-one: max difference {gap:.2e}")
    return gap


if __name__ == "__main__":
    main()
