"""Keeping the best epoch's weights in memory, shared by the training protocols."""

from __future__ import annotations

import torch


def snapshot(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """A detached copy of ``model``'s state, to restore the best epoch with ``load_state_dict``."""
    return {k: v.detach().clone() for k, v in model.state_dict().items()}
