"""The Triton reduction kernels against float64 references, padded and packed.

On a machine with a GPU they run compiled on CUDA; without one, tests/conftest.py sets
TRITON_INTERPRET=1 and they run interpreted on CPU tensors (poolers route CPU tensors to them
inside ``on_cpu()``). Skipped when Triton is not installed.
"""

from __future__ import annotations

import contextlib

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import poolwise as pw

tk = pytest.importorskip("poolwise.pooling.triton_kernels")
if tk.triton is None:
    pytest.skip("Triton is not installed", allow_module_level=True)
CUDA = torch.cuda.is_available() and not tk.interpreting()
if not CUDA and not tk.interpreting():
    pytest.skip("no GPU and TRITON_INTERPRET is not set", allow_module_level=True)
DEVICE = "cuda" if CUDA else "cpu"
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")  # the interpreter's numpy use
SMALL = tk.LaunchConfig(block_n=4, block_d=8, num_warps=1)  # several blocks on tiny inputs
TILED = tk.LaunchConfig(block_n=4, block_d=8, num_warps=1, acc2d=True)  # 2-D accumulator variant
BOTH = pytest.mark.parametrize("cfg", [SMALL, TILED], ids=["reduce-each-step", "acc2d"])
NAMES = {"sum": "sum", "mean": "mean", "sqrt_len": "mean_sqrt_len", "rank": "weighted_mean",
         "max": "max", "min": "min"}


def routed():
    """Poolers send this test's tensors to the kernels (CPU tensors only inside on_cpu())."""
    return contextlib.nullcontext() if CUDA else tk.on_cpu()


def reference(x: torch.Tensor, mask: torch.Tensor, mode: str) -> torch.Tensor:
    """Float64 loop over rows: the definition of each mode (empty rows 0)."""
    out = torch.zeros(x.shape[0], x.shape[2], dtype=torch.float64)
    for b in range(x.shape[0]):
        real = x[b][mask[b]].double()
        n = real.shape[0]
        if n == 0:
            continue
        if mode == "max":
            out[b] = real.amax(0)
        elif mode == "min":
            out[b] = real.amin(0)
        else:
            w = {"sum": torch.ones(n), "mean": torch.full((n,), 1 / n),
                 "sqrt_len": torch.full((n,), n ** -0.5),
                 "rank": torch.arange(1, n + 1) / (n * (n + 1) / 2)}[mode].double()
            out[b] = (w[:, None] * real).sum(0)
    return out


