"""The AdaPool paper's vision transformer, trained from scratch with any pooler on top."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from ..pooling import Pooler, get_pooler
from .encoder import PreLNEncoder
from .knn import CLS_TOKEN

#: the paper's AdaPool queries: name -> (query, whether the paper adds the residual)
ADAPOOL_QUERIES = {"focal": "centre 2x2 patches, no residual", "mean": "all patches, no residual",
                   "corner": "patch 0 (top-left), with residual"}
#: the paper's six variants, in its table's order
PAPER_VARIANTS = ("cls_token", "mean", "max", "adapool-focal", "adapool-mean", "adapool-corner")


def focal_indices(grid: int) -> list[int]:
    """Row-major indices of the centre patches of a ``grid`` x ``grid`` patch grid: the 2x2
    block around the centre (one patch when ``grid`` is odd). ``grid=8`` gives the paper's
    27, 28, 35, 36."""
    rows = sorted({(grid - 1) // 2, grid // 2})
    return [r * grid + c for r in rows for c in rows]


def variant_pooler(name: str, dim: int, num_heads: int, grid: int, dropout: float = 0.0,
                   kwargs: dict[str, Any] | None = None) -> Pooler:
    """The pooler of a ViT variant: ``adapool-focal|mean|corner`` (the paper's three queries,
    with the encoder's heads and attention dropout) or any registered pooler name."""
    kwargs = dict(kwargs or {})
    if name.startswith("adapool-"):
        query_name = name.removeprefix("adapool-")
        queries: dict[str, Any] = {"focal": focal_indices(grid), "mean": "mean", "corner": 0}
        if query_name not in queries:
            raise ValueError(f"unknown AdaPool query {query_name!r} in {name!r}; expected "
                             f"adapool-{', adapool-'.join(ADAPOOL_QUERIES)}")
        kwargs = {"num_heads": num_heads, "dropout": dropout, **kwargs, "query": queries[query_name]}
        name = "adapool"
    elif name == "adapool":
        kwargs = {"num_heads": num_heads, "dropout": dropout, **kwargs}
    return get_pooler(name, defaults={"dim": dim}, **kwargs)


class VisionTransformer(nn.Module):
    """ViT of the AdaPool paper's CIFAR runs (after lucidrains' ``vit-pytorch``).

    Patches of ``patch`` x ``patch`` pixels → LayerNorm → Linear → LayerNorm, plus a learned
    positional embedding (~ N(0, 1)) and embedding dropout; a pre-LN encoder with dropout on
    attention weights, attention output and the feed-forward; a final LayerNorm; the pooler;
    LayerNorm → Linear head. Linear weights ~ N(0, 0.02), output projections
    N(0, 0.02 / sqrt(2 depth)). ``pooler="cls_token"`` prepends a learned token (U[0, 1)) *after*
    the positional embedding and reads it out; token order is row-major over the patch grid, so
    ``adapool-corner`` queries the top-left patch.

    Args:
        image_size: side of the (square) input images.
        pooler: ``cls_token``, ``adapool-focal``, ``adapool-mean``, ``adapool-corner``, any
            registered pooler name, or a :class:`Pooler` instance.
    """

    def __init__(self, image_size: int, patch: int, num_classes: int, channels: int = 3, dim: int = 512,
                 depth: int = 6, num_heads: int = 8, ffn_dim: int = 2048, dropout: float = 0.1,
                 emb_dropout: float = 0.1, pooler: str | Pooler = "mean",
                 pooler_kwargs: dict[str, Any] | None = None, init_std: float = 0.02) -> None:
        super().__init__()
        if image_size % patch:
            raise ValueError(f"patch={patch} must divide image_size={image_size}")
        self.patch, self.grid = patch, image_size // patch
        patch_dim = channels * patch * patch
        self.embed = nn.Sequential(nn.LayerNorm(patch_dim), nn.Linear(patch_dim, dim), nn.LayerNorm(dim))
        self.pos = nn.Parameter(torch.randn(1, self.grid**2, dim))
        self.emb_dropout = nn.Dropout(emb_dropout)
        self.encoder = PreLNEncoder(dim, depth, num_heads, ffn_dim, dropout, init_std, attn_dropout=dropout,
                                    ffn_dropout=dropout, scaled_out_init=True)
        self.norm = nn.LayerNorm(dim)
        self.cls: nn.Parameter | None = None
        if isinstance(pooler, Pooler):
            self.pool = pooler
        elif pooler == CLS_TOKEN:
            self.cls = nn.Parameter(torch.rand(1, 1, dim))
            self.pool = get_pooler("first")
        else:
            self.pool = variant_pooler(pooler, dim, num_heads, self.grid, dropout, pooler_kwargs)
        self.head = nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, num_classes))
        for m in [*self.embed, *self.pool.modules(), *self.head]:
            if isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, std=init_std)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    def patches(self, images: Tensor) -> Tensor:
        """``(B, C, H, W)`` → ``(B, N, p*p*C)``, patches row-major, pixels ``(p1 p2 c)``."""
        b, c, h, w = images.shape
        p = self.patch
        if h != w or h != self.grid * p:
            raise ValueError(f"images must be {self.grid * p}x{self.grid * p}; got {h}x{w}")
        x = images.reshape(b, c, self.grid, p, self.grid, p).permute(0, 2, 4, 3, 5, 1)
        return x.reshape(b, self.grid**2, p * p * c)

    def tokens(self, images: Tensor) -> Tensor:
        """Encoder outputs after the final norm, ``(B, N [+1 with the CLS token], dim)``."""
        x = self.embed(self.patches(images)) + self.pos
        if self.cls is not None:
            x = torch.cat([self.cls.expand(x.shape[0], -1, -1), x], dim=1)
        return self.norm(self.encoder(self.emb_dropout(x)))

    def forward(self, images: Tensor) -> Tensor:
        return self.head(self.pool(self.tokens(images)))
