"""The AdaPool paper's ViT: patch order, the three AdaPool queries, the CLS token's place,
the scaled init and dropout."""

from __future__ import annotations

import pytest
import torch

from poolwise.models.vit import PAPER_VARIANTS, VisionTransformer, focal_indices, variant_pooler
from poolwise.pooling import get_pooler


def test_focal_indices_are_the_centre_patches():
    assert focal_indices(8) == [27, 28, 35, 36]  # the paper's CIFAR grid
    assert focal_indices(4) == [5, 6, 9, 10]
    assert focal_indices(5) == [12]  # odd grid: the one centre patch
    assert focal_indices(1) == [0]


def _vit(pooler="mean", **kw):
    torch.manual_seed(0)
    args = {"image_size": 16, "patch": 4, "num_classes": 5, "channels": 2, "dim": 16, "depth": 2,
            "num_heads": 2, "ffn_dim": 32, "dropout": 0.0, "emb_dropout": 0.0, **kw}
    return VisionTransformer(pooler=pooler, **args)


@pytest.mark.parametrize("pooler", [*PAPER_VARIANTS, "gem", "attention"])
def test_every_variant_classifies_with_finite_gradients(pooler):
    model = _vit(pooler)
    x = torch.randn(3, 2, 16, 16)
    logits = model(x)
    assert logits.shape == (3, 5)
    logits.sum().backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


def test_patches_are_row_major_with_pixels_p1_p2_c():
    model = _vit()
    x = torch.arange(2 * 16 * 16, dtype=torch.float32).reshape(1, 2, 16, 16)
    p = model.patches(x)
    assert p.shape == (1, 16, 4 * 4 * 2)
    # patch 6 = grid row 1, column 2: pixels rows 4..7, columns 8..11
    block = x[0, :, 4:8, 8:12].permute(1, 2, 0).reshape(-1)
    assert torch.equal(p[0, 6], block)
    with pytest.raises(ValueError, match="images must be 16x16; got 12x12"):
        model.patches(torch.zeros(1, 2, 12, 12))


def test_the_three_adapool_queries_are_the_papers():
    grid, x = 4, torch.randn(3, 16, 8)
    focal = variant_pooler("adapool-focal", 8, 2, grid)
    assert focal.query == [5, 6, 9, 10] and not focal.residual
    assert variant_pooler("adapool-mean", 8, 2, grid).query == "mean"
    corner = variant_pooler("adapool-corner", 8, 2, grid)
    assert corner.query == 0 and corner.residual
    # focal = AdaPool whose query is exactly the mean of the centre 2x2 patch outputs
    ref = get_pooler("adapool", dim=8, num_heads=2, query=lambda t, m: t[:, [5, 6, 9, 10]].mean(1))
    ref.load_state_dict(focal.state_dict())
    torch.testing.assert_close(focal(x), ref(x))
    with pytest.raises(ValueError, match="unknown AdaPool query 'edge'"):
        variant_pooler("adapool-edge", 8, 2, grid)


def test_the_cls_token_is_prepended_after_the_positional_embedding_and_read_out():
    model = _vit("cls_token")
    seen = {}
    model.encoder.register_forward_pre_hook(lambda m, args: seen.setdefault("x", args[0]))
    x = torch.randn(2, 2, 16, 16)
    tokens = model.tokens(x)
    assert tokens.shape == (2, 17, 16)
    assert torch.equal(seen["x"][:, 0], model.cls[0].expand(2, -1))  # no positional term added
    torch.testing.assert_close(model(x), model.head(tokens[:, 0]))
    assert _vit("mean").tokens(x).shape == (2, 16, 16)


def test_output_projections_get_the_scaled_init():
    torch.manual_seed(0)
    model = VisionTransformer(32, 4, 10, dim=256, depth=8, num_heads=4, ffn_dim=256)
    layer = model.encoder.layers[0]
    assert layer.qkv.weight.std().item() == pytest.approx(0.02, rel=0.05)
    assert layer.proj.weight.std().item() == pytest.approx(0.02 / 4, rel=0.05)  # 0.02 / sqrt(2 * 8)
    assert layer.fc2.weight.std().item() == pytest.approx(0.02 / 4, rel=0.05)
    assert model.head[1].weight.std().item() == pytest.approx(0.02, rel=0.1)


def test_dropout_acts_in_training_only():
    model = _vit("adapool-focal", dropout=0.3, emb_dropout=0.3)
    x = torch.randn(4, 2, 16, 16)
    model.eval()
    torch.testing.assert_close(model(x), model(x))
    model.train()
    assert not torch.allclose(model(x), model(x))
