"""A small pre-LayerNorm transformer encoder (the AdaPool paper's ``Attenuator`` body)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .attention import attention


class PreLNLayer(nn.Module):
    r"""One pre-LN block: :math:`x \leftarrow x + \mathrm{MHA}(\mathrm{LN}(x))`, then
    :math:`x \leftarrow x + \mathrm{FFN}(\mathrm{LN}(x))` with a GELU feed-forward. Attention
    projections are bias-free as in the paper's code. Attention (scale :math:`1/\sqrt{d_{head}}`)
    uses poolwise's compiled kernel for head dimensions up to 4 (the paper's 16/8 = 2) and
    ``scaled_dot_product_attention`` otherwise; ``use_small_kernel=False`` forces SDPA."""

    def __init__(self, dim: int, num_heads: int, ffn_dim: int, dropout: float = 0.0,
                 device: torch.device | str | None = None, dtype: torch.dtype | None = None) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"num_heads={num_heads} must divide dim={dim}")
        dd = {"device": device, "dtype": dtype}
        self.num_heads = num_heads
        self.norm1 = nn.LayerNorm(dim, **dd)
        self.qkv = nn.Linear(dim, 3 * dim, bias=False, **dd)
        self.proj = nn.Linear(dim, dim, bias=False, **dd)
        self.norm2 = nn.LayerNorm(dim, **dd)
        self.fc1 = nn.Linear(dim, ffn_dim, **dd)
        self.fc2 = nn.Linear(ffn_dim, dim, **dd)
        self.dropout = dropout
        self.use_small_kernel = True

    def forward(self, x: Tensor) -> Tensor:
        b, n, d = x.shape
        h = self.num_heads
        q, k, v = self.qkv(self.norm1(x)).view(b, n, 3, h, d // h).permute(2, 0, 3, 1, 4)
        att = attention(q, k, v, self.use_small_kernel)
        x = x + self.proj(att.transpose(1, 2).reshape(b, n, d))
        ff = self.fc2(F.gelu(self.fc1(self.norm2(x))))
        return x + F.dropout(ff, self.dropout, self.training)


class PreLNEncoder(nn.Module):
    """A stack of :class:`PreLNLayer` without a final norm (the paper found it hurts
    regression); weights ~ N(0, ``init_std``), zero biases, unit LayerNorms."""

    def __init__(self, dim: int, depth: int, num_heads: int, ffn_dim: int, dropout: float = 0.0,
                 init_std: float = 0.02, device: torch.device | str | None = None,
                 dtype: torch.dtype | None = None) -> None:
        super().__init__()
        self.init_std = init_std
        self.layers = nn.ModuleList(
            PreLNLayer(dim, num_heads, ffn_dim, dropout, device=device, dtype=dtype) for _ in range(depth))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, std=self.init_std)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.LayerNorm):
                m.reset_parameters()

    def forward(self, x: Tensor) -> Tensor:
        for layer in self.layers:
            x = layer(x)
        return x
