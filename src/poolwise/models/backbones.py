"""The project's own small backbones for the frozen-backbone benchmarks: a ViT for digits,
a patch transformer for time series, a word-level masked-language encoder and a word-level
causal language model.

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

KINDS = ("vit", "patch_ts", "mlm", "causal_lm")


@dataclass(frozen=True)
class BackboneConfig:
    """Shape of an encoder. ``kind`` is ``"vit"``, ``"patch_ts"``, ``"mlm"`` (bidirectional
    word encoder) or ``"causal_lm"``; ``in_dim`` is a patch's pixel count (vit), channels x
    patch_len (patch_ts) or the vocabulary size (mlm, causal_lm). ``objective`` is the ViT's
    pretraining task: ``"classify"`` (through its CLS token) or ``"mim"`` (masked patches)."""

    kind: str
    in_dim: int
    dim: int = 64
    depth: int = 3
    num_heads: int = 4
    ffn_ratio: float = 2.0
    patch: int = 4
    max_len: int = 512
    out_dim: int = 0  # size of the pretraining head (classes, patch size, vocabulary)
    objective: str = "classify"  # vit only: "classify" or "mim"

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"kind must be one of {', '.join(map(repr, KINDS))}; got {self.kind!r}")
        if self.objective not in ("classify", "mim"):
            raise ValueError(f"objective must be 'classify' or 'mim'; got {self.objective!r}")
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


def image_patches(images: Tensor, patch: int) -> Tensor:
    """``(B, H, W)`` images as ``(B, N, patch*patch)`` patches, row by row."""
    b, h, w = images.shape
    if h % patch or w % patch:
        raise ValueError(f"image side {h}x{w} is not a multiple of the patch size {patch}")
    return images.unfold(1, patch, patch).unfold(2, patch, patch).reshape(b, (h // patch) * (w // patch), -1)


class Backbone(nn.Module):
    """Stem + pre-LN ``nn.TransformerEncoder`` + final LayerNorm, with a pretraining head."""

    def __init__(self, cfg: BackboneConfig) -> None:
        super().__init__()
        self.cfg = cfg
        d = cfg.dim
        if cfg.kind in ("causal_lm", "mlm"):
            self.embed = nn.Embedding(cfg.in_dim, d)
            self.pos = nn.Parameter(torch.zeros(cfg.max_len, d))
            nn.init.normal_(self.pos, std=0.02)
        else:
            self.embed = nn.Linear(cfg.in_dim, d)
        if cfg.kind in ("vit", "mlm"):  # a CLS token that no pretraining loss reads directly
            self.cls = nn.Parameter(torch.zeros(1, 1, d))
        if self.masks_inputs:
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

    @property
    def masks_inputs(self) -> bool:
        """Pretrained by hiding inputs (patches or words) behind a learned mask token."""
        return self.cfg.kind in ("patch_ts", "mlm") or self.cfg.objective == "mim"

    def forward(
        self, inputs: Tensor, mask: Tensor | None = None, hide: Tensor | None = None
    ) -> tuple[Tensor, Tensor]:
        """``inputs``: images ``(B, H, W)`` (vit), patches ``(B, N, C*P)`` (patch_ts) or word
        ids ``(B, N)`` (mlm, causal_lm); ``mask`` ``(B, N)`` marks real patches or words;
        ``hide`` ``(B, N)`` replaces patches or words by the mask token (masked pretraining;
        ``N`` counts patches or words, not the CLS token).
        Returns ``(tokens (B, N', D), keep-mask (B, N'))``; the ViT and the masked-word
        encoder prepend their CLS token (``N' = N + 1``)."""
        kind = self.cfg.kind
        if hide is not None and not self.masks_inputs:
            raise ValueError(f"this {kind} backbone was not built for masked pretraining (hide=...)")
        if kind == "vit":
            x, mask = self._patchify(inputs, hide)
        elif kind == "patch_ts":
            x = self._hide(self.embed(inputs), hide)
            x = x + sincos(torch.arange(x.shape[1]), self.dim).to(x)
        else:
            if inputs.shape[1] > self.cfg.max_len:
                raise ValueError(f"sequence of {inputs.shape[1]} words exceeds max_len={self.cfg.max_len}")
            x = self._hide(self.embed(inputs), hide) + self.pos[: inputs.shape[1]]
        return self._encode(x, mask)

    def encode_embedded(self, words: Tensor, mask: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """A text backbone (mlm, causal_lm) from word embeddings ``(B, N, D)`` (``self.embed``
        of the ids, before positions): what :meth:`forward` does after its embedding lookup, for
        probes that perturb or extend the embeddings. Returns what :meth:`forward` returns."""
        if self.cfg.kind not in ("mlm", "causal_lm"):
            raise ValueError(f"encode_embedded needs a text backbone; this one is {self.cfg.kind}")
        if words.shape[1] > self.cfg.max_len:
            raise ValueError(f"sequence of {words.shape[1]} words exceeds max_len={self.cfg.max_len}")
        return self._encode(words + self.pos[: words.shape[1]], mask)

    def _encode(self, x: Tensor, mask: Tensor | None) -> tuple[Tensor, Tensor]:
        kind = self.cfg.kind
        if mask is None:
            mask = torch.ones(x.shape[:2], dtype=torch.bool, device=x.device)
        if kind == "mlm":
            x, mask = self._prepend_cls(x, mask)
        causal = None
        if kind == "causal_lm":
            causal = nn.Transformer.generate_square_subsequent_mask(x.shape[1], device=x.device)
        # causal LMs pad on the right, so the causal mask alone keeps words off the padding
        pad = None if causal is not None or bool(mask.all()) else ~mask
        h = self.encoder(x, mask=causal, src_key_padding_mask=pad, is_causal=causal is not None)
        return self.norm(h), mask

    def _hide(self, x: Tensor, hide: Tensor | None) -> Tensor:
        return x if hide is None else torch.where(hide[..., None], self.mask_token.to(x.dtype), x)

    def _patchify(self, images: Tensor, hide: Tensor | None = None) -> tuple[Tensor, Tensor]:
        h, w = images.shape[1:]
        p = self.cfg.patch
        x = self._hide(self.embed(image_patches(images, p)), hide)
        x = x + sincos_2d(h // p, w // p, self.dim).to(images)
        return self._prepend_cls(x, torch.ones(x.shape[:2], dtype=torch.bool, device=x.device))

    def _prepend_cls(self, x: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        x = torch.cat([self.cls.expand(len(x), -1, -1).to(x.dtype), x], dim=1)
        return x, torch.cat([mask.new_ones(len(x), 1), mask], dim=1)

    def pretrain_loss(
        self, inputs: Tensor, target: Tensor, mask: Tensor | None = None, hide: Tensor | None = None
    ) -> Tensor:
        """vit: cross-entropy of the CLS token on the class, or (``objective="mim"``) MSE of
        the hidden patches' pixels; patch_ts: MSE of the hidden patches' reconstruction; mlm:
        cross-entropy of the hidden words; causal_lm: next-word cross-entropy on real words."""
        if self.head is None:
            raise ValueError("this backbone has no pretraining head (out_dim=0)")
        if self.masks_inputs and hide is None:
            raise ValueError("masked pretraining needs hide=(B, N) bool: the inputs to hide")
        tokens, keep = self(inputs, mask, hide)
        kind = self.cfg.kind
        if kind == "vit" and self.cfg.objective == "classify":
            return F.cross_entropy(self.head(tokens[:, 0]), target)
        if kind == "vit":  # target: the images' patches
            return F.mse_loss(self.head(tokens[:, 1:][hide]), target[hide])
        if kind == "mlm":
            tokens, keep = tokens[:, 1:], keep[:, 1:]
        if kind in ("patch_ts", "mlm"):
            sel = hide & keep
            out = self.head(tokens[sel])
            return F.mse_loss(out, target[sel]) if kind == "patch_ts" else F.cross_entropy(out, target[sel])
        logits = self.head(tokens[:, :-1][keep[:, 1:]])
        return F.cross_entropy(logits, target[:, 1:][keep[:, 1:]])
