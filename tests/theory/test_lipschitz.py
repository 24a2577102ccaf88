import pytest
import torch
from torch import nn

import poolwise as pw
from poolwise.theory import empirical_lipschitz, layer_constants, mha_lipschitz_bound, pooling_factor


def _mha(seed: int, d: int = 8, heads: int = 2) -> nn.MultiheadAttention:
    torch.manual_seed(seed)
    mha = nn.MultiheadAttention(d, heads, batch_first=True, dtype=torch.float64)
    with torch.no_grad():
        mha.in_proj_bias.normal_(0, 0.5)
    return mha.eval()


def _radius(*xs: torch.Tensor) -> float:
    return max(float(x.norm(dim=-1).max()) for x in xs)


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("epsilon", [1e-3, 0.1, 1.0])
def test_attention_bound_holds_on_the_ball(seed, epsilon):
    mha = _mha(seed)
    x = torch.randn(6, 5, 8, dtype=torch.float64)
    d = mha.embed_dim
    w = mha.in_proj_weight
    gen = torch.Generator().manual_seed(seed)
    worst = 0.0
    radius = _radius(x)
    for _ in range(20):
        delta = torch.randn(x.shape, generator=gen, dtype=torch.float64)
        delta = epsilon * delta / delta.flatten(1).norm(dim=1)[:, None, None]
        with torch.no_grad():
            change = mha(x + delta, x + delta, x + delta)[0] - mha(x, x, x)[0]
        worst = max(worst, float((change.flatten(1).norm(dim=1) / epsilon).max()))
        radius = max(radius, _radius(x + delta))
    bound = mha_lipschitz_bound(w[:d], w[d:2 * d], w[2 * d:], mha.out_proj.weight, mha.num_heads, 5, radius,
                                mha.in_proj_bias[:d], mha.in_proj_bias[d:2 * d])
    assert worst <= bound


class _Block(nn.Module):
    """One transformer block without normalisation: X + MHA(X), then + FFN."""

    def __init__(self, layer: nn.TransformerEncoderLayer) -> None:
        super().__init__()
        self.layer = layer

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.layer.self_attn(x, x, x, need_weights=False)[0]
        return x + self.layer.linear2(self.layer.activation(self.layer.linear1(x)))


@pytest.mark.parametrize("pooler", ["mean", "sum", "first", "last", "max"])
def test_pooled_layer_ratio_stays_under_factor_times_c1_c2(pooler):
    torch.manual_seed(0)
    layer = nn.TransformerEncoderLayer(8, 2, 16, dropout=0.0, batch_first=True, dtype=torch.float64).eval()
    block = _Block(layer)
    x = torch.randn(4, 6, 8, dtype=torch.float64)
    eps = 0.05
    radius = _radius(x) + eps  # every token on every perturbation path stays inside
    consts = layer_constants(layer, n=6, radius=radius)
    g = pw.get_pooler(pooler)
    measured = empirical_lipschitz(lambda t: g(block(t)), x, eps, samples=24)
    assert 0 < measured <= pooling_factor(pooler, 6, 8) * consts["C1"] * consts["C2"]
    assert empirical_lipschitz(block, x, eps) <= consts["C1"] * consts["C2"]


def test_layer_constants_of_a_bert_layer(tiny_bert_dir):
    transformers = pytest.importorskip("transformers")
    bert = transformers.AutoModel.from_pretrained(str(tiny_bert_dir))
    consts = layer_constants(bert.encoder.layer[0], n=16, radius=3.0)
    assert set(consts) >= {"W_Q", "W_K", "W_V", "W_O", "W_ffn_1", "W_ffn_2", "C1", "C2"}
    assert consts["C1"] > 1 and consts["C2"] > 1
    with pytest.raises(TypeError, match=r"supports nn\.TransformerEncoderLayer and BERT layers"):
        layer_constants(nn.Linear(2, 2), 4, 1.0)
