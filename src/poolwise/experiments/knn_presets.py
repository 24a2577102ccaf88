"""Sweep presets of the kNN-Centroid reproduction.

``paper`` is the paper's protocol (for a GPU or a cluster); ``paper-gpu`` is the same model and
data with one seed, pinned to a CUDA device (its measured cost is in the kNN reproduction's
docs); ``paper-short`` is that model and optimiser on 50k sets for 15 epochs, AdaPool against
MaxPool at SNR 0.125 (the CPU check of the margin the GPU run measured there); ``curve`` is
that model and optimiser with fresh sets every epoch and the test loss after each, up to 3M
sample-gradients, resumable across sessions (learning curves and the margin along them). ``scaling``
crosses 2 SNRs, 3 poolers and 2 seeds with compute points (depth, data, optimiser family) for
the compute-scaling study; ``variants`` tries, one change at a time, what a practitioner
would at depth 2. ``quick`` and ``demo`` are sized for a 2-core laptop: fewer samples,
epochs, layers and heads, a smaller batch and a larger learning rate (more optimisation
steps matter more than depth at this budget), while keeping
the task itself (N=128, d=16, the same generator and splits) unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..data import KNN_VALUES

PAPER_POOLERS = ("adapool", "cls_token", "mean", "max")


@dataclass(frozen=True)
class Preset:
    description: str
    base: dict[str, Any]
    ks: tuple[int, ...]
    poolers: tuple[str, ...] = PAPER_POOLERS
    seeds: tuple[int, ...] = (0, 1)
    extra: dict[str, Any] = field(default_factory=dict)
    #: compute points: each overrides ``base`` and is crossed with ks x poolers x seeds
    #: (empty: the grid is ks x poolers x seeds on ``base`` alone)
    points: tuple[dict[str, Any], ...] = ()

    def configs(self, overrides: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        """The base settings of each compute point (one without points), ``overrides`` (the
        command line's ``--set``) applied last; points that become equal are kept once."""
        out: list[dict[str, Any]] = []
        for point in self.points or ({},):
            cfg = {**self.base, **point, **(overrides or {})}
            if cfg not in out:
                out.append(cfg)
        return out


#: the optimiser and regulariser families of the scaling study: the quick presets' (small
#: batches, a larger learning rate, no dropout) and the paper's
_QUICK_FAMILY = {"batch_size": 64, "lr": 2e-3, "dropout": 0.0}
_PAPER_FAMILY = {"batch_size": 750, "lr": 5e-4, "dropout": 0.1}


PRESETS: dict[str, Preset] = {
    "paper": Preset(
        "the paper's protocol: 1M samples, 100 epochs, 12 layers, 5 folds (GPU or cluster)",
        {"num_samples": 1_000_000, "epochs": 100, "depth": 12, "num_heads": 8, "ffn_dim": 64,
         "batch_size": 750, "lr": 5e-4, "dropout": 0.1, "folds": 5, "data_seed": 42},
        KNN_VALUES, seeds=(1, 2, 3, 4, 5)),
    "paper-gpu": Preset(
        "the paper's model and data on one CUDA GPU, one seed (fold 1 of 5): 8 SNRs x 4 poolers",
        {"num_samples": 1_000_000, "epochs": 100, "depth": 12, "num_heads": 8, "ffn_dim": 64,
         "batch_size": 750, "lr": 5e-4, "dropout": 0.1, "folds": 5, "data_seed": 42, "device": "cuda"},
        KNN_VALUES, seeds=(1,)),
    "paper-short": Preset(
        "the paper's model, optimiser and data on 50k sets x 15 epochs (0.75% of its compute): AdaPool "
        "vs MaxPool at SNR 0.125, one seed; about an hour on 2 cores, minutes on a GPU",
        {"num_samples": 50_000, "epochs": 15, "depth": 12, "num_heads": 8, "ffn_dim": 64,
         "batch_size": 750, "lr": 5e-4, "dropout": 0.1, "folds": 5, "data_seed": 42},
        (16,), poolers=("adapool", "max"), seeds=(1,)),
    "quick": Preset(
        "8 SNRs x 4 poolers x 2 seeds: 17-45 minutes on 2 cores (45 on a 2-core AVX2 EPYC, one worker)",
        {"num_samples": 20_000, "epochs": 5, "depth": 1, "num_heads": 8, "ffn_dim": 64,
         "batch_size": 64, "lr": 2e-3},
        KNN_VALUES),
    "scaling": Preset(
        "compute-scaling study: 2 SNRs x 3 poolers x 2 seeds at 5 compute points (depth 1-12, "
        "80k-320k sample-gradients), cheapest first; about 3 hours on 2 cores, resumable",
        {"num_heads": 8, "ffn_dim": 64, "num_samples": 20_000, "epochs": 5},
        (4, 16), poolers=("adapool", "max", "mean"), seeds=(0, 1),
        points=({"depth": 1, **_QUICK_FAMILY}, {"depth": 2, **_QUICK_FAMILY},
                {"depth": 4, **_QUICK_FAMILY}, {"depth": 1, "num_samples": 80_000, **_QUICK_FAMILY},
                {"depth": 12, **_PAPER_FAMILY})),
    "variants": Preset(
        "what a practitioner would try at depth 2 (dropout, the paper's batch and lr, warm-up, a "
        "larger marker init, fresh data, 3x longer): 8 settings x 2 SNRs x AdaPool/MaxPool, 25-70 "
        "minutes on 2 cores",
        {"num_heads": 8, "ffn_dim": 64, "num_samples": 20_000, "epochs": 5, "depth": 2, **_QUICK_FAMILY},
        (4, 16), poolers=("adapool", "max"), seeds=(0,),
        points=({}, {"dropout": 0.1}, {"batch_size": 750, "lr": 5e-4}, {"warmup_steps": 250},
                {"marker_std": 1.0}, {"fresh_data": True}, {"epochs": 15},
                {"epochs": 15, "fresh_data": True})),
    "curve": Preset(
        "learning curves in the paper's model family: 12 layers, batch 750, lr 5e-4, dropout 0.1, fresh "
        "sets every epoch, test loss every epoch up to 3M sample-gradients; AdaPool, MaxPool and AvgPool "
        "at SNR 0.125 and 0.031, one seed (--seeds 1,2 for two). About 3 h a run on 2 cores: each run "
        "checkpoints every epoch and resumes, so the sweep spans sessions (rerun the command)",
        {"num_samples": 50_000, "epochs": 75, "depth": 12, "num_heads": 8, "ffn_dim": 64, "batch_size": 750,
         "lr": 5e-4, "dropout": 0.1, "data_seed": 42, "fresh_data": True, "test_every_epoch": True,
         "resume": True},
        (16, 4), poolers=("adapool", "max", "mean"), seeds=(1,)),
    "demo": Preset(
        "3 SNRs x 4 poolers x 1 seed in under 5 minutes on 2 cores",
        {"num_samples": 10_000, "epochs": 5, "depth": 1, "num_heads": 8, "ffn_dim": 64,
         "batch_size": 64, "lr": 2e-3},
        (4, 32, 128), seeds=(0,)),
}
