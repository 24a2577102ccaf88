import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
if os.environ.get("PYTEST_XDIST_WORKER_COUNT"):  # pytest -n N: the cores split between workers
    _threads = max(1, (os.cpu_count() or 1) // int(os.environ["PYTEST_XDIST_WORKER_COUNT"]))
    os.environ.setdefault("OMP_NUM_THREADS", str(_threads))  # read when torch starts

import pytest
import torch
from hypothesis import HealthCheck, settings

if not torch.cuda.is_available():  # the Triton kernels' tests run interpreted on CPU tensors
    os.environ.setdefault("TRITON_INTERPRET", "1")

settings.register_profile(
    "default", deadline=None, max_examples=25, derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile("thorough", deadline=None, max_examples=300)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))


@pytest.fixture(scope="session")
def tiny_bert_dir(tmp_path_factory):
    """A randomly initialised 2-layer BERT saved as a local model directory (offline)."""
    transformers = pytest.importorskip("transformers")
    import torch

    path = tmp_path_factory.mktemp("tiny-bert")
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + [chr(c) for c in range(97, 123)] + \
        ["the", "cat", "sat", "on", "mat", "a", "dog", "ran", "##s", "."]
    tok = transformers.BertTokenizerFast(vocab={w: i for i, w in enumerate(vocab)})
    assert tok.tokenize("the cats") == ["the", "cat", "##s"]
    tok.save_pretrained(str(path))
    torch.manual_seed(0)
    cfg = transformers.BertConfig(vocab_size=len(vocab), hidden_size=16, num_hidden_layers=2,
                                  num_attention_heads=2, intermediate_size=32, max_position_embeddings=64)
    transformers.BertModel(cfg, add_pooling_layer=False).save_pretrained(str(path))
    return path


@pytest.fixture
def one_ray_at_a_time(tmp_path_factory):
    """Held by every test that starts Ray, across pytest-xdist workers: `ray stop --force`
    ends every local cluster, and a cluster left running would be joined by the next test."""
    import fcntl

    root = tmp_path_factory.getbasetemp()
    root = root.parent if os.environ.get("PYTEST_XDIST_WORKER") else root  # shared by the workers
    with open(root / "ray.lock", "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        yield


@pytest.fixture
def benchmark_script(monkeypatch):
    """``benchmark_script("ab_knn_train")``: a script of ``benchmarks/`` imported fresh as a module
    (with ``benchmarks/`` on the path, as when it runs as a script)."""
    import importlib
    import sys
    from pathlib import Path

    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[1] / "benchmarks"))

    def load(name: str):
        sys.modules.pop(name, None)
        return importlib.import_module(name)

    return load
