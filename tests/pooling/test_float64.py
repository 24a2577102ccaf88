"""Double-precision input is pooled in double precision: the fp32 accumulation meant for half
precision must not round float64 down (weights 1/n, ranks and softmax scores included)."""

import math

import pytest
import torch

import poolwise as pw
from poolwise.pooling.functional import cu_seqlens_of, masked_softmax


def _reference(name: str, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    n = mask.sum(1, keepdim=True).double()
    rank = mask.cumsum(1).double() * mask
    w = {"sum": mask.double(), "mean": mask / n, "mean_sqrt_len": mask / n.sqrt(),
         "weighted_mean": rank / (n * (n + 1) / 2)}[name]
    return (w[..., None] * x).sum(1)


@pytest.mark.parametrize("name", ["mean", "sum", "mean_sqrt_len", "weighted_mean"])
def test_weighted_sums_of_double_input_are_exact_to_double_precision(name):
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(5, 11, 7, generator=gen, dtype=torch.float64)
    mask = torch.rand(5, 11, generator=gen) > 0.4
    mask[:, 3] = True
    pool = pw.get_pooler(name)
    ref = _reference(name, x, mask)
    torch.testing.assert_close(pool(x, mask), ref, atol=1e-14, rtol=1e-13)
    full = torch.ones_like(mask)
    torch.testing.assert_close(pool(x), _reference(name, x, full), atol=1e-14, rtol=1e-13)
    packed = pool.packed(x[mask], cu_seqlens_of(mask))
    assert packed.dtype == torch.float64
    torch.testing.assert_close(packed, ref, atol=1e-14, rtol=1e-13)


def test_masked_softmax_keeps_double_precision_and_stays_fp32_for_half():
    s = torch.tensor([[0.1, 0.2, 0.3]], dtype=torch.float64)
    mask = torch.tensor([[True, True, False]])
    out = masked_softmax(s, mask)
    assert out.dtype == torch.float64
    e = [math.exp(0.1), math.exp(0.2)]
    assert out[0, 0].item() == pytest.approx(e[0] / sum(e), rel=1e-15)
    assert out[0, 2].item() == 0.0
    assert masked_softmax(s.half(), mask).dtype == torch.float32


@pytest.mark.parametrize("name", ["gated", "attention", "adapool", "latent_attention", "wavg", "softmax",
                                  "gem"])
def test_learned_poolers_resolve_double_precision_changes(name):
    """A 1e-12 change to one real token moves a double-precision result by about 1e-12; a
    computation rounded to fp32 anywhere inside would lose it (no change) or jump by fp32
    steps (~1e-8). Padded, packed and one-row-at-a-time calls agree to double precision."""
    torch.manual_seed(0)
    pool = pw.get_pooler(name, defaults={"dim": 8, "max_len": 6}).double()
    x = torch.randn(3, 6, 8, dtype=torch.float64).abs() + 0.5
    mask = torch.tensor([[1, 1, 1, 0, 0, 0], [1] * 6, [0, 1, 1, 1, 0, 1]]).bool()
    padded = pool(x, mask)
    assert padded.dtype == torch.float64
    nudged = x.clone()
    nudged[1, 2] += 1e-12
    change = (pool(nudged, mask) - padded)[1].abs().max().item()
    assert 1e-15 < change < 1e-10, change
    torch.testing.assert_close(padded, pool.packed(x[mask], cu_seqlens_of(mask)), atol=1e-13, rtol=1e-12)
    if getattr(pool, "is_set_function", True) or name == "wavg":
        return  # position-dependent poolers see other positions in a one-row call
    rows = torch.stack([pool(x[i : i + 1, mask[i]])[0] for i in range(3)])
    torch.testing.assert_close(padded, rows, atol=1e-13, rtol=1e-12)


def test_gated_and_adapool_in_double_equal_their_definitions_in_double():
    """Softmax weights computed in fp32 would leave errors near 1e-8 here."""
    torch.manual_seed(3)
    x = torch.randn(3, 6, 8, dtype=torch.float64)
    mask = torch.tensor([[1, 1, 1, 0, 0, 0], [1] * 6, [0, 1, 1, 1, 0, 1]]).bool()
    fill = torch.finfo(torch.float64).min
    gated = pw.get_pooler("gated", dim=8).double()
    with torch.no_grad():
        w = torch.softmax(gated._scores(x).masked_fill(~mask, fill), dim=1)
        torch.testing.assert_close(gated(x, mask), (w[..., None] * x).sum(1), atol=1e-14, rtol=1e-13)
        for heads in (1, 2):
            ada = pw.get_pooler("adapool", dim=8, num_heads=heads).double()
            q = (x * mask[..., None]).sum(1) / mask.sum(1, keepdim=True)
            qh = ada.q_proj(q).view(3, heads, -1)
            k = ada.k_proj(x).view(3, 6, heads, -1)
            v = ada.v_proj(x).view(3, 6, heads, -1)
            s = torch.einsum("bhe,bnhe->bhn", qh, k) * ada.scaling
            a = torch.softmax(s.masked_fill(~mask[:, None], fill), dim=-1)
            ref = ada.out_proj(torch.einsum("bhn,bnhe->bhe", a, v).reshape(3, 8))
            torch.testing.assert_close(ada(x, mask), ref, atol=1e-14, rtol=1e-13)
