"""The project's small backbones: shapes, masks and causality."""

import pytest
import torch

from poolwise.models.backbones import Backbone, BackboneConfig


def _model(kind, **kw):
    torch.manual_seed(0)
    return Backbone(BackboneConfig(kind, **kw)).eval()


def test_vit_prepends_cls_and_reads_larger_grids():
    m = _model("vit", in_dim=16, dim=32, depth=2, num_heads=4, patch=4, out_dim=10)
    tokens, mask = m(torch.rand(2, 28, 28))
    assert tokens.shape == (2, 50, 32) and mask.all()
    big, _ = m(torch.rand(2, 56, 56))
    assert big.shape == (2, 197, 32)
    with pytest.raises(ValueError, match="not a multiple of the patch size 4"):
        m(torch.rand(1, 30, 28))


def test_patch_ts_padding_does_not_change_real_tokens():
    m = _model("patch_ts", in_dim=6, dim=32, depth=2, num_heads=4, patch=2)
    x = torch.randn(1, 5, 6)
    short, _ = m(x, torch.ones(1, 5, dtype=torch.bool))
    padded = torch.cat([x, torch.randn(1, 3, 6) * 100], dim=1)
    mask = torch.tensor([[True] * 5 + [False] * 3])
    with torch.no_grad():
        long, keep = m(padded, mask)
    assert torch.allclose(long[0, :5], short[0], atol=1e-5)
    assert keep.tolist() == mask.tolist()


def test_causal_lm_is_causal():
    m = _model("causal_lm", in_dim=50, dim=32, depth=2, num_heads=4, max_len=16)
    ids = torch.randint(0, 50, (1, 10))
    changed = ids.clone()
    changed[0, 7] = (ids[0, 7] + 1) % 50
    with torch.no_grad():
        a, _ = m(ids)
        b, _ = m(changed)
    assert torch.allclose(a[0, :7], b[0, :7], atol=1e-6)
    assert not torch.allclose(a[0, 7], b[0, 7])
    with pytest.raises(ValueError, match="exceeds max_len=16"):
        m(torch.zeros(1, 17, dtype=torch.long))


def test_pretrain_losses_are_finite_and_differentiable():
    m = _model("patch_ts", in_dim=4, dim=16, depth=1, num_heads=2, patch=4, out_dim=4).train()
    x = torch.randn(3, 6, 4)
    hide = torch.zeros(3, 6, dtype=torch.bool)
    hide[:, 2] = True
    loss = m.pretrain_loss(x, x, torch.ones(3, 6, dtype=torch.bool), hide)
    loss.backward()
    assert torch.isfinite(loss) and m.mask_token.grad is not None


@pytest.mark.parametrize("kw, message", [
    ({"kind": "cnn", "in_dim": 4}, "kind must be"),
    ({"kind": "vit", "in_dim": 4, "dim": 30, "num_heads": 4}, "must divide dim=30"),
    ({"kind": "vit", "in_dim": 0}, "in_dim must be a positive int"),
])
def test_config_errors(kw, message):
    with pytest.raises(ValueError, match=message):
        BackboneConfig(**kw)
