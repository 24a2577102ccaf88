"""GeM and softmax aggregation trained through the compiled kernels: values and gradients
equal the PyTorch formulas (float64 reference, itself checked by gradcheck)."""

import os

import pytest
import torch

import poolwise as pw
from poolwise.pooling import use_dense
from poolwise.pooling.dispatch import token_kernels


@pytest.fixture(autouse=True)
def kernel():
    if os.environ.get("POOLWISE_NO_EXT"):
        pytest.skip("kernels disabled by POOLWISE_NO_EXT")
    assert token_kernels() is not None


def _batch(dim=13, seed=0):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(5, 70, dim, generator=gen, dtype=torch.float64) * 2
    mask = torch.ones(5, 70, dtype=torch.bool)
    mask[1, :30] = False
    mask[2, ::3] = False
    mask[3] = False
    mask[4, 1:] = False
    return x, mask


def _pooler(name, kwargs, dtype):
    pool = pw.get_pooler(name, **kwargs).to(dtype)
    if kwargs.get("channels"):  # distinct values per feature, the same in every dtype
        with torch.no_grad():
            param = next(pool.parameters())
            param.copy_(torch.linspace(-1.5, 1.5, param.numel()))
    return pool


def _grads(pool, x, mask, dense):
    x = x.clone().requires_grad_(True)
    pool.zero_grad()
    g = torch.linspace(-1, 1, x.shape[0] * x.shape[2], dtype=x.dtype).view(x.shape[0], -1)
    with use_dense(dense):
        out = pool(x, mask)
    (out * g).sum().backward()
    return out.detach(), x.grad, next(pool.parameters()).grad


CASES = [("gem", {}), ("gem", {"p": 6.5}), ("gem", {"channels": 13}), ("softmax", {}),
         ("softmax", {"t": -3.0}), ("softmax", {"channels": 13})]


@pytest.mark.parametrize("name, kwargs", CASES)
def test_pytorch_formula_passes_gradcheck_in_float64(name, kwargs):
    pool = _pooler(name, kwargs, torch.float64)
    x, mask = _batch(dim=13)
    x = x[:, :9].clone().requires_grad_(True)  # small: gradcheck is quadratic
    mask = mask[:, :9]
    with use_dense():
        assert torch.autograd.gradcheck(lambda t: pool(t, mask), (x,))


@pytest.mark.parametrize("name, kwargs", CASES)
def test_kernel_values_and_gradients_equal_the_float64_formula(name, kwargs):
    x, mask = _batch()
    ref_out, ref_gx, ref_gp = _grads(_pooler(name, kwargs, torch.float64), x, mask, dense=True)
    out, gx, gp = _grads(_pooler(name, kwargs, torch.float32), x.float(), mask, dense=False)
    assert gx is not None and gp is not None
    torch.testing.assert_close(out, ref_out.float(), atol=2e-5, rtol=2e-5)
    torch.testing.assert_close(gx, ref_gx.float(), atol=2e-5, rtol=1e-4)
    torch.testing.assert_close(gp, ref_gp.float(), atol=2e-4, rtol=1e-4)
    assert (gx[~mask] == 0).all()  # padding gets no gradient


def test_gem_shares_the_min_gradient_between_tied_tokens_like_amin():
    x, mask = _batch()
    x[0, 5, 2] = x[0, 9, 2] = x[0, :, 2].min() - 1  # two tokens tie for feature 2's minimum
    ref = _grads(_pooler("gem", {}, torch.float64), x, mask, dense=True)[1]
    got = _grads(_pooler("gem", {}, torch.float32), x.float(), mask, dense=False)[1]
    torch.testing.assert_close(got, ref.float(), atol=2e-5, rtol=1e-4)
    assert got[0, 5, 2] == got[0, 9, 2]


@pytest.mark.parametrize("name", ["gem", "softmax"])
def test_only_the_pooler_parameter_trains_on_frozen_features(name):
    """Features without grad (the frozen-backbone study): the kernel skips the (B, N, D)
    input gradient and still gives the parameter's."""
    x, mask = _batch()
    pool = _pooler(name, {}, torch.float32)
    pool(x.float(), mask).square().sum().backward()
    fast = next(pool.parameters()).grad.clone()
    pool.zero_grad()
    with use_dense():
        pool(x.float(), mask).square().sum().backward()
    torch.testing.assert_close(fast, next(pool.parameters()).grad, atol=1e-4, rtol=1e-4)
