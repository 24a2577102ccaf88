"""From-scratch vision protocol of the AdaPool paper (its CIFAR ViT runs, section 3.4 of our
notes), with the image SNR as an axis: a ViT and its pooler are trained together, the
best-validation checkpoint is tested once."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from ..data.canvas import DATASETS, PLACEMENTS, fragments, image_snr, load_image_set, place_on_canvas
from ..models import CLS_TOKEN
from ..models.vit import ADAPOOL_QUERIES, VisionTransformer
from ..pooling import list_poolers
from .fit import Progress, fit, iter_rows, pick_device
from .registry import register_task

TASK = "adapool-vision"
CIFAR = ("cifar10", "cifar100")


def known_pooler(name: str) -> bool:
    """A ViT variant name: ``cls_token``, ``adapool-<query>`` or a registered pooler."""
    return (name == CLS_TOKEN or name in list_poolers(aliases=True)
            or name in {f"adapool-{q}" for q in ADAPOOL_QUERIES})


@dataclass(frozen=True)
class VisionConfig:
    """One run. Defaults are the laptop model (4 layers, d=64) on MNIST-5k; the ``paper``
    preset sets the paper's (6 layers, d=512, 8 heads, batch 512, 300 epochs, dropout 0.1).

    ``canvas`` 0 keeps the images' own size (SNR 1); a larger canvas hides the image among
    distractor fragments (:mod:`poolwise.data.canvas`). ``folds`` > 1 validates on the
    contiguous fold ``seed % folds`` of the training set, as the paper's 5-fold protocol."""

    dataset: str = "mnist5k"
    pooler: str = "adapool-focal"
    seed: int = 0
    canvas: int = 0
    placement: str = "centre"
    density: float = 0.5
    patch: int = 14
    data_dir: str | None = None
    data_seed: int = 0
    dim: int = 64
    depth: int = 4
    num_heads: int = 4
    ffn_dim: int = 128
    dropout: float = 0.0
    emb_dropout: float = 0.0
    epochs: int = 15
    warmup_epochs: int = 2
    batch_size: int = 128
    lr: float = 1e-3
    weight_decay: float = 0.1
    clip_grad: float = 1.0
    augment: bool = True
    folds: int = 1
    val_fraction: float = 0.1
    pooler_kwargs: dict[str, Any] = field(default_factory=dict)
    device: str = "auto"
    precision: str = "fp32"  # "bf16": autocast forward passes to bfloat16 (weights and optimiser stay fp32)
    #: fields added later: they count in a run's key only when set, so older runs keep their keys
    key_optional: ClassVar[tuple[str, ...]] = ("precision",)

    def __post_init__(self) -> None:
        if self.precision not in ("fp32", "bf16"):
            raise ValueError(f"precision must be 'fp32' or 'bf16'; got {self.precision!r}")
        for name in ("patch", "dim", "depth", "num_heads", "ffn_dim", "epochs", "batch_size", "folds"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive int; got {value!r}")
        if not isinstance(self.canvas, int) or self.canvas < 0:
            raise ValueError("canvas must be 0 (the images' own size) or a side in pixels; "
                             f"got {self.canvas!r}")
        if not isinstance(self.warmup_epochs, int) or not 0 <= self.warmup_epochs <= self.epochs:
            raise ValueError(f"warmup_epochs must be an int in [0, epochs={self.epochs}]; "
                             f"got {self.warmup_epochs!r}")
        if self.dataset not in DATASETS:
            raise ValueError(f"dataset must be one of {', '.join(DATASETS)}; got {self.dataset!r}")
        if self.dataset in CIFAR and not self.data_dir:
            raise ValueError(f"dataset {self.dataset!r} needs data_dir (the folder of its binary release)")
        if self.placement not in PLACEMENTS:
            raise ValueError(f"placement must be one of {', '.join(PLACEMENTS)}; got {self.placement!r}")
        if not known_pooler(self.pooler):
            raise ValueError(f"unknown pooler {self.pooler!r}; use {CLS_TOKEN}, adapool-focal, adapool-mean, "
                             f"adapool-corner or one of: {', '.join(list_poolers())}")
        if self.dim % self.num_heads:
            raise ValueError(f"num_heads={self.num_heads} must divide dim={self.dim}")
        side = self.side
        if side % self.patch or self.image_size % self.patch or self.image_size < side:
            raise ValueError(f"patch={self.patch} must divide the image side {side} and the canvas "
                             f"{self.image_size} (canvas >= image side)")
        for name in ("dropout", "emb_dropout", "density"):
            if not 0 <= getattr(self, name) < (1.0001 if name == "density" else 1):
                raise ValueError(f"{name} must be in [0, 1); got {getattr(self, name)}")
        if not self.lr > 0 or not self.weight_decay >= 0 or not self.clip_grad > 0:
            raise ValueError("lr and clip_grad must be > 0 and weight_decay >= 0; got "
                             f"{self.lr}, {self.clip_grad}, {self.weight_decay}")
        if not 0 < self.val_fraction < 0.5:
            raise ValueError(f"val_fraction must be in (0, 0.5); got {self.val_fraction}")
        if not (self.device in ("auto", "cpu", "cuda", "mps") or self.device.startswith("cuda:")):
            raise ValueError(f"device must be 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps'; got {self.device!r}")

    @property
    def side(self) -> int:
        """Side of the dataset's own images."""
        return 32 if self.dataset in CIFAR else 28

    @property
    def image_size(self) -> int:
        """Side of the images the ViT sees: the canvas, or the images' own side."""
        return self.canvas or self.side

    @property
    def snr(self) -> float:
        """Fraction of the patches that carry the object."""
        return image_snr(self.side, self.image_size, self.patch)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass
class ImageData:
    """Normalised canvases ``(n, C, S, S)`` and labels of the three splits."""

    train_x: Tensor
    train_y: Tensor
    val_x: Tensor
    val_y: Tensor
    test_x: Tensor
    test_y: Tensor
    num_classes: int


def _split_train(n: int, cfg: VisionConfig) -> tuple[np.ndarray, np.ndarray]:
    # CIFAR keeps its official order (the paper's contiguous folds); the digit sets are sorted
    # by class, so they are shuffled by data_seed first
    order = np.arange(n) if cfg.dataset in CIFAR else np.random.default_rng(cfg.data_seed).permutation(n)
    if cfg.folds > 1:
        fold, size = cfg.seed % cfg.folds, n // cfg.folds
        val = order[fold * size:(fold + 1) * size]
        return np.setdiff1d(order, val, assume_unique=True), np.sort(val)
    n_val = max(1, round(n * cfg.val_fraction))
    return np.sort(order[:-n_val]), np.sort(order[-n_val:])


def prepare_data(cfg: VisionConfig) -> ImageData:
    """Load the set, split off validation, place every split on the canvas (seeded by
    ``data_seed``; distractors cut from training images only) and normalise per channel."""
    raw = load_image_set(cfg.dataset, cfg.data_dir, cfg.data_seed)
    train, val = _split_train(len(raw["train_y"]), cfg)
    parts = {"train": (raw["train_x"][train], raw["train_y"][train]),
             "val": (raw["train_x"][val], raw["train_y"][val]), "test": (raw["test_x"], raw["test_y"])}
    if cfg.image_size > cfg.side:
        pool = fragments(parts["train"][0], cfg.patch)
        parts = {name: (place_on_canvas(x, cfg.image_size, cfg.patch, cfg.placement, cfg.density, pool,
                                        seed=cfg.data_seed * 3 + i)[0], y)
                 for i, (name, (x, y)) in enumerate(parts.items())}
    if cfg.dataset in CIFAR:
        from ..data.cifar import STATS

        mean, std = (np.asarray(v, dtype=np.float32) for v in STATS[cfg.dataset])
    else:
        mean = parts["train"][0].mean(axis=(0, 2, 3))
        std = parts["train"][0].std(axis=(0, 2, 3))
    shape = (1, -1, 1, 1)
    out = {}
    for name, (x, y) in parts.items():
        out[f"{name}_x"] = torch.from_numpy((x - mean.reshape(shape)) / std.reshape(shape)).float()
        out[f"{name}_y"] = torch.from_numpy(np.asarray(y, dtype=np.int64))
    classes = int(max(int(raw["train_y"].max()), int(raw["test_y"].max())) + 1)
    return ImageData(**out, num_classes=classes)


def augment(x: Tensor, pad: int, flip: bool, generator: torch.Generator) -> Tensor:
    """RandomCrop(side, padding=``pad``, zero fill) and, with ``flip``, a horizontal flip with
    probability 1/2, drawn per image from ``generator`` (a CPU generator, whatever the device
    of ``x``, so a seed gives the same crops on every device)."""
    b, _, h, w = x.shape
    dev = x.device
    if pad:
        padded = F.pad(x, (pad, pad, pad, pad))
        dy, dx = torch.randint(0, 2 * pad + 1, (2, b), generator=generator).to(dev)
        c = x.shape[1]
        rows = (dy[:, None] + torch.arange(h, device=dev))[:, None, :, None].expand(b, c, h, w + 2 * pad)
        x = padded.gather(2, rows)
        cols = (dx[:, None] + torch.arange(w, device=dev))[:, None, None, :].expand(b, c, h, w)
        x = x.gather(3, cols)
    if flip:
        mirror = (torch.rand(b, generator=generator) < 0.5).to(dev)
        x = torch.where(mirror[:, None, None, None], x.flip(3), x)
    return x


def cosine_warmup(optimizer: torch.optim.Optimizer, warmup: int,
                  total: int) -> torch.optim.lr_scheduler.LambdaLR:
    """Linear warm-up over ``warmup`` steps, then cosine decay to 0 at ``total`` steps
    (transformers' ``get_cosine_schedule_with_warmup``)."""

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = (step - warmup) / max(1, total - warmup)
        return max(0.0, 0.5 * (1.0 + math.cos(math.pi * progress)))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def _autocast(cfg: VisionConfig, dev: torch.device) -> torch.autocast:
    return torch.autocast(dev.type, dtype=torch.bfloat16, enabled=cfg.precision == "bf16")


def _accuracy(model: torch.nn.Module, x: Tensor, y: Tensor, batch: int, dev: torch.device,
              cast: torch.autocast) -> float:
    model.eval()
    correct = 0
    with torch.no_grad(), cast:
        for i in range(0, len(x), batch):
            correct += int((model(x[i:i + batch].to(dev)).argmax(-1) == y[i:i + batch].to(dev)).sum())
    return correct / len(y)


def run_vision(cfg: VisionConfig, progress: Progress | None = None) -> dict[str, Any]:
    """Train ViT + pooler with AdamW, cosine warm-up and gradient clipping; keep the best
    validation accuracy's weights; report their test accuracy."""
    data = prepare_data(cfg)
    dev = pick_device(cfg.device)
    if dev.type == "cuda":  # the whole set fits (CIFAR: 0.7 GB); crops then run on the GPU too
        for name in ("train_x", "train_y", "val_x", "val_y", "test_x", "test_y"):
            setattr(data, name, getattr(data, name).to(dev))
    torch.manual_seed(cfg.seed)
    model = VisionTransformer(cfg.image_size, cfg.patch, data.num_classes, data.train_x.shape[1], cfg.dim,
                              cfg.depth, cfg.num_heads, cfg.ffn_dim, cfg.dropout, cfg.emb_dropout,
                              cfg.pooler, cfg.pooler_kwargs).to(dev)
    gen = torch.Generator().manual_seed(cfg.seed)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    steps = math.ceil(len(data.train_y) / cfg.batch_size)
    sched = cosine_warmup(opt, cfg.warmup_epochs * steps, cfg.epochs * steps)
    cifar = cfg.dataset in CIFAR
    pad = (4 if cifar else 2) if cfg.augment else 0

    def loss_of(idx: Tensor) -> tuple[Tensor, int]:
        idx = idx.to(data.train_x.device)
        xb = data.train_x[idx]
        if cfg.augment:
            xb = augment(xb, pad, flip=cifar, generator=gen)
        with _autocast(cfg, dev):
            logits = model(xb.to(dev, non_blocking=True))
        return F.cross_entropy(logits.float(), data.train_y[idx].to(dev, non_blocking=True)), len(idx)

    def validate() -> float:
        return _accuracy(model, data.val_x, data.val_y, 2 * cfg.batch_size, dev, _autocast(cfg, dev))

    result = fit(model, opt, cfg.epochs, lambda: iter_rows(len(data.train_y), cfg.batch_size, gen), loss_of,
                 validate,
                 val_name="val_acc", higher_is_better=True, progress=progress, clip_grad_norm=cfg.clip_grad,
                 scheduler=sched, timed=True)
    test_acc = _accuracy(model, data.test_x, data.test_y, 2 * cfg.batch_size, dev, _autocast(cfg, dev))
    return {
        "metrics": {
            "test_acc": test_acc, "best_val_acc": result.best_score, "best_epoch": result.best_epoch,
            "snr": cfg.snr, "tokens": (cfg.image_size // cfg.patch) ** 2,
            "train_images": len(data.train_y), "test_images": len(data.test_y),
            "train_images_per_s": len(data.train_y) * cfg.epochs / max(result.train_s, 1e-9),
            "parameters": sum(p.numel() for p in model.parameters()), "device": str(dev),
        },
        "history": result.history,
    }


register_task(TASK, VisionConfig, run_vision,
              "ViT + pooler trained from scratch on images (AdaPool paper's vision runs) across image SNR")