def batch(b: int = 6, n: int = 11, d: int = 13, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(b, n, d, generator=gen) * 3
    mask = torch.rand(b, n, generator=gen) > 0.35
    mask[0] = True  # full row
    mask[1] = False  # empty row
    mask[2, :] = False
    mask[2, n // 2] = True  # one token
    if b > 3:
        mask[3, :5] = False  # left padding
    return x, mask


def cu_of(mask: torch.Tensor) -> torch.Tensor:
    return torch.cat([torch.zeros(1, dtype=torch.long), mask.sum(1).cumsum(0)])


@BOTH
@pytest.mark.parametrize("mode", list(tk.MODES))
def test_padded_and_packed_match_the_float64_definition(mode, cfg):
    x, mask = batch()
    ref = reference(x, mask, mode).float()
    got = tk.masked_reduce(x.to(DEVICE), mask.to(DEVICE), mode, cfg).cpu()
    torch.testing.assert_close(got, ref, atol=1e-5, rtol=1e-5)
    packed = tk.segment_reduce(x[mask].to(DEVICE), cu_of(mask).to(DEVICE), mode, cfg).cpu()
    torch.testing.assert_close(packed, ref, atol=1e-5, rtol=1e-5)
    assert got[1].abs().sum() == 0 and packed[1].abs().sum() == 0  # the empty row is 0


@pytest.mark.parametrize("mode", ["mean", "rank", "max"])
def test_the_default_launch_config_and_no_mask(mode):
    x, _ = batch(3, 40, 150)
    full = torch.ones(3, 40, dtype=torch.bool)
    got = tk.masked_reduce(x.to(DEVICE), None, mode).cpu()
    torch.testing.assert_close(got, reference(x, full, mode).float(), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_accumulates_in_fp32(dtype):
    _half(dtype, SMALL)
    _half(dtype, TILED)


def _half(dtype, cfg):
    x, mask = batch(4, 30, 9)
    x = x * 300  # fp16 sums of these would lose digits if accumulated in fp16
    ref = reference(x.to(dtype).float(), mask, "mean").float()
    got = tk.masked_reduce(x.to(DEVICE, dtype), mask.to(DEVICE), "mean", cfg)
    assert got.dtype == dtype
    tol = 1e-3 if dtype == torch.float16 else 8e-3
    torch.testing.assert_close(got.float().cpu(), ref, atol=tol * ref.abs().max(), rtol=0)


def test_strided_input_and_mask():
    x, mask = batch(5, 12, 10)
    wide = torch.randn(5, 12, 20)
    wide[..., ::2] = x  # x as a view with stride 2 in the feature axis
    view = wide[..., ::2]
    assert view.stride(-1) == 2
    got = tk.masked_reduce(view.to(DEVICE), mask.to(DEVICE), "sum", SMALL).cpu()
    torch.testing.assert_close(got, reference(x, mask, "sum").float(), atol=1e-5, rtol=1e-5)
    rows = torch.randn(10, 12, 10)[::2]  # every other row: a larger batch stride
    got = tk.masked_reduce(rows.to(DEVICE), mask.to(DEVICE), "max", SMALL).cpu()
    torch.testing.assert_close(got, reference(rows, mask, "max").float())


@BOTH
@pytest.mark.parametrize("mode", ["max", "min"])
def test_nan_propagates_through_max_like_amax(mode, cfg):
    x, mask = batch(3, 8, 5)
    x[0, 2, 1] = float("nan")
    x[1, 3, 2] = float("nan")  # in an empty row: the row stays 0
    got = tk.masked_reduce(x.to(DEVICE), mask.to(DEVICE), mode, cfg).cpu()
    assert torch.isnan(got[0, 1]) and torch.isfinite(got[0, [0, 2, 3, 4]]).all()
    assert got[1].abs().sum() == 0


def test_empty_batch_and_bad_mode():
    x = torch.randn(0, 4, 3, device=DEVICE)
    assert tk.masked_reduce(x, torch.ones(0, 4, dtype=torch.bool, device=DEVICE), "mean").shape == (0, 3)
    with pytest.raises(ValueError, match="mode must be one of"):
        tk.masked_reduce(torch.randn(2, 3, 4, device=DEVICE), None, "median")


@pytest.mark.parametrize("name", list(NAMES.values()))
def test_poolers_route_inference_to_the_kernel_and_training_away(name, monkeypatch):
    calls = []
    for fn in ("masked_reduce", "segment_reduce"):
        real = getattr(tk, fn)
        monkeypatch.setattr(tk, fn, lambda *a, _real=real, _fn=fn, **k: calls.append(_fn) or _real(*a, **k))
    x, mask = batch()
    pooler = pw.get_pooler(name)
    expected = pooler(x, mask)  # CPU path, outside on_cpu()
    cu = cu_of(mask)
    with routed():
        padded = pooler(x.to(DEVICE), mask.to(DEVICE)).cpu()
        packed = pooler.packed(x[mask].to(DEVICE), cu.to(DEVICE)).cpu()
        assert calls == ["masked_reduce", "segment_reduce"]
        xg = x.to(DEVICE).requires_grad_(True)
        trained = pooler(xg, mask.to(DEVICE))
        trained.sum().backward()
        assert calls == ["masked_reduce", "segment_reduce"]  # autograd keeps the dense path
    torch.testing.assert_close(padded, expected, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(packed, expected, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(trained.detach().cpu(), expected, atol=1e-5, rtol=1e-5)
    assert torch.isfinite(xg.grad).all()


def test_nan_policy_and_the_off_switch(monkeypatch):
    x, mask = batch()
    with routed():
        out = pw.get_pooler("mean", empty="nan")(x.to(DEVICE), mask.to(DEVICE)).cpu()
        assert torch.isnan(out[1]).all() and torch.isfinite(out[0]).all()
        monkeypatch.setenv("POOLWISE_NO_TRITON", "1")
        assert not tk.available() and not tk.applies(x.to(DEVICE))


@settings(max_examples=8)
@given(b=st.integers(1, 4), n=st.integers(1, 9), d=st.integers(1, 12), seed=st.integers(0, 99),
       mode=st.sampled_from(list(tk.MODES)), cfg=st.sampled_from([SMALL, TILED]))
def test_any_shape_and_mask(b, n, d, seed, mode, cfg):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(b, n, d, generator=gen)
    mask = torch.rand(b, n, generator=gen) > 0.5
    ref = reference(x, mask, mode).float()
    got = tk.masked_reduce(x.to(DEVICE), mask.to(DEVICE), mode, cfg).cpu()
    torch.testing.assert_close(got, ref, atol=1e-5, rtol=1e-5)
    packed = tk.segment_reduce(x[mask].to(DEVICE), cu_of(mask).to(DEVICE), mode, cfg).cpu()
    torch.testing.assert_close(packed, ref, atol=1e-5, rtol=1e-5)


def test_large_half_precision_keeps_the_pytorch_path(monkeypatch):
    monkeypatch.setattr(tk, "HALF_MAX_ELEMENTS", 100)
    with routed():
        assert tk.applies(torch.zeros(2, 5, 10, dtype=torch.bfloat16, device=DEVICE))
        assert not tk.applies(torch.zeros(2, 6, 10, dtype=torch.bfloat16, device=DEVICE))
        assert tk.applies(torch.zeros(2, 6, 10, device=DEVICE))  # float32: any size
        assert not tk.applies(torch.zeros(2, 6, 10, dtype=torch.float64, device=DEVICE))
