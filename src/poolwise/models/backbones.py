"""The project's own small backbones for the frozen-backbone benchmarks: a ViT for digits,
a patch transformer for time series and a word-level causal language model.

Each is a thin stem (patches or words to tokens, plus positions) over PyTorch's
``nn.TransformerEncoder`` (pre-LN, GELU, final LayerNorm). ``forward`` returns the token
outputs ``(B, N, D)`` and the keep-mask ``(B, N)``, the input every pooler takes. They are
built from a JSON-safe config so a checkpoint is ``config.json`` plus ``model.safetensors``.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn


@dataclass(frozen=True)
class BackboneConfig:
    """Shape of an encoder. ``kind`` is ``"vit"``, ``"patch_ts"`` or ``"causal_lm"``;
    ``in_dim`` is a patch's pixel count (vit), channels x patch_len (patch_ts) or the
    vocabulary size (causal_lm)."""

    kind: str
    in_dim: int
    dim: int = 64
    depth: int = 3
    num_heads: int = 4
    ffn_ratio: float = 2.0
    patch: int = 4
    max_len: int = 512
    out_dim: int = 0  # size of the pretraining head (classes, patch size, vocabulary)

    def __post_init__(self) -> None:
        if self.kind not in ("vit", "patch_ts", "causal_lm"):
            raise ValueError(f"kind must be 'vit', 'patch_ts' or 'causal_lm'; got {self.kind!r}")
        for name in ("in_dim", "dim", "depth", "num_heads", "patch", "max_len"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive int; got {value!r}")
        if self.dim % self.num_heads:
            raise ValueError(f"num_heads={self.num_heads} must divide dim={self.dim}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def sincos(positions: Tensor, dim: int) -> Tensor:
    """Transformer sinusoids for (possibly fractional) positions: ``(..., dim)``."""
    half = dim // 2
    freq = torch.exp(-math.log(10_000.0) * torch.arange(half, dtype=torch.float32) / half)
    angle = positions.float()[..., None] * freq
    return torch.cat([angle.sin(), angle.cos()], dim=-1)


def sincos_2d(rows: int, cols: int, dim: int) -> Tensor:
    """2D sinusoids for a ``rows x cols`` patch grid (half the channels per axis): ``(rows*cols, dim)``.
    Fixed, so a grid larger than the pretraining one still gets meaningful positions."""
    r, c = torch.meshgrid(torch.arange(rows), torch.arange(cols), indexing="ij")
    return torch.cat([sincos(r.flatten(), dim // 2), sincos(c.flatten(), dim // 2)], dim=-1)


class Backbone(nn.Module):
    """Stem + pre-LN ``nn.TransformerEncoder`` + final LayerNorm, with a pretraining head."""

    def __init__(self, cfg: BackboneConfig) -> None:
        super().__init__()
        self.cfg = cfg
        d = cfg.dim
        if cfg.kind == "causal_lm":
            self.embed = nn.Embedding(cfg.in_dim, d)
            self.pos = nn.Parameter(torch.zeros(cfg.max_len, d))
            nn.init.normal_(self.pos, std=0.02)
        else:
            self.embed = nn.Linear(cfg.in_dim, d)
        if cfg.kind == "vit":
            self.cls = nn.Parameter(torch.zeros(1, 1, d))
        if cfg.kind == "patch_ts":
            self.mask_token = nn.Parameter(torch.zeros(d))
        layer = nn.TransformerEncoderLayer(
            d,
            cfg.num_heads,
            int(cfg.ffn_ratio * d),
            dropout=0.0,
            activation="gelu",
            batch_first=True,
            norm_first=True,
        )
        self.encoder = nn.TransformerEncoder(layer, cfg.depth, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(d)
        self.head = nn.Linear(d, cfg.out_dim) if cfg.out_dim else None

    @property
    def dim(self) -> int:
        return self.cfg.dim

    def forward(
        self, inputs: Tensor, mask: Tensor | None = None, hide: Tensor | None = None
    ) -> tuple[Tensor, Tensor]:
        """``inputs``: images ``(B, H, W)`` (vit), patches ``(B, N, C*P)`` (patch_ts) or word
        ids ``(B, N)`` (causal_lm); ``mask`` ``(B, N)`` marks real patches or words;
        ``hide`` ``(B, N)`` replaces patches by the mask token (masked-patch pretraining).
        Returns ``(tokens (B, N', D), keep-mask (B, N'))``; the ViT prepends its CLS token."""
        kind = self.cfg.kind
        if kind == "vit":
            x, mask = self._patchify(inputs)
        elif kind == "patch_ts":
            x = self.embed(inputs)
            if hide is not None:
                x = torch.where(hide[..., None], self.mask_token.to(x.dtype), x)
            x = x + sincos(torch.arange(x.shape[1]), self.dim).to(x)
        else:
            if inputs.shape[1] > self.cfg.max_len:
                raise ValueError(f"sequence of {inputs.shape[1]} words exceeds max_len={self.cfg.max_len}")
            x = self.embed(inputs) + self.pos[: inputs.shape[1]]
        if mask is None:
            mask = torch.ones(x.shape[:2], dtype=torch.bool, device=x.device)
        causal = None
        if kind == "causal_lm":
            causal = nn.Transformer.generate_square_subsequent_mask(x.shape[1], device=x.device)
        # causal LMs pad on the right, so the causal mask alone keeps words off the padding
        pad = None if causal is not None or bool(mask.all()) else ~mask
        h = self.encoder(x, mask=causal, src_key_padding_mask=pad, is_causal=causal is not None)
        return self.norm(h), mask

    def _patchify(self, images: Tensor) -> tuple[Tensor, Tensor]:
        b, h, w = images.shape
        p = self.cfg.patch
        if h % p or w % p:
            raise ValueError(f"image side {h}x{w} is not a multiple of the patch size {p}")
        patches = images.unfold(1, p, p).unfold(2, p, p).reshape(b, (h // p) * (w // p), p * p)
        x = self.embed(patches) + sincos_2d(h // p, w // p, self.dim).to(images)
        x = torch.cat([self.cls.expand(b, -1, -1).to(x.dtype), x], dim=1)
        return x, torch.ones(x.shape[:2], dtype=torch.bool, device=x.device)

    def pretrain_loss(
        self, inputs: Tensor, target: Tensor, mask: Tensor | None = None, hide: Tensor | None = None
    ) -> Tensor:
        """vit: cross-entropy of the CLS token on the class; patch_ts: MSE of the hidden
        patches' reconstruction; causal_lm: next-word cross-entropy on real words."""
        if self.head is None:
            raise ValueError("this backbone has no pretraining head (out_dim=0)")
        tokens, keep = self(inputs, mask, hide)
        if self.cfg.kind == "vit":
            return F.cross_entropy(self.head(tokens[:, 0]), target)
        if self.cfg.kind == "patch_ts":
            sel = hide & keep
            return F.mse_loss(self.head(tokens[sel]), target[sel])
        logits = self.head(tokens[:, :-1][keep[:, 1:]])
        return F.cross_entropy(logits, target[:, 1:][keep[:, 1:]])
