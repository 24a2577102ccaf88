"""Every pooler on CUDA gives the CPU path's result (padded and packed); skipped without a GPU."""

import pytest
import torch

import poolwise as pw

from .helpers import ALL, KWARGS, build

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


@pytest.mark.parametrize("name", ALL)
def test_cuda_matches_cpu(name):
    torch.manual_seed(0)
    cpu = build(name)
    gpu = pw.get_pooler(name, **KWARGS.get(name, {})).eval().cuda()
    gpu.load_state_dict(cpu.state_dict())
    x = torch.randn(5, 9, 8) * 2
    mask = torch.tensor([[1] * 9, [0, 0, 0, 1, 1, 1, 1, 1, 1], [1, 0, 1, 0, 1, 0, 1, 0, 1], [0] * 9,
                         [0, 0, 0, 0, 1, 0, 0, 0, 0]]).bool()
    cu = torch.cat([torch.zeros(1, dtype=torch.long), mask.sum(1).cumsum(0)])
    with torch.no_grad():
        ref = cpu(x, mask)
        torch.testing.assert_close(gpu(x.cuda(), mask.cuda()).cpu(), ref, atol=1e-4, rtol=1e-4)
        torch.testing.assert_close(gpu.packed(x[mask].cuda(), cu.cuda()).cpu(), ref, atol=1e-4, rtol=1e-4)
