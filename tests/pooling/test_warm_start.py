"""Warm starts: a learned pooler set to equal a parameter-free pooling exactly at step 0, checked
against a plain masked mean / token pick written here (not poolwise), under padding on both
sides, with gradients that reach the scores."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import poolwise as pw

CASES = {
    "adapool": {"dim": 16, "num_heads": 4},
    "attention": {"dim": 16, "num_heads": 2, "mlp_ratio": 2.0},
    "gated": {"dim": 16},
    "latent_attention": {"dim": 16, "num_latents": 8, "num_heads": 2},
    "wavg": {"max_len": 12},
    "softmax": {"channels": 1},
}


def _batch(seed: int, lengths: list[int], left: bool):
    gen = torch.Generator().manual_seed(seed)
    n = max(lengths)
    x = torch.randn(len(lengths), n, 16, generator=gen) * 3
    mask = torch.zeros(len(lengths), n, dtype=torch.bool)
    for i, k in enumerate(lengths):
        if left:
            mask[i, n - k:] = True
        else:
            mask[i, :k] = True
    return x, mask


def _plain(target: str, x, mask):
    rows = []
    for xi, mi in zip(x, mask):
        real = xi[mi].double()
        rows.append({"mean": real.mean(0), "first": real[0], "last": real[-1]}[target])
    return torch.stack(rows).float()


@given(seed=st.integers(0, 2**16), lengths=st.lists(st.integers(1, 12), min_size=1, max_size=4),
       left=st.booleans())
@pytest.mark.parametrize("name", sorted(CASES))
def test_a_warm_started_pooler_equals_a_plain_mean(name, seed, lengths, left):
    torch.manual_seed(seed)
    pooler = pw.get_pooler(name, warm_start="mean", **CASES[name])
    x, mask = _batch(seed, lengths, left)
    torch.testing.assert_close(pooler(x, mask), _plain("mean", x, mask), atol=2e-5, rtol=2e-5)


@pytest.mark.parametrize(("target", "query"), [("first", 0), ("cls", 0), ("last", -1)])
@pytest.mark.parametrize("left", [False, True])
def test_adapool_with_a_token_query_starts_as_that_token(target, query, left):
    x, mask = _batch(3, [5, 2, 9], left)
    pooler = pw.get_pooler("adapool", dim=16, num_heads=2, query=query, warm_start=target)
    want = _plain({"cls": "first"}.get(target, target), x, mask)
    torch.testing.assert_close(pooler(x, mask), want, atol=1e-6, rtol=1e-6)


@pytest.mark.parametrize("name", sorted(CASES))
def test_gradients_reach_the_learned_part_from_the_first_step(name):
    pooler = pw.get_pooler(name, warm_start="mean", **CASES[name])
    x, mask = _batch(1, [7, 3], False)
    x.requires_grad_(True)
    (pooler(x, mask) * torch.randn(2, 16)).sum().backward()
    grads = {n: p.grad for n, p in pooler.named_parameters() if p.grad is not None}
    assert grads and all(torch.isfinite(g).all() for g in grads.values())
    assert any(float(g.abs().sum()) > 0 for g in grads.values()), f"{name}: every gradient is zero"


def test_warm_starts_that_cannot_be_exact_are_refused_by_name():
    with pytest.raises(ValueError, match="query='mean'"):
        pw.get_pooler("adapool", dim=8, query=0, warm_start="mean")
    with pytest.raises(ValueError, match="with query=-1"):
        pw.get_pooler("adapool", dim=8, warm_start="last")
    with pytest.raises(ValueError, match="one query"):
        pw.get_pooler("attention", dim=8, num_queries=2, warm_start="mean")
    with pytest.raises(ValueError, match="gem has no warm start to mean"):
        pw.get_pooler("gem", warm_start="mean")
    with pytest.raises(ValueError, match="warm-starts as mean only"):
        pw.get_pooler("gated", dim=8, warm_start="first")
    with pytest.raises(ValueError, match="target must be one of"):
        pw.get_pooler("gated", dim=8, warm_start="median")
    assert pw.get_pooler("mean", warm_start="avg").name == "mean"
    with pytest.raises(ValueError, match="max has no warm start to mean"):
        pw.get_pooler("max", warm_start="mean")


def test_a_warm_started_adapool_survives_save_and_load(tmp_path):
    from safetensors.torch import load_file, save_file

    pooler = pw.get_pooler("adapool", dim=16, num_heads=4, warm_start="mean")
    save_file(pooler.state_dict(), str(tmp_path / "p.safetensors"))
    back = pw.Pooler.from_config(pooler.config())
    back.load_state_dict(load_file(str(tmp_path / "p.safetensors")))
    x, mask = _batch(0, [4, 6], True)
    torch.testing.assert_close(back(x, mask), _plain("mean", x, mask), atol=2e-5, rtol=2e-5)
