"""NV-Embed latent-attention pooling: tokens attend to a learned dictionary, then mean."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .attention_core import check_heads, mlp_block
from .base import Pooler
from .functional import cu_seqlens_of, masked_mean, packed_mean, packs_fewer_tokens
from .registry import register
from .validation import check_dim, check_float, check_int, check_weight_dtype


@register("latent_attention")
class LatentAttentionPooling(Pooler):
    r"""Latent-attention pooling (Lee et al., *NV-Embed*, 2024); the "Attn" pooling of
    *Pool Me Wisely*. Each token is a query over a learned latent array
    :math:`L \in \mathbb{R}^{r \times D}` (keys and values), with pre-norm residual blocks,
    then the real tokens are averaged:

    .. math::
        h_i = x_i + W_O\,\mathrm{MHA}\big(\mathrm{LN}(x_i),\ \mathrm{LN}(L),\ \mathrm{LN}(L)\big),
        \quad h_i \leftarrow h_i + \mathrm{MLP}(\mathrm{LN}(h_i)),
        \quad y = \frac{1}{n} \sum_{i=1}^{n} h_i

    Tokens never attend to each other, so padding cannot leak into real tokens.
    NV-Embed uses :math:`r = 512` latents and 8 heads.

    Without the MLP (``mlp_ratio=0``, the setting of poolwise's frozen-backbone studies) and
    when it is cheaper (:math:`H r < D + 2r`: wide features, few latents) the pooler is
    computed in folded form, the same function at about half the cost per token at D = 384:
    the query projection moves onto the latent keys,
    :math:`u_{hl} = s\,{W_Q^h}^\top k_{hl}`, so token :math:`i` scores latent :math:`l` of
    head :math:`h` with :math:`\mathrm{LN}(x_i)^\top u_{hl}` (:math:`H r` products of length
    :math:`D` instead of a :math:`D \times D` projection plus :math:`r D`), and because the
    mean is linear the values are applied once per row to the mean attention weights,
    :math:`y = \bar{x} + W_O \Vert_h \big(\tfrac{1}{n}\sum_i a_{hi}\big) V_h + b_O`.

    Args:
        dim (int): token feature size :math:`D`.
        num_latents (int): size :math:`r` of the latent dictionary. (default: ``512``)
        num_heads (int): attention heads; must divide ``dim``. (default: ``1``)
        mlp_ratio (float): MLP hidden size over ``dim``; 0 disables the MLP. (default: ``4.0``)
        empty (str): policy for rows with no real token. (default: ``"zero"``)
    """

    config_keys = ("dim", "num_latents", "num_heads", "mlp_ratio", "empty")

    def __init__(
        self, dim: int, num_latents: int = 512, num_heads: int = 1, mlp_ratio: float = 4.0,
        *, empty: str = "zero", device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__(empty=empty)
        check_heads(dim, num_heads, "LatentAttentionPooling")
        who = "LatentAttentionPooling"
        self.dim, self.num_heads = dim, num_heads
        self.num_latents = check_int(num_latents, "num_latents", who)
        self.mlp_ratio = check_float(mlp_ratio, "mlp_ratio", who, 0.0)
        dd = {"device": device, "dtype": dtype}
        self.latents = nn.Parameter(torch.empty(num_latents, dim, **dd))
        self.norm_x = nn.LayerNorm(dim, **dd)
        self.norm_latents = nn.LayerNorm(dim, **dd)
        self.q_proj = nn.Linear(dim, dim, bias=False, **dd)
        self.kv_proj = nn.Linear(dim, 2 * dim, bias=False, **dd)
        self.out_proj = nn.Linear(dim, dim, **dd)
        self.mlp = mlp_block(dim, mlp_ratio, **dd)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.normal_(self.latents)
        for module in self.modules():
            if module is not self and hasattr(module, "reset_parameters"):
                module.reset_parameters()

    def _check_input(self, x: Tensor) -> None:
        check_dim(x, self.dim, type(self).__name__)
        check_weight_dtype(x, self.q_proj.weight, type(self).__name__)

    def _attend(self, x: Tensor) -> Tensor:
        """Per-token latent attention ``(B, N, D) -> (B, N, D)``, before the output projection."""
        b, n, d = x.shape
        h, hd = self.num_heads, d // self.num_heads
        q = self.q_proj(self.norm_x(x)).view(b, n, h, hd).transpose(1, 2)  # (B, H, N, hd)
        k, v = self.kv_proj(self.norm_latents(self.latents)).chunk(2, dim=-1)
        k = k.view(1, -1, h, hd).transpose(1, 2).expand(b, -1, -1, -1)  # (B, H, r, hd)
        v = v.view(1, -1, h, hd).transpose(1, 2).expand(b, -1, -1, -1)
        attended = F.scaled_dot_product_attention(q, k, v)  # every latent is valid: no mask
        return attended.transpose(1, 2).reshape(b, n, d)

    @property
    def _fold(self) -> bool:
        """Folded form: no MLP, and its per-token work (:math:`H r` products of length
        :math:`D`) below the query projection's plus the attention's (:math:`D^2 + 2 r D`)."""
        return self.mlp is None and self.num_heads * self.num_latents < self.dim + 2 * self.num_latents

    def _folded_latents(self) -> tuple[Tensor, Tensor]:
        """Keys with the query projection folded in, ``U`` ``(H r, D)`` (scale included), and
        the values per head ``(H, r, D/H)``."""
        h, hd, r = self.num_heads, self.dim // self.num_heads, self.num_latents
        k, v = self.kv_proj(self.norm_latents(self.latents)).chunk(2, dim=-1)
        kh = k.reshape(r, h, hd).transpose(0, 1)  # (H, r, hd)
        u = torch.einsum("hre,hed->hrd", kh, self.q_proj.weight.view(h, hd, self.dim)) * hd ** -0.5
        return u.reshape(h * r, self.dim), v.reshape(r, h, hd).transpose(0, 1)

    def _pool_folded(self, x: Tensor, mean: Callable[[Tensor], Tensor]) -> Tensor:
        """The MLP-free pooler over tokens ``x`` (``(B, N, D)`` or packed ``(T, D)``), ``mean``
        reducing each row's real tokens: scores against the folded keys, a softmax per head
        over the latents (at least fp32), the mean weights, then the values once per row."""
        u, v = self._folded_latents()
        h, r = self.num_heads, self.num_latents
        # LN's affine folded into the keys: LN(x) u^T = xhat (u * gamma)^T + u beta. xhat, the
        # parameter-free normalisation, needs no gradient when x needs none (frozen features),
        # so training skips the (T, H r) x (H r, D) product that LN's gamma and beta would
        # otherwise need: one of the three GEMMs of a training step. (A unit weight, not
        # none: PyTorch's CPU LayerNorm takes twice as long without a weight.)
        norm = self.norm_x
        ones = torch.ones(norm.normalized_shape, dtype=x.dtype, device=x.device)
        xhat = F.layer_norm(x, norm.normalized_shape, ones, None, norm.eps)
        keys = u if norm.weight is None else u * norm.weight
        bias = None if norm.bias is None else u @ norm.bias
        scores = F.linear(xhat, keys.to(x.dtype), None if bias is None else bias.to(x.dtype))
        weights = scores.unflatten(-1, (h, r)).softmax(-1, dtype=torch.promote_types(x.dtype, torch.float32))
        weights = weights.flatten(-2)
        mean_weights = mean(weights).view(-1, h, r).to(v.dtype)  # (B, H, r)
        heads = torch.einsum("bhr,hre->bhe", mean_weights, v).reshape(-1, self.dim)
        return mean(x) + self.out_proj(heads.to(x.dtype))

    def _pool(self, x: Tensor, mask: Tensor | None) -> Tensor:
        if packs_fewer_tokens(x, mask):
            # tokens never mix, so only the real ones need the per-token work: pack them
            return self._pool_packed(x[mask], cu_seqlens_of(mask))
        if self._fold:
            return self._pool_folded(x, lambda t: masked_mean(t, mask))
        return self._finish(x, self._attend(x), lambda t: masked_mean(t, mask))

    def _pool_packed(self, x: Tensor, cu_seqlens: Tensor) -> Tensor:
        if self._fold:
            return self._pool_folded(x, lambda t: packed_mean(t, cu_seqlens))
        return self._finish(x, self._attend(x[None])[0], lambda t: packed_mean(t, cu_seqlens))

    def _finish(self, x: Tensor, attended: Tensor, mean: Callable[[Tensor], Tensor]) -> Tensor:
        """Output projection, optional MLP, then ``mean`` over each row's real tokens."""
        if self.mlp is None:
            # mean is linear, so mean(x + W a + c) = mean(x) + W mean(a) + c: project once per row
            return mean(x) + self.out_proj(mean(attended))
        tokens = x + self.out_proj(attended)
        return mean(tokens + self.mlp(tokens))
