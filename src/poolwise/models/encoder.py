"""A small pre-LayerNorm transformer encoder (the AdaPool paper's ``Attenuator`` body)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .attention import self_attention
from .tiny_layer import can_fuse, fused_layer


class PreLNLayer(nn.Module):
    r"""One pre-LN block: :math:`x \leftarrow x + \mathrm{MHA}(\mathrm{LN}(x))`, then
    :math:`x \leftarrow x + \mathrm{FFN}(\mathrm{LN}(x))` with a GELU feed-forward. Attention
    projections are bias-free as in the paper's code. Attention (scale :math:`1/\sqrt{d_{head}}`)
    uses poolwise's compiled kernel for head dimensions up to 4 (the paper's 16/8 = 2) and
    ``scaled_dot_product_attention`` otherwise; ``use_small_kernel=False`` forces SDPA.

    ``dropout`` applies to the feed-forward output (the kNN model's only dropout);
    ``attn_dropout`` to the attention weights and the attention output, and ``ffn_dropout`` to
    the feed-forward hidden layer (the ViT's recipe drops all three).

    Widths up to 8 (the RL policies) run the whole layer in one compiled kernel
    (:mod:`poolwise.models.tiny_layer`) on CPU float32; ``use_fused=False`` forces the op-by-op
    path."""

    def __init__(self, dim: int, num_heads: int, ffn_dim: int, dropout: float = 0.0,
                 device: torch.device | str | None = None, dtype: torch.dtype | None = None, *,
                 attn_dropout: float = 0.0, ffn_dropout: float = 0.0) -> None:
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
        self.attn_dropout = attn_dropout
        self.ffn_dropout = ffn_dropout
        self.use_small_kernel = True
        self.use_fused = True

    def forward(self, x: Tensor) -> Tensor:
        if can_fuse(self, x):
            return fused_layer(self, x)
        b, n, d = x.shape
        h = self.num_heads
        qkv = self.qkv(self.norm1(x)).view(b, n, 3, h, d // h)
        p_att = self.attn_dropout if self.training else 0.0
        att = self_attention(qkv, self.use_small_kernel, p_att)
        x = x + F.dropout(self.proj(att), p_att, self.training)
        hidden = F.dropout(F.gelu(self.fc1(self.norm2(x))), self.ffn_dropout, self.training)
        return x + F.dropout(self.fc2(hidden), self.dropout, self.training)


class PreLNEncoder(nn.Module):
    """A stack of :class:`PreLNLayer` without a final norm (the paper found it hurts
    regression); weights ~ N(0, ``init_std``), zero biases, unit LayerNorms.

    ``scaled_out_init=True`` draws the output projections (attention ``proj`` and the
    feed-forward ``fc2``) from N(0, ``init_std`` / sqrt(2 ``depth``)), GPT-2's scaled init that
    the AdaPool paper's ViT uses; ``attn_dropout`` and ``ffn_dropout`` go to every layer."""

    def __init__(self, dim: int, depth: int, num_heads: int, ffn_dim: int, dropout: float = 0.0,
                 init_std: float = 0.02, device: torch.device | str | None = None,
                 dtype: torch.dtype | None = None, *, attn_dropout: float = 0.0,
                 ffn_dropout: float = 0.0, scaled_out_init: bool = False) -> None:
        super().__init__()
        self.init_std = init_std
        self.scaled_out_init = scaled_out_init
        self.layers = nn.ModuleList(
            PreLNLayer(dim, num_heads, ffn_dim, dropout, device=device, dtype=dtype,
                       attn_dropout=attn_dropout, ffn_dropout=ffn_dropout) for _ in range(depth))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, std=self.init_std)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.LayerNorm):
                m.reset_parameters()
        if self.scaled_out_init:
            out_std = self.init_std / math.sqrt(2 * len(self.layers))
            for layer in self.layers:
                nn.init.normal_(layer.proj.weight, std=out_std)
                nn.init.normal_(layer.fc2.weight, std=out_std)

    def forward(self, x: Tensor) -> Tensor:
        for layer in self.layers:
            x = layer(x)
        return x
