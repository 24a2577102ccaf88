"""After pooling: a dense projection, Matryoshka truncation, L2 normalisation and quantisation,
in that order, as one module with a JSON config."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .validation import check_flag

QUANTIZE = (None, "int8", "binary")


class EmbeddingHead(nn.Module):
    r"""What an embedding pipeline does to a pooled vector, in the one order that keeps each
    step's promise: project → truncate → normalise → quantise.

    .. math::
        e = W y + b \;(\text{optional}),\quad
        e' = e_{1:k} \;(\text{Matryoshka truncation}),\quad
        \hat e = e' / \max(\lVert e' \rVert_2, \epsilon)

    Normalising *after* truncation is what makes truncated embeddings unit vectors again
    (Kusupati et al., *Matryoshka Representation Learning*, NeurIPS 2022); normalising first
    and truncating leaves norms below 1 and cosine scores off. A zero vector stays zero.

    Quantisation (optional) maps each coordinate to ``int8`` by a per-dimension range
    ``[lo, hi]``: :math:`q = \mathrm{round}(255 (e - lo) / (hi - lo)) - 128`, clamped to
    [-128, 127]. The range comes from :meth:`calibrate` (the minimum and maximum of each
    dimension over calibration embeddings, as sentence-transformers' ``quantize_embeddings``)
    or, when the head normalises and was not calibrated, is [-1, 1] (every coordinate of a
    unit vector lies there; coarser than a calibrated range). ``"binary"`` keeps the sign bit,
    :math:`e > 0`, packed 8 per ``uint8`` byte, most significant bit first (``numpy.packbits``
    order); the last byte is zero-padded.

    Args:
        dim (int): size of the pooled vectors.
        out_dim (int, optional): add a dense projection ``dim -> out_dim``.
        bias (bool): the projection's bias. (default: ``True``)
        truncate_dim (int, optional): keep the first ``truncate_dim`` coordinates.
        normalize (bool): L2-normalise after truncation. (default: ``True``)
        quantize (str, optional): ``"int8"`` or ``"binary"``.
    """

    def __init__(self, dim: int, *, out_dim: int | None = None, bias: bool = True,
                 truncate_dim: int | None = None, normalize: bool = True, quantize: str | None = None,
                 device: torch.device | str | None = None, dtype: torch.dtype | None = None) -> None:
        super().__init__()
        for name, value in (("dim", dim), ("out_dim", out_dim), ("truncate_dim", truncate_dim)):
            if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
                raise ValueError(f"EmbeddingHead: {name} must be a positive int; got {value!r}")
        width = out_dim or dim
        if truncate_dim is not None and truncate_dim > width:
            raise ValueError(f"EmbeddingHead: truncate_dim={truncate_dim} is larger than the "
                             f"embedding ({width} = {'out_dim' if out_dim else 'dim'})")
        if quantize not in QUANTIZE:
            raise ValueError(f"EmbeddingHead: quantize must be None, 'int8' or 'binary'; got {quantize!r}")
        self.dim, self.out_dim, self.truncate_dim, self.quantize = dim, out_dim, truncate_dim, quantize
        self.bias = check_flag(bias, "bias", "EmbeddingHead")
        self.normalize = check_flag(normalize, "normalize", "EmbeddingHead")
        dd = {"device": device, "dtype": dtype}
        self.proj = nn.Linear(dim, out_dim, bias=bias, **dd) if out_dim else None
        self.width = truncate_dim or width
        # the int8 range, per dimension; NaN until calibrated
        self.register_buffer("lo", torch.full((self.width,), float("nan"), device=device))
        self.register_buffer("hi", torch.full((self.width,), float("nan"), device=device))

    @property
    def calibrated(self) -> bool:
        return bool(torch.isfinite(self.lo).all())

    def embed(self, pooled: Tensor) -> Tensor:
        """The float embedding: projected, truncated and normalised (no quantisation)."""
        if pooled.shape[-1] != self.dim:
            raise ValueError(f"EmbeddingHead expects vectors of size dim={self.dim}; got shape "
                             f"{tuple(pooled.shape)}")
        e = self.proj(pooled) if self.proj is not None else pooled
        if self.truncate_dim is not None:
            e = e[..., : self.truncate_dim]
        if self.normalize:
            e = F.normalize(e.float(), dim=-1).to(e.dtype)
        return e

    @torch.no_grad()
    def calibrate(self, pooled: Tensor) -> EmbeddingHead:
        """Set the int8 range of each dimension to the minimum and maximum of
        :meth:`embed` over ``pooled`` (``(N, dim)`` calibration vectors, N >= 2)."""
        if pooled.ndim != 2 or len(pooled) < 2:
            raise ValueError(f"calibrate needs (N >= 2, dim) vectors; got shape {tuple(pooled.shape)}")
        e = self.embed(pooled).float()
        self.lo.copy_(e.amin(0))
        self.hi.copy_(e.amax(0))
        return self

    def _range(self) -> tuple[Tensor, Tensor]:
        if self.calibrated:
            return self.lo, self.hi
        if self.normalize:
            return -torch.ones_like(self.lo), torch.ones_like(self.hi)
        raise RuntimeError("int8 quantisation needs a range: call calibrate(embeddings) first, or "
                           "use normalize=True (range [-1, 1])")

    def forward(self, pooled: Tensor) -> Tensor:
        e = self.embed(pooled)
        if self.quantize == "int8":
            lo, hi = self._range()
            scale = 255.0 / (hi - lo).clamp_min(1e-12)
            q = torch.round((e.float() - lo) * scale) - 128
            return q.clamp(-128, 127).to(torch.int8)
        if self.quantize == "binary":
            return pack_bits(e > 0)
        return e

    def dequantize(self, q: Tensor) -> Tensor:
        """Approximate float embeddings from int8 codes (each within half a step of the
        original when it lay inside the range)."""
        if self.quantize != "int8":
            raise ValueError("dequantize applies to quantize='int8' heads")
        lo, hi = self._range()
        return (q.float() + 128) * (hi - lo) / 255.0 + lo

    def config(self) -> dict[str, Any]:
        """JSON-safe constructor arguments; the range and weights are in ``state_dict()``."""
        return {"dim": self.dim, "out_dim": self.out_dim, "bias": self.bias,
                "truncate_dim": self.truncate_dim, "normalize": self.normalize, "quantize": self.quantize}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> EmbeddingHead:
        unknown = set(config) - {"dim", "out_dim", "bias", "truncate_dim", "normalize", "quantize"}
        if unknown:
            raise ValueError(f"EmbeddingHead config has unknown keys {sorted(unknown)}")
        return cls(**config)

    def extra_repr(self) -> str:
        return ", ".join(f"{k}={v!r}" for k, v in self.config().items())


def pack_bits(bits: Tensor) -> Tensor:
    """``(..., D)`` booleans → ``(..., ceil(D / 8))`` uint8, most significant bit first."""
    pad = (-bits.shape[-1]) % 8
    b = F.pad(bits.to(torch.uint8), (0, pad)).unflatten(-1, (-1, 8))
    weights = torch.tensor([128, 64, 32, 16, 8, 4, 2, 1], dtype=torch.uint8, device=bits.device)
    return (b * weights).sum(-1, dtype=torch.uint8)


def unpack_bits(packed: Tensor, dim: int) -> Tensor:
    """The inverse of :func:`pack_bits`: ``(..., ceil(dim / 8))`` uint8 → ``(..., dim)`` bool."""
    shifts = torch.arange(7, -1, -1, device=packed.device, dtype=torch.uint8)
    bits = (packed.unsqueeze(-1) >> shifts) & 1
    return bits.flatten(-2)[..., :dim].bool()
