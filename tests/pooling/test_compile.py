"""torch.compile(fullgraph=True) on the padded path."""

import pytest
import torch

import poolwise as pw

from .helpers import KWARGS

PARAMETER_FREE = ["first", "last", "mean", "sum", "max", "min", "mean_sqrt_len", "weighted_mean"]


def _inputs():
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(3, 6, 8, generator=gen)
    mask = torch.tensor([[1, 1, 1, 0, 0, 0], [0, 0, 1, 1, 1, 1], [0] * 6])
    return x, mask


@pytest.mark.parametrize("name", [*PARAMETER_FREE, "adapool"])
def test_fullgraph_trace_matches_eager(name):
    """Dynamo traces the whole forward without a graph break (aot_eager backend: fast)."""
    torch._dynamo.reset()
    pooler = pw.get_pooler(name, **KWARGS.get(name, {})).eval()
    x, mask = _inputs()
    compiled = torch.compile(pooler, fullgraph=True, backend="aot_eager")
    torch.testing.assert_close(compiled(x, mask), pooler(x, mask), atol=1e-5, rtol=1e-5)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["mean", "max", "adapool"])
def test_inductor_matches_eager(name):
    torch._dynamo.reset()
    pooler = pw.get_pooler(name, **KWARGS.get(name, {})).eval()
    x, mask = _inputs()
    compiled = torch.compile(pooler, fullgraph=True)
    torch.testing.assert_close(compiled(x, mask), pooler(x, mask), atol=1e-5, rtol=1e-5)
