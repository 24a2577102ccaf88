"""Helpers shared by the integrations (no third-party imports here)."""

from __future__ import annotations

import torch
from torch import Tensor


def exclude_prompt(mask: Tensor, prompt_length: int | Tensor) -> Tensor:
    """A new mask without the first ``prompt_length`` real tokens of each row (any padding
    side); the caller's mask is never modified."""
    pl = torch.as_tensor(prompt_length, device=mask.device).reshape(-1, 1)
    rank = torch.cumsum(mask.long(), 1)
    return mask.bool() & (rank > pl)
