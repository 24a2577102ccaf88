"""Helpers shared by the integrations (no third-party imports here)."""

from __future__ import annotations

import torch
from torch import Tensor

from ..pooling import Pooler

#: poolers whose sentence-transformers form reads ``token_weights_sum`` or keeps a prompt's positions
_ST_SEMANTICS = ("mean", "mean_sqrt_len", "weighted_mean")


def exclude_prompt(mask: Tensor, prompt_length: int | Tensor) -> Tensor:
    """A new mask without the first ``prompt_length`` real tokens of each row (any padding
    side); the caller's mask is never modified."""
    pl = torch.as_tensor(prompt_length, device=mask.device).reshape(-1, 1)
    rank = torch.cumsum(mask.long(), 1)
    return mask.bool() & (rank > pl)


def pool_like_st(pooler: Pooler, x: Tensor, mask: Tensor, prompt_length: int | Tensor | None = None,
                 token_weights_sum: Tensor | None = None) -> Tensor:
    """``pooler(x, mask)`` with sentence-transformers' semantics for what its ``Pooling``
    module reads beside the tokens, applied per member of a concatenating ``multi`` pooler:

    * ``prompt_length``: the first real tokens of each row are not pooled; ``weighted_mean``
      keeps the remaining tokens' original position weights (sentence-transformers 6.x);
    * ``token_weights_sum`` (from a ``WordWeights`` module, whose token vectors arrive
      already weighted): ``mean`` divides the sum by it, ``mean_sqrt_len`` by its square
      root and ``weighted_mean`` uses it as the weight sum, as sentence-transformers does.
    """
    mask = mask.bool()
    members = list(pooler.members) if pooler.name == "multi" and pooler.combine == "cat" else [pooler]
    special = token_weights_sum is not None or (
        prompt_length is not None and any(m.name == "weighted_mean" for m in members))
    kept = mask if prompt_length is None else exclude_prompt(mask, prompt_length)
    if not special:
        return pooler(x, kept)
    outs = [_st_member(m, x, mask, kept, token_weights_sum) if m.name in _ST_SEMANTICS else m(x, kept)
            for m in members]
    return outs[0] if len(outs) == 1 else torch.cat(outs, dim=-1)


def _st_member(pooler: Pooler, x: Tensor, mask: Tensor, kept: Tensor, tws: Tensor | None) -> Tensor:
    """One of ``_ST_SEMANTICS``: weights per token (fp32), then sum over the kept tokens."""
    acc = torch.float32 if x.dtype in (torch.float16, torch.bfloat16) else x.dtype
    if pooler.name == "weighted_mean":
        w = torch.cumsum(mask.long(), 1).to(acc) * kept  # rank in the whole row, prompt included
    else:
        w = kept.to(acc)
    total = torch.einsum("bn,bnd->bd", w, x.to(acc))
    denom = tws.to(acc).reshape(-1, 1) if tws is not None else w.sum(1, keepdim=True)
    denom = denom.sqrt() if pooler.name == "mean_sqrt_len" else denom
    out = total / denom.clamp_min(1e-9)
    empty = ~kept.any(1, keepdim=True)  # the empty-row policy of the pooler itself
    if pooler.empty == "raise" and bool(empty.any()):
        raise ValueError(f"{pooler.name}: a row has no real token (empty='raise')")
    fill = float("nan") if pooler.empty == "nan" else 0.0
    return torch.where(empty, torch.full_like(out, fill), out).to(x.dtype)
