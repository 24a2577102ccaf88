"""Helpers shared by the integrations (no third-party imports here)."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from ..pooling import Pooler, resolve_pooler

#: sentence-transformers pooling modes and the poolwise pooler that computes each
ST_MODES = {"cls": "first", "max": "max", "mean": "mean", "mean_sqrt_len_tokens": "mean_sqrt_len",
            "weightedmean": "weighted_mean", "lasttoken": "last"}


def _build(spec: str | dict | list | Pooler, dim: int, kwargs: dict[str, Any]) -> Pooler:
    """A pooler from a poolwise or sentence-transformers mode name, a list, a config dict or an
    instance; ``dim`` is filled in for learned poolers."""
    if isinstance(spec, Pooler):
        if kwargs:
            raise TypeError(f"got a ready pooler and extra arguments {sorted(kwargs)}")
        return spec
    if isinstance(spec, (list, tuple)):
        spec = {"name": "multi", "poolers": [ST_MODES.get(n, n) if isinstance(n, str) else n for n in spec]}
    cfg = dict(spec) if isinstance(spec, dict) else {"name": ST_MODES.get(spec, spec)}
    return resolve_pooler({**cfg, **kwargs}, dim)


def exclude_prompt(mask: Tensor, prompt_length: int | Tensor) -> Tensor:
    """A new mask without the first ``prompt_length`` real tokens of each row (any padding
    side); the caller's mask is never modified."""
    pl = torch.as_tensor(prompt_length, device=mask.device).reshape(-1, 1)
    rank = torch.cumsum(mask.long(), 1)
    return mask.bool() & (rank > pl)
