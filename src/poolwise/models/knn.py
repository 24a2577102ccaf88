"""The kNN-Centroid model: query marker + pre-LN encoder + pooler, no in/out projection."""

from __future__ import annotations

import warnings
from typing import Any

import torch
from torch import Tensor, nn

from ..pooling import Pooler, get_pooler
from .encoder import PreLNEncoder

CLS_TOKEN = "cls_token"
"""Pooler name of the kNN model's learned, prepended CLS token (the paper's ClsToken)."""

CLS_MARKERS = ("query", "paper")
"""Where the learned CLS token's query marker goes: on the query vector, or (``"paper"``)
on the CLS token itself, as the paper's code did."""


def check_cls_marker(value: str) -> str:
    """``value`` if it is one of :data:`CLS_MARKERS`, else a ``ValueError`` naming them."""
    if value not in CLS_MARKERS:
        raise ValueError(f"cls_marker must be one of {', '.join(CLS_MARKERS)}; got {value!r}")
    return value


class KNNCentroidModel(nn.Module):
    """Predict the centroid of the k nearest neighbours of token 0 from the set of tokens.

    Token 0 (the query vector) gets learned marker embedding 0 and every other token marker
    1, so the encoder can tell the query apart (AdaPool paper, section 2.3 of our notes).
    ``pooler="cls_token"`` prepends a learned CLS token *after* the markers are added, so the
    marker lands on the query vector; the paper's code prepended first, which put the query
    marker on the CLS token and left the model unable to tell which vector is the query
    (``cls_marker="paper"`` reproduces that, to measure the difference).

    Args:
        pooler: a registered pooler name or a :class:`Pooler`; ``"cls_token"`` (:data:`CLS_TOKEN`)
            means a learned prepended token read out at position 0 (the registry's ``cls`` is
            an alias of ``first``: the first input token, no extra token).
        pooler_kwargs: constructor arguments; ``dim`` is filled in. ``adapool`` defaults to
            the paper's setting: query = token 0 (with residual), encoder heads, 1/sqrt(d_head).
        cls_marker: ``"query"`` (default) or ``"paper"``, see above; only the learned CLS
            token uses it.
        marker_std: the query/other marker embeddings' initial standard deviation (default:
            ``init_std``); a larger one tells the query apart more strongly from the start.
    """

    def __init__(self, dim: int = 16, depth: int = 12, num_heads: int = 8, ffn_dim: int = 64,
                 pooler: str | Pooler = "adapool", pooler_kwargs: dict[str, Any] | None = None,
                 dropout: float = 0.0, init_std: float = 0.02, *, cls_marker: str = "query",
                 marker_std: float | None = None) -> None:
        super().__init__()
        self.cls_marker = check_cls_marker(cls_marker)
        self.dim = dim
        self.marker = nn.Embedding(2, dim)
        self.encoder = PreLNEncoder(dim, depth, num_heads, ffn_dim, dropout, init_std)
        kwargs = dict(pooler_kwargs or {})
        if isinstance(pooler, str) and pooler == "cls":  # the name of the learned token before 0.2
            warnings.warn(f"pooler 'cls' of the kNN model is deprecated: use {CLS_TOKEN!r} for the "
                          "learned CLS token ('cls' is 'first' everywhere else)", DeprecationWarning,
                          stacklevel=2)
            pooler = CLS_TOKEN
        self.cls: nn.Parameter | None = None
        if isinstance(pooler, str) and pooler == CLS_TOKEN:
            self.cls = nn.Parameter(torch.rand(1, 1, dim))  # U[0, 1) as in the paper
            self.pool: Pooler = get_pooler("first")
        elif isinstance(pooler, Pooler):
            self.pool = pooler
        else:
            if pooler == "adapool":
                kwargs = {"query": 0, "num_heads": num_heads, "scale": "head_dim", **kwargs}
            self.pool = get_pooler(pooler, defaults={"dim": dim}, **kwargs)
        nn.init.normal_(self.marker.weight, std=init_std if marker_std is None else marker_std)
        for m in self.pool.modules():  # learned poolers get the model's init as well
            if isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, std=init_std)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    def _prepend_cls(self, h: Tensor) -> Tensor:
        return h if self.cls is None else torch.cat([self.cls.expand(h.shape[0], -1, -1), h], dim=1)

    def forward(self, x: Tensor) -> Tensor:
        h = self._prepend_cls(x) if self.cls_marker == "paper" else x  # markers after the CLS token
        marker = torch.ones(h.shape[1], dtype=torch.long, device=x.device)
        marker[0] = 0
        h = h + self.marker(marker)
        if self.cls_marker == "query":
            h = self._prepend_cls(h)
        return self.pool(self.encoder(h))

