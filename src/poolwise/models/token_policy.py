"""The AdaPool paper's RL body: entity tokens -> role embedding -> Linear + GELU -> tiny pre-LN
transformer (head dimension 1) -> pooler, one vector per observation."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..pooling import Pooler
from .encoder import PreLNEncoder
from .knn import CLS_TOKEN
from .vit import variant_pooler

#: the paper's sizes per environment (reference notes 3.1-3.3): dim, layers, heads, FFN, init std
PAPER_SIZES: dict[str, dict[str, Any]] = {
    "centroid": {"dim": 8, "depth": 3, "num_heads": 8, "ffn_dim": 32, "init_std": 0.2},
    "tag": {"dim": 3, "depth": 6, "num_heads": 3, "ffn_dim": 12, "init_std": 0.2},
    "boxworld": {"dim": 6, "depth": 6, "num_heads": 6, "ffn_dim": 24, "init_std": 0.02},
}


class TokenEncoder(nn.Module):
    """Encode a set of entity tokens into one vector.

    With ``roles=True`` (MPE) the last token feature is an integer role, looked up in a
    learned ``Embedding(num_roles, role_dim)`` and concatenated to the other features (the
    paper's ``EmbeddingConcatLayer``: 4 + 4 = 8 features); BoxWorld's 5 features go in as they
    are. Then ``Linear -> GELU``, a :class:`~poolwise.models.PreLNEncoder` with feed-forward
    dropout, and the pooler.

    Args:
        pooler: ``"adapool"`` (query = token ``query_index``, the agent's own token, with the
            encoder's heads and scale 1/sqrt(head dim) as in the paper's January 2025 code),
            ``"cls_token"`` (a learned token prepended before the encoder, read out at 0),
            or any registered pooler name.
        init_std: every Linear and Embedding weight ~ N(0, ``init_std``), biases 0 (the
            paper's ``weight_scale``: 0.2 for MPE, 0.02 for BoxWorld).
    """

    def __init__(self, token_dim: int = 5, dim: int = 3, depth: int = 6, num_heads: int = 3,
                 ffn_dim: int = 12, pooler: str = "adapool", pooler_kwargs: dict[str, Any] | None = None,
                 query_index: int = 0, roles: bool = True, num_roles: int = 4, role_dim: int = 4,
                 dropout: float = 0.1, init_std: float = 0.2) -> None:
        super().__init__()
        self.roles = roles
        self.dim = dim
        self.role_embedding = nn.Embedding(num_roles, role_dim) if roles else None
        in_dim = token_dim - 1 + role_dim if roles else token_dim
        self.input = nn.Linear(in_dim, dim)
        self.encoder = PreLNEncoder(dim, depth, num_heads, ffn_dim, dropout=dropout, init_std=init_std)
        self.cls: nn.Parameter | None = None
        kwargs = dict(pooler_kwargs or {})
        if pooler == CLS_TOKEN:
            self.cls = nn.Parameter(torch.rand(1, 1, dim))  # U[0, 1) as in the paper
            self.pool: Pooler = variant_pooler("first", dim, num_heads, grid=1)
        else:
            if pooler == "adapool":
                kwargs = {"query": query_index, "scale": "head_dim", **kwargs}
            self.pool = variant_pooler(pooler, dim, num_heads, grid=1, kwargs=kwargs)
        self.init_std = init_std
        for m in self.modules():
            if isinstance(m, (nn.Linear, nn.Embedding)):
                nn.init.normal_(m.weight, std=init_std)
                if getattr(m, "bias", None) is not None:
                    nn.init.zeros_(m.bias)

    def embed(self, tokens: Tensor) -> Tensor:
        """Token features before the encoder ``(B, N, dim)``."""
        if self.role_embedding is not None:
            role = tokens[..., -1].round().long().clamp_(0, self.role_embedding.num_embeddings - 1)
            tokens = torch.cat([tokens[..., :-1], self.role_embedding(role)], dim=-1)
        return F.gelu(self.input(tokens))

    def forward(self, tokens: Tensor) -> Tensor:
        if tokens.dim() != 3:
            raise ValueError(f"tokens must be (B, N, F); got shape {tuple(tokens.shape)}")
        h = self.embed(tokens)
        if self.cls is not None:
            h = torch.cat([self.cls.expand(h.shape[0], -1, -1), h], dim=1)
        return self.pool(self.encoder(h))
