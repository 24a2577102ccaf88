"""EmbeddingHead: project -> truncate -> normalise -> quantise, exact on small fixtures."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st

from poolwise.pooling import EmbeddingHead, pack_bits, unpack_bits


def test_truncation_comes_before_normalisation():
    x = torch.tensor([[3.0, 4.0, 12.0], [0.0, 0.0, 5.0]])
    head = EmbeddingHead(3, truncate_dim=2)
    out = head(x)
    torch.testing.assert_close(out, torch.tensor([[0.6, 0.8], [0.0, 0.0]]))  # a zero vector stays zero
    assert torch.isfinite(out).all()
    wrong_order = F.normalize(x, dim=-1)[:, :2]  # normalise, then truncate: not unit vectors
    assert wrong_order.norm(dim=-1)[0] == pytest.approx(5 / 13)


def test_projection_comes_first():
    head = EmbeddingHead(2, out_dim=3, truncate_dim=2, normalize=False)
    with torch.no_grad():
        head.proj.weight.copy_(torch.tensor([[1.0, 0.0], [1.0, 1.0], [0.0, 7.0]]))
        head.proj.bias.copy_(torch.tensor([0.0, 1.0, 0.0]))
    torch.testing.assert_close(head(torch.tensor([[2.0, 3.0]])), torch.tensor([[2.0, 6.0]]))


@given(st.integers(1, 40), st.integers(2, 12))
def test_truncated_embeddings_are_unit_vectors(dim, batch):
    torch.manual_seed(dim * 100 + batch)
    keep = max(1, dim // 2)
    out = EmbeddingHead(dim, truncate_dim=keep)(torch.randn(batch, dim) * 10 + 0.1)
    assert out.shape == (batch, keep)
    torch.testing.assert_close(out.norm(dim=-1), torch.ones(batch))


def test_int8_uses_the_calibrated_range_and_dequantises_within_half_a_step():
    torch.manual_seed(0)
    calib = torch.randn(200, 16)
    head = EmbeddingHead(16, normalize=False, quantize="int8")
    with pytest.raises(RuntimeError, match="needs a range: call calibrate"):
        head(calib)
    head.calibrate(calib)
    q = head(calib)
    assert q.dtype == torch.int8
    assert (q.min(0).values == -128).all() and (q.max(0).values == 127).all()  # range ends map to the ends
    step = (head.hi - head.lo) / 255
    assert ((head.dequantize(q) - calib).abs() <= step / 2 + 1e-6).all()


def test_int8_of_unit_vectors_defaults_to_the_range_minus_one_to_one():
    head = EmbeddingHead(2, quantize="int8")
    q = head(torch.tensor([[1.0, 0.0], [0.0, -1.0]]))
    assert q.tolist() == [[127, 0], [0, -128]]  # 255 * (0 + 1) / 2 = 127.5 rounds to 128, minus 128


def test_binary_packs_sign_bits_like_numpy():
    torch.manual_seed(1)
    x = torch.randn(5, 19)
    head = EmbeddingHead(19, normalize=False, quantize="binary")
    packed = head(x)
    assert packed.dtype == torch.uint8 and packed.shape == (5, 3)
    assert np.array_equal(packed.numpy(), np.packbits((x > 0).numpy(), axis=-1))
    assert torch.equal(unpack_bits(packed, 19), x > 0)
    ones = torch.ones(1, 8, dtype=torch.bool)
    assert torch.equal(pack_bits(ones), torch.tensor([[255]], dtype=torch.uint8))


def test_config_and_state_round_trip():
    torch.manual_seed(2)
    head = EmbeddingHead(8, out_dim=6, truncate_dim=4, quantize="int8").calibrate(torch.randn(50, 8))
    again = EmbeddingHead.from_config(head.config())
    again.load_state_dict(head.state_dict())
    x = torch.randn(7, 8)
    assert torch.equal(head(x), again(x)) and again.calibrated
    assert repr(again) == ("EmbeddingHead(\n  dim=8, out_dim=6, bias=True, truncate_dim=4, normalize=True, "
                           "quantize='int8'\n  (proj): Linear(in_features=8, out_features=6, bias=True)\n)")


@pytest.mark.parametrize("kwargs,match", [
    ({"truncate_dim": 9}, r"truncate_dim=9 is larger than the embedding \(8 = dim\)"),
    ({"out_dim": 4, "truncate_dim": 5}, r"truncate_dim=5 is larger than the embedding \(4 = out_dim\)"),
    ({"quantize": "int4"}, "quantize must be None, 'int8' or 'binary'"),
    ({"out_dim": 0}, "out_dim must be a positive int"),
    ({"normalize": "yes"}, "normalize"),
])
def test_bad_arguments_are_named(kwargs, match):
    with pytest.raises(ValueError, match=match):
        EmbeddingHead(8, **kwargs)


def test_wrong_input_size_and_bad_calibration_are_named():
    head = EmbeddingHead(8)
    with pytest.raises(ValueError, match=r"expects vectors of size dim=8; got shape \(2, 5\)"):
        head(torch.zeros(2, 5))
    with pytest.raises(ValueError, match="calibrate needs"):
        head.calibrate(torch.zeros(1, 8))
    with pytest.raises(ValueError, match="unknown keys"):
        EmbeddingHead.from_config({"dim": 8, "dims": 3})
