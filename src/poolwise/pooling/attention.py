"""Attention pooling with learned queries (MAP / PMA)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from .attention_core import check_heads, folded_attention, mlp_block, standard_attention
from .base import Pooler
from .dispatch import route
from .functional import Segments
from .registry import register
from .validation import check_dim, check_flag, check_float, check_int, check_weight_dtype


@register("attention", "map", "pma")
class AttentionPooling(Pooler):
    r"""Multi-head attention pooling with learned queries: multihead attention pooling (MAP,
    Zhai et al. 2022 / SigLIP; timm's ``AttentionPoolLatent``) and pooling by multihead
    attention (PMA, Lee et al., *Set Transformer*, ICML 2019).

    .. math::
        o_m = W_O \big\Vert_h \sum_i \operatorname{softmax}_i\!\Big(
              \tfrac{(W_Q^h s_m)^\top (W_K^h x_i)}{\sqrt{D/H}}\Big) W_V^h x_i,
        \qquad y_m = o_m + \mathrm{MLP}(\mathrm{LN}(o_m))

    with learned seeds :math:`s_1..s_M` (``num_queries``) and the MLP block only when
    ``mlp_ratio > 0``. The output is ``(B, D)`` for one query, ``(B, M, D)`` for several, or
    ``(B, M*D)`` with ``flatten=True``.

    Args:
        dim (int): token feature size :math:`D`.
        num_heads (int): attention heads; must divide ``dim``. (default: ``1``)
        num_queries (int): learned queries :math:`M`. (default: ``1``)
        mlp_ratio (float): hidden size of the MLP block over ``dim``; 0 disables it.
            (default: ``0.0``)
        bias (bool): biases in the projections. (default: ``True``)
        flatten (bool): concatenate the queries' outputs. (default: ``False``)
        empty (str): policy for rows with no real token. (default: ``"zero"``)
    """

    config_keys = ("dim", "num_heads", "num_queries", "mlp_ratio", "bias", "flatten", "empty")
    has_weights = True

    def __init__(
        self, dim: int, num_heads: int = 1, num_queries: int = 1, mlp_ratio: float = 0.0,
        bias: bool = True, flatten: bool = False, *, empty: str = "zero",
        device: torch.device | str | None = None, dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__(empty=empty)
        check_heads(dim, num_heads, "AttentionPooling")
        who = "AttentionPooling"
        self.dim, self.num_heads = dim, num_heads
        self.num_queries = check_int(num_queries, "num_queries", who)
        self.mlp_ratio = check_float(mlp_ratio, "mlp_ratio", who, 0.0)
        self.bias, self.flatten = check_flag(bias, "bias", who), check_flag(flatten, "flatten", who)
        self.scaling = (dim // num_heads) ** -0.5
        self.folded = num_queries * num_heads <= dim
        dd = {"device": device, "dtype": dtype}
        self.queries = nn.Parameter(torch.empty(num_queries, dim, **dd))
        self.q_proj = nn.Linear(dim, dim, bias=bias, **dd)
        self.k_proj = nn.Linear(dim, dim, bias=bias, **dd)
        self.v_proj = nn.Linear(dim, dim, bias=bias, **dd)
        self.out_proj = nn.Linear(dim, dim, bias=bias, **dd)
        self.mlp = mlp_block(dim, mlp_ratio, **dd)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.trunc_normal_(self.queries, std=self.dim ** -0.5)
        for lin in (self.q_proj, self.k_proj, self.v_proj, self.out_proj):
            lin.reset_parameters()
        if self.mlp is not None:
            for layer in self.mlp:
                if hasattr(layer, "reset_parameters"):
                    layer.reset_parameters()

    def output_dim(self, dim: int) -> int:
        return dim * self.num_queries if self.flatten else dim

    def output_shape(self, dim: int) -> tuple[int, ...]:
        if self.num_queries == 1 or self.flatten:
            return (self.output_dim(dim),)
        return (self.num_queries, dim)

    def _check_input(self, x: Tensor) -> None:
        check_dim(x, self.dim, type(self).__name__)
        check_weight_dtype(x, self.q_proj.weight, type(self).__name__)

    def attention_weights(self, x: Tensor, mask: Tensor | None = None) -> Tensor | None:
        """Attention weights ``(B, M, H, N)`` over the tokens (zero on padding), in fp32."""
        x, keep = self._prepare(x, mask)
        with torch.no_grad():
            _, attn = standard_attention(x, keep, self.q_proj(self.queries)[None], self.k_proj,
                                         self.v_proj, self.num_heads, self.scaling)
        return attn

    def _pool(self, x: Tensor, mask: Tensor | None) -> Tensor:
        q = self.q_proj(self.queries)[None]  # (1, M, D)
        if self.folded:
            path = route(x, self.queries, self.k_proj.weight, kernel=True)
            seg = Segments.of(x, mask) if path.segments and path.kernel is None else None
            heads, _ = folded_attention(x, mask, q, self.k_proj, self.v_proj, self.num_heads,
                                        self.scaling, seg=seg, kernel=path.kernel)
        else:
            heads, _ = standard_attention(x, mask, q, self.k_proj, self.v_proj, self.num_heads,
                                          self.scaling)
        out = self.out_proj(heads)
        if self.mlp is not None:
            out = out + self.mlp(out)
        if self.num_queries == 1:
            return out[:, 0]
        return out.flatten(1) if self.flatten else out
