"""Feature cache: computed once, packed, memory-mapped, never half-written."""

import numpy as np
import pytest
import torch

from poolwise.experiments.features import SplitSource, features_dir, get_features


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("POOLWISE_CACHE", str(tmp_path / "cache"))


def _sources(calls, tokens, mask, fail_at=None):
    def make():
        calls.append(1)

        def encode(a, b):
            if fail_at is not None and a >= fail_at:
                raise RuntimeError("backbone crashed")
            return tokens[a:b], mask[a:b]

        return {"train": SplitSource(len(tokens), encode, np.arange(len(tokens)))}

    return make


def test_built_once_then_read_from_disk():
    torch.manual_seed(0)
    tokens = torch.randn(5, 4, 3)
    mask = torch.tensor([[1, 1, 0, 0], [1, 1, 1, 1], [0, 1, 1, 0], [1, 0, 0, 0], [1, 1, 1, 0]]).bool()
    calls = []
    first = get_features({"k": 1}, _sources(calls, tokens, mask), {"num_outputs": 2}, batch_size=2)
    second = get_features({"k": 1}, _sources(calls, tokens, mask))
    assert len(calls) == 1 and first.build_s > 0 and second.build_s == 0
    assert second.max_len == 4 and second.dim == 3 and second.meta["num_outputs"] == 2
    split = second.splits["train"]
    assert split.tokens.dtype == torch.float16 and len(split) == 5
    x, m, y = split.batch(np.array([2, 1]))
    assert m.tolist() == [[True, True, False, False], [True] * 4]  # right-padded to the batch's longest
    assert torch.allclose(x[0, :2], tokens[2, 1:3], atol=1e-2)  # only real tokens are stored
    assert torch.allclose(x[1], tokens[1], atol=1e-2)
    assert (x[~m] == 0).all() and y.tolist() == [2, 1]


def test_crash_leaves_nothing_behind_and_a_rerun_builds():
    tokens, mask = torch.randn(6, 3, 2), torch.ones(6, 3, dtype=torch.bool)
    with pytest.raises(RuntimeError, match="backbone crashed"):
        get_features({"k": 2}, _sources([], tokens, mask, fail_at=4), batch_size=2)
    folder = features_dir({"k": 2})
    assert not folder.exists()
    assert not [p for p in folder.parent.iterdir() if p.name.endswith(".tmp")]
    feats = get_features({"k": 2}, _sources([], tokens, mask), batch_size=2)
    assert len(feats.splits["train"]) == 6


def test_empty_rows_and_non_finite_features_are_refused():
    tokens = torch.randn(2, 3, 2)
    with pytest.raises(ValueError, match="no real token"):
        get_features({"k": 3}, _sources([], tokens, torch.tensor([[1, 1, 0], [0, 0, 0]]).bool()))
    tokens[0, 0, 0] = float("nan")
    with pytest.raises(FloatingPointError, match="non-finite"):
        get_features({"k": 4}, _sources([], tokens, torch.ones(2, 3, dtype=torch.bool)))


def test_large_values_stay_float32():
    tokens = torch.full((2, 2, 2), 1e5)
    feats = get_features({"k": 5}, _sources([], tokens, torch.ones(2, 2, dtype=torch.bool)))
    assert feats.splits["train"].tokens.dtype == torch.float32


@pytest.mark.parametrize("fault", ["zeroed", "truncated", "empty", "missing", "meta"])
def test_a_damaged_cache_is_rebuilt_with_a_warning_naming_the_file(fault):
    """A same-size zeroed tokens file once gave a wrong accuracy with exit 0."""
    torch.manual_seed(0)
    tokens, mask = torch.randn(40, 64, 16), torch.ones(40, 64, dtype=torch.bool)
    calls = []
    good = get_features({"k": 9}, _sources(calls, tokens, mask)).splits["train"].tokens.clone()
    folder = features_dir({"k": 9})
    target = folder / "train.tokens.npy"
    if fault == "zeroed":
        target.write_bytes(b"\0" * target.stat().st_size)
    elif fault == "truncated":
        target.write_bytes(target.read_bytes()[:1000])
    elif fault == "empty":
        target.write_bytes(b"")
    elif fault == "missing":
        target.unlink()
    else:
        (folder / "meta.json").write_text("{not json")
    name = "meta.json" if fault == "meta" else "train.tokens.npy"
    with pytest.warns(RuntimeWarning, match=name):
        again = get_features({"k": 9}, _sources(calls, tokens, mask))
    assert len(calls) == 2 and again.build_s > 0
    assert torch.equal(again.splits["train"].tokens, good)
