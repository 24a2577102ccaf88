"""Several poolers applied to the same tokens and combined."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

from .base import Pooler
from .registry import get_pooler, register
from .validation import check_int

COMBINES = ("cat", "sum", "mean", "proj")


@register("multi")
class MultiPooling(Pooler):
    r"""Apply several poolers and combine their outputs (PyG's ``MultiAggregation``;
    sentence-transformers' multi-mode concatenation).

    .. math::
        y = \mathrm{combine}\big(P_1(X), \dots, P_K(X)\big),\qquad
        \mathrm{combine} \in \{\Vert,\ \textstyle\sum,\ \tfrac1K\sum,\ W[\,\Vert\,]\}

    ``"cat"`` gives ``K*D`` features in list order; ``"proj"`` concatenates and maps back to
    ``D`` with a learned linear layer (needs ``dim``). Learned members receive ``dim``.

    Args:
        poolers (list): names, config dicts or pooler instances.
        combine (str): ``"cat"``, ``"sum"``, ``"mean"`` or ``"proj"``. (default: ``"cat"``)
        dim (int, optional): token feature size, for learned members and ``"proj"``.
            (default: ``None``)
        empty (str): policy for rows with no real token. (default: ``"zero"``)
    """

    config_keys = ("poolers", "combine", "dim", "empty")

    def __init__(
        self, poolers: Sequence[Any], combine: str = "cat", dim: int | None = None, *,
        empty: str = "zero", device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__(empty=empty)
        if isinstance(poolers, (str, dict, Pooler)) or not isinstance(poolers, Sequence) or not poolers:
            raise ValueError(f"MultiPooling: poolers must be a non-empty list of names, config dicts "
                             f"or poolers; got {poolers!r}")
        if combine not in COMBINES:
            raise ValueError(f"MultiPooling: combine must be one of {COMBINES}; got {combine!r}")
        if dim is not None:
            check_int(dim, "dim", "MultiPooling")
        if combine == "proj" and dim is None:
            raise TypeError("MultiPooling: combine='proj' needs dim (the token feature size D)")
        self.combine, self.dim = combine, dim
        dd = {"device": device, "dtype": dtype}
        for spec in poolers:
            if not isinstance(spec, (str, Pooler)) and not (isinstance(spec, dict) and "name" in spec):
                raise ValueError(f"MultiPooling: each member must be a name, a config dict or a pooler; "
                                 f"got {spec!r}")
        self.members = nn.ModuleList(get_pooler(spec, defaults={"dim": dim, **dd}) for spec in poolers)
        self.is_set_function = all(m.is_set_function for m in self.members)
        self.proj = nn.Linear(len(self.members) * dim, dim, **dd) if combine == "proj" else None

    @property
    def poolers(self) -> list[dict[str, Any]]:
        return [m.config() for m in self.members]

    def extra_repr(self) -> str:
        names = [m.name for m in self.members]
        return f"poolers={names!r}, combine={self.combine!r}, dim={self.dim!r}, empty={self.empty!r}"

    def reset_parameters(self) -> None:
        for m in self.members:
            m.reset_parameters()
        if self.proj is not None:
            self.proj.reset_parameters()

    def output_dim(self, dim: int) -> int:
        if self.combine == "cat":
            return sum(m.output_dim(dim) for m in self.members)
        return dim

    def _pool(self, x: Tensor, mask: Tensor | None) -> Tensor:
        return self._combine([m(x, mask) for m in self.members])

    def _pool_packed(self, x: Tensor, cu_seqlens: Tensor) -> Tensor:
        return self._combine([m.packed(x, cu_seqlens) for m in self.members])

    def _combine(self, outs: list[Tensor]) -> Tensor:
        for m, out in zip(self.members, outs):
            if out.dim() != 2:
                raise ValueError(f"MultiPooling: member {m.name!r} returned shape {tuple(out.shape)};"
                                 f" members must return (B, D) (use flatten=True for several queries)")
        if self.combine == "cat":
            return torch.cat(outs, dim=-1)
        if self.combine == "proj":
            return self.proj(torch.cat(outs, dim=-1))
        total = torch.stack(outs).sum(0)
        return total / len(outs) if self.combine == "mean" else total

