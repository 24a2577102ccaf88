"""Builders shared by the pooling tests."""

from __future__ import annotations

import torch

import poolwise as pw

D = 8

#: constructor arguments that make every registered pooler buildable at width D
KWARGS: dict[str, dict] = {
    "adapool": {"dim": D, "num_heads": 2},
    "attention": {"dim": D, "num_heads": 2},
    "gated": {"dim": D},
    "latent_attention": {"dim": D, "num_latents": 6, "num_heads": 2},
    "wavg": {"max_len": 64},
    "multi": {"poolers": ["mean", "max", "adapool"], "dim": D},
}

ALL = pw.list_poolers()


def build(name: str, seed: int = 0, perturb: bool = True, **overrides) -> pw.Pooler:
    """A pooler in eval mode whose learned parameters are moved away from their (often
    symmetric) initial values, so position- and content-dependence is really exercised."""
    torch.manual_seed(seed)
    pooler = pw.get_pooler(name, **{**KWARGS.get(name, {}), **overrides})
    if perturb:
        gen = torch.Generator().manual_seed(seed + 1)
        with torch.no_grad():
            for p in pooler.parameters():
                p.add_(0.5 * torch.randn(p.shape, generator=gen, dtype=p.dtype))
    return pooler.eval()


def is_set_function(pooler: pw.Pooler) -> bool:
    return pooler.is_set_function


def layout(rows: list[torch.Tensor], length: int, positions: list[list[int]],
           pad_value: float = 99.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Place each row's real tokens at the given padded positions; fill the rest with a
    sentinel value that would show up in any result it leaked into."""
    d = rows[0].shape[-1] if rows else D
    x = torch.full((len(rows), length, d), pad_value)
    mask = torch.zeros(len(rows), length, dtype=torch.bool)
    for b, (r, pos) in enumerate(zip(rows, positions)):
        if len(pos):
            x[b, pos] = r
            mask[b, pos] = True
    return x, mask
