"""The project's small backbones: shapes, masks and causality."""

import pytest
import torch

from poolwise.models.backbones import Backbone, BackboneConfig, image_patches


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


def test_masked_patch_vit_hides_only_the_patches_it_is_told_to():
    m = _model("vit", in_dim=16, dim=32, depth=2, num_heads=4, patch=4, out_dim=16, objective="mim")
    images = torch.rand(2, 28, 28)
    hide = torch.zeros(2, 49, dtype=torch.bool)
    with torch.no_grad():
        plain, _ = m(images)
        same, _ = m(images, hide=hide)
        hide[0, 5] = True
        hidden, _ = m(images, hide=hide)
    assert torch.equal(plain, same)
    assert not torch.allclose(plain[0], hidden[0]) and torch.allclose(plain[1], hidden[1])
    # the hidden patch is the mask token: its pixels no longer matter
    other = images.clone()
    other[0, 0:4, 20:24] = 1.0  # patch 5: row 0, column 5 of the 7x7 grid (row-major)
    with torch.no_grad():
        again, _ = m(other, hide=hide)
    assert torch.allclose(again, hidden, atol=1e-6)
    m.train()
    loss = m.pretrain_loss(images, image_patches(images, 4), hide=hide)
    loss.backward()
    assert torch.isfinite(loss) and m.mask_token.grad is not None
    with pytest.raises(ValueError, match="needs hide"):
        m.pretrain_loss(images, image_patches(images, 4))


def test_a_classifying_vit_refuses_masked_inputs():
    m = _model("vit", in_dim=16, dim=32, depth=1, num_heads=4, patch=4, out_dim=10)
    with pytest.raises(ValueError, match="not built for masked pretraining"):
        m(torch.rand(1, 28, 28), hide=torch.zeros(1, 49, dtype=torch.bool))
    assert not hasattr(m, "mask_token")  # older checkpoints of this kind load unchanged


def test_masked_word_encoder_is_bidirectional_with_cls_and_padding():
    m = _model("mlm", in_dim=50, dim=32, depth=2, num_heads=4, max_len=16, out_dim=50)
    ids = torch.randint(0, 50, (1, 10))
    changed = ids.clone()
    changed[0, 7] = (ids[0, 7] + 1) % 50
    with torch.no_grad():
        a, keep = m(ids)
        b, _ = m(changed)
    assert a.shape == (1, 11, 32) and keep.all()  # CLS first
    assert not torch.allclose(a[0, :8], b[0, :8])  # earlier words see later ones
    padded = torch.cat([ids, torch.randint(0, 50, (1, 4))], dim=1)
    mask = torch.tensor([[True] * 10 + [False] * 4])
    with torch.no_grad():
        c, keep = m(padded, mask)
    assert torch.allclose(c[0, :11], a[0], atol=1e-5) and keep[0].tolist() == [True] * 11 + [False] * 4
    m.train()
    hide = torch.zeros(2, 10, dtype=torch.bool)
    hide[:, 3] = True
    words = torch.randint(0, 50, (2, 10))
    loss = m.pretrain_loss(words, words, torch.ones(2, 10, dtype=torch.bool), hide)
    loss.backward()
    assert torch.isfinite(loss) and m.cls.grad is not None and m.mask_token.grad is not None


@pytest.mark.parametrize("kw, message", [
    ({"kind": "cnn", "in_dim": 4}, "kind must be"),
    ({"kind": "vit", "in_dim": 4, "objective": "mae"}, "objective must be 'classify' or 'mim'"),
    ({"kind": "vit", "in_dim": 4, "dim": 30, "num_heads": 4}, "must divide dim=30"),
    ({"kind": "vit", "in_dim": 0}, "in_dim must be a positive int"),
])
def test_config_errors(kw, message):
    with pytest.raises(ValueError, match=message):
        BackboneConfig(**kw)
