"""The closed-form reference points of benchmarks/knn_ceiling.py behave as they must."""

import importlib.util
from pathlib import Path

import pytest

_PATH = Path(__file__).resolve().parents[2] / "benchmarks" / "knn_ceiling.py"


@pytest.fixture(scope="module")
def ceiling():
    spec = importlib.util.spec_from_file_location("knn_ceiling", _PATH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.ceiling


def test_exact_distances_beat_the_dot_product_and_the_baselines(ceiling, monkeypatch, tmp_path):
    monkeypatch.setenv("POOLWISE_CACHE", str(tmp_path))
    one = ceiling(1, samples=300)
    assert one["oracle_distance"] < 0.01  # the nearest neighbour dominates a sharp softmax
    for k in (4, 32):
        row = ceiling(k, samples=300)
        assert row["oracle_distance"] < row["oracle_dot"]
        assert row["oracle_distance"] < min(row["baseline_centroid"], row["baseline_query"])
        assert row["oracle_dot"] < row["baseline_centroid"]  # some query information helps
