"""Train-from-scratch protocol of the kNN-Centroid task (AdaPool paper, sections 2.2-2.4)."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, ClassVar

import torch
import torch.nn.functional as F

from ..data import knn_baselines, knn_centroid
from ..data.cache import cache_root
from ..models import CLS_TOKEN, KNNCentroidModel
from ..models.knn import check_cls_marker
from ..pooling import list_poolers
from .fit import Progress, fit, iter_rows, pick_device
from .registry import register_task


@dataclass(frozen=True)
class KNNConfig:
    """One training run. Defaults are the paper's model (12 layers, d=16, 8 heads, FFN 64)
    and optimiser (Adam 5e-4, batch 750); sizes are set by the presets."""

    k: int
    pooler: str = "adapool"
    seed: int = 0
    num_samples: int = 20_000
    num_vectors: int = 128
    dim: int = 16
    data_seed: int = 0
    depth: int = 12
    num_heads: int = 8
    ffn_dim: int = 64
    dropout: float = 0.0
    init_std: float = 0.02
    epochs: int = 10
    batch_size: int = 750
    lr: float = 5e-4
    test_fraction: float = 0.1
    folds: int = 1  # >1: contiguous k-fold validation over the non-test part, fold = seed % folds
    pooler_kwargs: dict[str, Any] = field(default_factory=dict)
    device: str = "auto"  # "auto": the first CUDA device when there is one, else the CPU
    #: where ClsToken's query marker goes: "query" (on the query vector, ours) or "paper" (the
    #: paper's code: CLS prepended before the markers, so marker 0 lands on the CLS token)
    cls_marker: str = "query"
    #: linear learning-rate warm-up over this many optimiser steps (0: none)
    warmup_steps: int = 0
    #: initial standard deviation of the query-marker embedding (None: ``init_std``)
    marker_std: float | None = None
    #: draw new training sets every epoch after the first (validation and test sets stay)
    fresh_data: bool = False
    #: a learning curve: the test loss after every epoch, in the history rows
    test_every_epoch: bool = False
    #: checkpoint after every epoch (in ``<cache>/checkpoints``) and resume from it, for runs of
    #: hours: a killed run started again continues where it stopped, with the same steps
    resume: bool = False
    key_optional: ClassVar[tuple[str, ...]] = ("cls_marker", "warmup_steps", "marker_std", "fresh_data",
                                               "test_every_epoch", "resume")

    def __post_init__(self) -> None:
        ints = ("k", "num_samples", "num_vectors", "dim", "depth", "num_heads", "ffn_dim", "epochs",
                "batch_size", "folds")
        for name in ints:
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive int; got {value!r}")
        if not 1 <= self.k <= self.num_vectors:
            raise ValueError(f"k must be in [1, num_vectors={self.num_vectors}]; got {self.k}")
        if self.dim % self.num_heads:
            raise ValueError(f"num_heads={self.num_heads} must divide dim={self.dim}")
        if not 0 < self.test_fraction < 0.5:
            raise ValueError(f"test_fraction must be in (0, 0.5); got {self.test_fraction}")
        if not self.lr > 0:
            raise ValueError(f"lr must be > 0; got {self.lr}")
        if not self.init_std > 0:
            raise ValueError(f"init_std must be > 0; got {self.init_std}")
        if not 0 <= self.dropout < 1:
            raise ValueError(f"dropout must be in [0, 1); got {self.dropout}")
        if self.pooler == "cls":  # before 0.2 'cls' meant the learned token here, 'first' elsewhere
            warnings.warn("pooler 'cls' in the kNN task is deprecated: it names the learned CLS "
                          f"token, now {CLS_TOKEN!r} (the registry's 'cls' is 'first')",
                          DeprecationWarning, stacklevel=3)
            object.__setattr__(self, "pooler", CLS_TOKEN)
        if self.pooler != CLS_TOKEN and self.pooler not in list_poolers(aliases=True):
            raise ValueError(f"unknown pooler {self.pooler!r}; use {CLS_TOKEN!r} (a learned CLS token) "
                             f"or one of: {', '.join(list_poolers())}")
        if not (self.device in ("auto", "cpu", "cuda", "mps") or self.device.startswith("cuda:")):
            raise ValueError(f"device must be 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps'; got {self.device!r}")
        check_cls_marker(self.cls_marker)
        steps = self.warmup_steps
        if not isinstance(steps, int) or isinstance(steps, bool) or steps < 0:
            raise ValueError(f"warmup_steps must be an int >= 0; got {steps!r}")
        std = self.marker_std
        if std is not None and (not isinstance(std, (int, float)) or isinstance(std, bool) or not std > 0):
            raise ValueError(f"marker_std must be a number > 0 or None; got {self.marker_std!r}")
        for name in ("fresh_data", "test_every_epoch", "resume"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name} must be True or False; got {getattr(self, name)!r}")
        if self.num_samples < 10:
            raise ValueError(f"num_samples must be >= 10 to split train/val/test; got {self.num_samples}")

    @property
    def snr(self) -> float:
        return min(self.k, self.num_vectors) / self.num_vectors

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _splits(cfg: KNNConfig) -> tuple[slice, slice, slice]:
    n = cfg.num_samples
    n_test = max(1, round(n * cfg.test_fraction))
    rest = n - n_test
    if cfg.folds == 1:
        n_val = max(1, rest // 9)  # 10% of the whole set when test is 10%
        return slice(0, rest - n_val), slice(rest - n_val, rest), slice(rest, n)
    fold, size = cfg.seed % cfg.folds, rest // cfg.folds
    return slice(0, rest), slice(fold * size, (fold + 1) * size), slice(rest, n)


def _evaluate(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, batch: int,
              dev: torch.device) -> float:
    model.eval()
    total = 0.0
    with torch.no_grad():
        for i in range(0, len(x), batch):
            xb, yb = x[i:i + batch].to(dev), y[i:i + batch].to(dev)
            total += float(F.mse_loss(model(xb), yb, reduction="sum"))
    return total / y.numel()


def fresh_seed(data_seed: int, epoch: int) -> int:
    """The generator seed of epoch ``epoch``'s fresh training sets (``fresh_data``): far from
    the small seeds runs use for their fixed data, and different for every epoch."""
    return 1_000_000 * epoch + data_seed


def warmup_factor(step: int, steps: int) -> float:
    """Learning-rate factor after ``step`` optimiser steps of a linear warm-up over ``steps``."""
    return min(1.0, (step + 1) / steps)


def train_flops_per_sample(cfg: KNNConfig) -> float:
    """Approximate training FLOPs of one sample (the encoder only): per layer and token the
    Q/K/V/output projections (4 d^2 multiply-adds), attention scores and weighted sums (2 n d)
    and the FFN (2 d f); 2 FLOPs per multiply-add, backward twice the forward."""
    n = cfg.num_vectors + (1 if cfg.pooler == CLS_TOKEN else 0)
    macs = cfg.depth * n * (4 * cfg.dim ** 2 + 2 * n * cfg.dim + 2 * cfg.dim * cfg.ffn_dim)
    return 6.0 * macs


def _fits_on_device(dev: torch.device, *tensors: torch.Tensor) -> bool:
    """Whether the data takes at most half of the device's free memory (the paper's 1M sets
    are 8.2 GB: on an 80-141 GB GPU they fit, and the model needs little)."""
    free, _ = torch.cuda.mem_get_info(dev)
    return sum(t.numel() * t.element_size() for t in tensors) <= free // 2


def checkpoint_path(cfg: KNNConfig) -> Path:
    """Where a ``resume`` run keeps its checkpoint: keyed by the whole config (the device
    aside, so a run may move between machines)."""
    blob = json.dumps({**cfg.to_dict(), "device": ""}, sort_keys=True, default=str)
    return cache_root() / "checkpoints" / f"adapool-knn-{hashlib.sha256(blob.encode()).hexdigest()[:20]}.pt"


def run_knn(cfg: KNNConfig, progress: Progress | None = None) -> dict[str, Any]:
    """Train on the training split, keep the checkpoint with the best validation loss and
    report its test signal loss (MSE to the k-NN centroid), plus both baselines."""
    x, y = knn_centroid(cfg.num_samples, cfg.k, cfg.num_vectors, cfg.dim, cfg.data_seed)
    train, val, test = _splits(cfg)
    if cfg.folds > 1:  # the validation fold is cut out of the training part
        keep = torch.ones(len(x), dtype=torch.bool)
        keep[val] = False
        keep[test] = False
        x_train, y_train = x[keep], y[keep]
    else:
        x_train, y_train = x[train], y[train]
    x_val, y_val, x_test, y_test = x[val], y[val], x[test], y[test]

    dev = pick_device(cfg.device)
    on_device = dev.type == "cuda" and _fits_on_device(dev, x_train, x_val, x_test)
    if on_device:  # one copy, then batches are gathered on the GPU (no host work per step)
        x_train, y_train, x_val, y_val, x_test, y_test = (
            t.to(dev) for t in (x_train, y_train, x_val, y_val, x_test, y_test))
    torch.manual_seed(cfg.seed)
    model = KNNCentroidModel(cfg.dim, cfg.depth, cfg.num_heads, cfg.ffn_dim, cfg.pooler,
                             cfg.pooler_kwargs, cfg.dropout, cfg.init_std, cls_marker=cfg.cls_marker,
                             marker_std=cfg.marker_std).to(dev)
    gen = torch.Generator().manual_seed(cfg.seed)
    train = {"x": x_train, "y": y_train, "epoch": 0}

    def resumed(epoch: int) -> None:  # the next epoch draws its own fresh sets, as uninterrupted
        train["epoch"] = epoch

    def batches() -> Iterator[torch.Tensor]:
        train["epoch"] += 1
        if cfg.fresh_data and train["epoch"] > 1:  # new sets, as many, from a seed of their own
            xs, ys = knn_centroid(len(train["x"]), cfg.k, cfg.num_vectors, cfg.dim,
                                  fresh_seed(cfg.data_seed, train["epoch"]), cache=False)
            train["x"], train["y"] = (xs.to(dev), ys.to(dev)) if on_device else (xs, ys)
        return iter_rows(len(train["x"]), cfg.batch_size, gen)

    def loss_of(idx: torch.Tensor) -> tuple[torch.Tensor, int]:
        xb, yb = train["x"][idx].to(dev, non_blocking=True), train["y"][idx].to(dev, non_blocking=True)
        return F.mse_loss(model(xb), yb), len(idx)

    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    scheduler = None
    if cfg.warmup_steps:
        schedule = partial(warmup_factor, steps=cfg.warmup_steps)
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
    def test_row() -> dict[str, float]:
        return {"test_loss": _evaluate(model, x_test, y_test, 2 * cfg.batch_size, dev),
                "sample_gradients": len(x_train) * train["epoch"]}

    result = fit(model, optimizer, cfg.epochs, batches, loss_of,
                 lambda: _evaluate(model, x_val, y_val, 2 * cfg.batch_size, dev), progress=progress,
                 scheduler=scheduler, timed=True, extra=test_row if cfg.test_every_epoch else None,
                 checkpoint=checkpoint_path(cfg) if cfg.resume else None, generator=gen, on_resume=resumed)
    test_loss = _evaluate(model, x_test, y_test, 2 * cfg.batch_size, dev)
    base = knn_baselines(x_test, y_test)
    return {
        "metrics": {
            "test_signal_loss": test_loss, "best_val_loss": result.best_score,
            "best_epoch": result.best_epoch,
            "baseline_centroid": base["centroid"], "baseline_query": base["query"],
            "snr": cfg.snr, "train_samples_per_s": len(x_train) * cfg.epochs / max(result.train_s, 1e-9),
            "parameters": sum(p.numel() for p in model.parameters()), "device": str(dev),
            "data_on_device": on_device, "sample_gradients": len(x_train) * cfg.epochs,
            "train_flops": len(x_train) * cfg.epochs * train_flops_per_sample(cfg),
        },
        "history": result.history,
    }


register_task("adapool-knn", KNNConfig, run_knn,
              "kNN-Centroid regression (AdaPool paper): signal loss against SNR = k/N")
