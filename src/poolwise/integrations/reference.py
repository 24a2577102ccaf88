"""Independent references for ``verify`` and ``export``: the model's own forward pass and
pooling written without :mod:`poolwise.pooling`.

* :func:`own_forward_tokens`: each text alone (a batch of one, no padding at all) through the
  Hugging Face model's own ``forward``, with no ``position_ids``: what the model computes
  when nothing about padding or positions can go wrong.
* :func:`reference_pool`: the parameter-free poolings as plain float64 loops over a row's
  real tokens; a learned pooler is run in float64 on the unpadded row (so its backbone part
  is still independent of the pipeline under test).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor


def _weighted(rows: Tensor, weights: Tensor) -> Tensor:
    return (rows * weights[:, None]).sum(0)


def _positional(rows: Tensor) -> Tensor:
    n = len(rows)
    return _weighted(rows, torch.arange(1, n + 1, dtype=rows.dtype)) / (n * (n + 1) / 2)


#: poolwise name -> float64 function of one row's real tokens ``(n, D)``
REFERENCE: dict[str, Callable[[Tensor], Tensor]] = {
    "first": lambda r: r[0],
    "last": lambda r: r[-1],
    "mean": lambda r: r.sum(0) / len(r),
    "sum": lambda r: r.sum(0),
    "max": lambda r: r.max(0).values,
    "min": lambda r: r.min(0).values,
    "mean_sqrt_len": lambda r: r.sum(0) / len(r) ** 0.5,
    "weighted_mean": _positional,
}


def own_forward_tokens(model: Any, tokenizer: Any, texts: Sequence[str], max_length: int) -> list[Tensor]:
    """Last hidden states of each text alone ``[(n_i, D)]`` (fp32, CPU): the model's own
    forward on a batch of one, no padding, no ``position_ids``."""
    device = next(model.parameters()).device
    out = []
    with torch.no_grad():
        for text in texts:
            b = tokenizer([text], truncation=True, max_length=max_length, return_tensors="pt")
            h = model(input_ids=b["input_ids"].to(device),
                      attention_mask=b["attention_mask"].to(device)).last_hidden_state
            out.append(h[0].float().cpu())
    return out


def reference_pool(pooler: Any, rows: Sequence[Tensor]) -> tuple[Tensor, str]:
    """``(embeddings (B, D) float64, how)``: ``pooler`` (a poolwise pooler or its name)
    applied to each row's real tokens by :data:`REFERENCE`, or, for a pooler it does not
    cover, by a float64 copy of the pooler on the unpadded row."""
    name = pooler if isinstance(pooler, str) else pooler.name
    if name in REFERENCE:
        fn = REFERENCE[name]
        return torch.stack([fn(r.double()) for r in rows]), f"reference {name} (float64, written apart)"
    if name == "multi" and getattr(pooler, "combine", None) == "cat" and all(
            m.name in REFERENCE for m in pooler.members):
        parts = [reference_pool(m.name, rows)[0] for m in pooler.members]
        return torch.cat(parts, -1), "reference " + "+".join(m.name for m in pooler.members) + " (float64)"
    if isinstance(pooler, str):
        raise ValueError(f"no reference for pooling {name!r}; have {sorted(REFERENCE)}")
    twin = copy.deepcopy(pooler).double().eval()
    with torch.no_grad():
        out = torch.cat([twin(r.double()[None]) for r in rows])
    return out, f"poolwise {name} in float64 on each unpadded row"
