"""The one-pass single-query attention kernel against the PyTorch path."""

import os

import pytest
import torch

import poolwise as pw
from poolwise import _ext
from poolwise.pooling.attention_core import folded_attention
from poolwise.pooling.dispatch import route, token_kernels
from poolwise.pooling.functional import Segments


@pytest.fixture
def kernel():
    if os.environ.get("POOLWISE_NO_EXT"):
        pytest.skip("kernels disabled by POOLWISE_NO_EXT")
    ext = token_kernels()
    assert ext is not None, _ext.extension_error("poolwise_token_kernels")
    return ext


def _batch():
    torch.manual_seed(0)
    x = torch.randn(5, 9, 16) * 3
    mask = torch.tensor([
        [1, 1, 1, 1, 1, 1, 1, 1, 1],
        [0, 0, 0, 1, 1, 1, 1, 1, 1],   # left padding
        [1, 0, 1, 0, 1, 0, 1, 0, 1],   # holes
        [0, 0, 0, 0, 0, 0, 0, 0, 0],   # empty
        [0, 0, 0, 0, 1, 0, 0, 0, 0],   # one token
    ]).bool()
    return x, mask


def test_kernel_equals_masked_softmax_weighted_sum(kernel):
    x, mask = _batch()
    u = torch.randn(5, 16)
    seg = Segments.from_mask(x, mask)
    got = kernel.attend(seg.table, seg.index, seg.offsets, seg.counts, u)
    scores = torch.einsum("bnd,bd->bn", x, u).masked_fill(~mask, float("-inf"))
    weights = torch.softmax(scores, dim=1).nan_to_num(0.0)
    torch.testing.assert_close(got, torch.einsum("bn,bnd->bd", weights, x), atol=1e-5, rtol=1e-5)
    assert (got[3] == 0).all()


@pytest.mark.parametrize("heads", [2, 3, 8, 13])
@pytest.mark.parametrize("dim", [16, 40])  # 40: a tail after the 16-float vectors
def test_multi_head_kernel_equals_masked_softmax_weighted_sum(kernel, heads, dim):
    x, mask = _batch()
    x = torch.randn(5, 9, dim) * 3
    u = torch.randn(5, heads, dim)
    seg = Segments.from_mask(x, mask)
    got = kernel.attend_heads(seg.table, seg.index, seg.offsets, seg.counts, u)
    scores = torch.einsum("bnd,bhd->bhn", x, u).masked_fill(~mask[:, None], float("-inf"))
    weights = torch.softmax(scores, dim=2).nan_to_num(0.0)
    assert got.shape == (5, heads, dim)
    torch.testing.assert_close(got, torch.einsum("bhn,bnd->bhd", weights, x), atol=1e-5, rtol=1e-5)
    assert (got[3] == 0).all()


@pytest.mark.parametrize("name, kwargs", [
    ("adapool", {}), ("adapool", {"query": 0}), ("adapool", {"num_heads": 4}), ("attention", {}),
    ("attention", {"num_heads": 8}), ("attention", {"num_queries": 3}),
    ("attention", {"num_queries": 2, "num_heads": 2}),
])
def test_poolers_agree_with_and_without_the_kernel(kernel, name, kwargs, monkeypatch):
    x, mask = _batch()
    pool = pw.get_pooler(name, dim=16, **kwargs).eval()
    if kwargs.get("query") == 0:
        mask[3, 0] = True  # an index query needs its token in every row
    with torch.no_grad():
        fast = pool(x, mask)
        monkeypatch.setattr(_ext, "_loaded", {})
        monkeypatch.setattr(_ext, "_errors", {"poolwise_token_kernels": "off for this test"})
        slow = pool(x, mask)
        grad_free = pool.train()(x, mask)  # with grad disabled but training mode: same answer
    torch.testing.assert_close(fast, slow, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(grad_free, slow, atol=1e-5, rtol=1e-5)


def test_kernel_path_returns_no_weights_and_needs_float32(kernel):
    x, mask = _batch()
    lin = torch.nn.Linear(16, 16, bias=False)
    seg = Segments.from_mask(x, mask)
    q = torch.randn(5, 1, 16)
    with torch.no_grad():
        fast = route(x, kernel=True).kernel
        out, attn = folded_attention(x, mask, q, lin, lin, 1, 0.25, kernel=fast)
        ref, ref_attn = folded_attention(x, mask, q, lin, lin, 1, 0.25, seg=seg)
        xd = x.double()
        _, half_attn = folded_attention(xd, mask, q.double(), lin.double(), lin.double(), 1, 0.25,
                                        seg=Segments.from_mask(xd, mask),
                                        kernel=route(xd, kernel=True).kernel)
    assert attn is None and ref_attn is not None and half_attn is not None  # float64: PyTorch path
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("bias", [False, True])
@pytest.mark.parametrize("edit", ["optimizer", "data_mul", "data_copy", "ema", "load_state_dict"])
def test_kernel_adapool_follows_every_kind_of_weight_update(kernel, bias, edit, monkeypatch):
    """Weights changed by an optimiser, through ``.data`` (which moves no version counter), by
    an EMA update under no_grad or by load_state_dict: the next call uses the new weights."""
    x, mask = _batch()
    pool = pw.get_pooler("adapool", dim=16, bias=bias).eval()

    def reference():
        monkeypatch.setattr(_ext, "_loaded", {})
        monkeypatch.setattr(_ext, "_errors", {"poolwise_token_kernels": "off for this test"})
        with torch.no_grad():
            out = pool(x, mask)
        monkeypatch.undo()
        return out

    with torch.no_grad():
        before = pool(x, mask)
    assert "_folded_cache" in pool.__dict__  # the two-projection path ran and cached its matrices
    torch.testing.assert_close(before, reference(), atol=1e-5, rtol=1e-5)
    if edit == "optimizer":
        opt = torch.optim.SGD(pool.parameters(), lr=0.5)
        pool(x, mask).pow(2).sum().backward()
        opt.step()
    elif edit == "data_mul":
        pool.k_proj.weight.data.mul_(3)
    elif edit == "data_copy":
        pool.q_proj.weight.data.copy_(torch.randn(16, 16))
    elif edit == "ema":
        teacher = pw.get_pooler("adapool", dim=16, bias=bias)
        with torch.no_grad():
            for p, t in zip(pool.parameters(), teacher.parameters()):
                p.data.mul_(0.5).add_(t.data, alpha=0.5)
    else:
        pool.load_state_dict({k: torch.randn_like(v) for k, v in pool.state_dict().items()})
    with torch.no_grad():
        after = pool(x, mask)
    assert not torch.allclose(after, before)
    torch.testing.assert_close(after, reference(), atol=1e-4, rtol=1e-4)


def test_kernel_adapool_across_inference_mode(kernel):
    """Built and first run under inference_mode (serving), then used in plain no_grad, and
    the reverse: same outputs, no 'inference tensors' error."""
    x, mask = _batch()
    with torch.inference_mode():
        served = pw.get_pooler("adapool", dim=16, bias=True).eval()
        inside = served(x, mask)
    with torch.no_grad():
        outside = served(x, mask)
    torch.testing.assert_close(outside, inside)
    plain = pw.get_pooler("adapool", dim=16).eval()
    with torch.no_grad():
        ref = plain(x, mask)
    with torch.inference_mode():
        torch.testing.assert_close(plain(x, mask), ref)


PATHS = ["avx512", "avx2", "generic"]


def _reference(x, mask, u):
    scores = torch.einsum("bnd,bhd->bhn", x.double(), u.double()).masked_fill(~mask[:, None], float("-inf"))
    weights = torch.softmax(scores, dim=2).nan_to_num(0.0)
    return torch.einsum("bhn,bnd->bhd", weights, x.double()).float()


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("heads", [1, 3, 4, 8, 11])
# dims: tails after 4-, 8- and 16-float vectors, several column tiles
@pytest.mark.parametrize("dim", [13, 40, 96, 200])
def test_every_instruction_set_path_gives_the_reference(kernel, path, heads, dim):
    """Each path the kernel carries (chosen at run time from the CPU's features) on rows
    longer than one 64-token block, with scores that grow along the row, so the online
    softmax rescales its sums across blocks; plus padding, holes, an empty and a one-token row."""
    if path not in kernel.available_paths():
        pytest.skip(f"this CPU cannot run the {path} path (it has {kernel.available_paths()})")
    gen = torch.Generator().manual_seed(heads * 1000 + dim)
    n = 150
    x = torch.randn(6, n, dim, generator=gen)
    x[0] *= torch.linspace(0.1, 3.0, n)[:, None]  # the maximum keeps moving to later blocks
    mask = torch.ones(6, n, dtype=torch.bool)
    mask[1, :70] = False                 # left padding over a block boundary
    mask[2, ::3] = False                 # holes
    mask[3] = False                      # empty
    mask[4] = False
    mask[4, 97] = True                   # one token
    mask[5, 64:] = False                 # exactly one block
    u = torch.randn(6, heads, dim, generator=gen) * 0.5
    seg = Segments.from_mask(x, mask)
    got = kernel.attend_heads(seg.table, seg.index, seg.offsets, seg.counts, u, path)
    # float32 sums against a float64 reference: row 0's scores reach ~50, so allow 1e-4
    torch.testing.assert_close(got, _reference(x, mask, u), atol=1e-4, rtol=1e-4)
    assert (got[3] == 0).all()
    padded = kernel.attend_masked(x, mask, u, path)  # rows from the mask instead of an index table
    torch.testing.assert_close(padded, got, atol=0, rtol=0)
    one = kernel.attend(seg.table, seg.index, seg.offsets, seg.counts, u[:, 0].contiguous(), path)
    torch.testing.assert_close(one, got[:, 0] if heads == 1 else _reference(x, mask, u[:, :1])[:, 0],
                               atol=1e-4, rtol=1e-4)


def test_the_default_path_is_the_best_the_cpu_has_and_unknown_paths_are_refused(kernel):
    paths = kernel.available_paths()
    assert paths[-1] == "generic" and paths == [p for p in PATHS if p in paths]
    x, mask = _batch()
    u = torch.randn(5, 2, 16)
    seg = Segments.from_mask(x, mask)
    default = kernel.attend_heads(seg.table, seg.index, seg.offsets, seg.counts, u)
    best = kernel.attend_heads(seg.table, seg.index, seg.offsets, seg.counts, u, paths[0])
    assert torch.equal(default, best)
    refused = rf"kernel path 'sse9' is not available on this CPU \(it runs {', '.join(paths)}\)"
    with pytest.raises(RuntimeError, match=refused):
        kernel.attend_heads(seg.table, seg.index, seg.offsets, seg.counts, u, "sse9")


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("dim", [13, 40, 200])
def test_every_path_of_the_token_sums_gives_the_reference(kernel, path, dim):
    """The weighted sums behind mean / sum / mean_sqrt_len / weighted_mean: from an index
    table (``weighted_sum``) and straight from a padded batch and its mask (``masked_sum``,
    every mode), rows longer than one 64-token block, left padding, holes, empty rows."""
    if path not in kernel.available_paths():
        pytest.skip(f"this CPU cannot run the {path} path (it has {kernel.available_paths()})")
    gen = torch.Generator().manual_seed(dim)
    x = torch.randn(5, 150, dim, generator=gen)
    mask = torch.ones(5, 150, dtype=torch.bool)
    mask[1, :70] = False
    mask[2, ::3] = False
    mask[3] = False
    mask[4, 1:] = False
    seg = Segments.from_mask(x, mask)
    w = torch.rand(seg.index.numel(), generator=gen)
    tokens = w.double()[:, None] * seg.table.double()[seg.index]
    ref = torch.zeros(5, dim, dtype=torch.float64).index_add_(0, seg.row, tokens)
    got = kernel.weighted_sum(seg.table, seg.index, seg.offsets, seg.counts, w, path)
    torch.testing.assert_close(got, ref.float(), atol=1e-4, rtol=1e-5)
    rank = (torch.cumsum(mask, 1) * mask).double()
    n = mask.sum(1, keepdim=True).clamp_min(1).double()
    weights = {0: mask.double(), 1: mask / n, 2: mask / n.sqrt(), 3: rank / (n * (n + 1) / 2)}
    for mode, weight in weights.items():  # sum, mean, sqrt_len, weighted_mean
        expect = torch.einsum("bn,bnd->bd", weight, x.double()).float()
        got = kernel.masked_sum(x, mask, mode, path)
        torch.testing.assert_close(got, expect, atol=1e-4, rtol=1e-5)
        assert (got[3] == 0).all()


def test_masked_sum_refuses_what_it_cannot_read(kernel):
    x = torch.randn(2, 5, 8)
    with pytest.raises(RuntimeError, match="mask must be a contiguous bool"):
        kernel.masked_sum(x, torch.ones(2, 5, dtype=torch.int64), 0)
    with pytest.raises(RuntimeError, match="x must be contiguous float32"):
        kernel.masked_sum(x.double(), torch.ones(2, 5, dtype=torch.bool), 0)
    with pytest.raises(RuntimeError, match="mode must be 0"):
        kernel.masked_sum(x, torch.ones(2, 5, dtype=torch.bool), 4)


@pytest.mark.parametrize("name", ["mean", "sum", "mean_sqrt_len", "weighted_mean", "gem", "softmax"])
def test_reducing_poolers_agree_with_and_without_the_kernel(kernel, name, monkeypatch):
    x, mask = _batch()
    pool = pw.get_pooler(name)
    with torch.no_grad():
        fast = pool(x, mask)
        monkeypatch.setattr(_ext, "_loaded", {})
        monkeypatch.setattr(_ext, "_errors", {"poolwise_token_kernels": "off for this test"})
        slow = pool(x, mask)
    torch.testing.assert_close(fast, slow, atol=1e-5, rtol=1e-5)
    assert (fast[3] == 0).all()


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("name, kwargs", [("gem", {}), ("gem", {"p": 7.5}), ("gem", {"channels": 13}),
                                          ("softmax", {}), ("softmax", {"t": -4.0}),
                                          ("softmax", {"channels": 13})])
def test_every_path_of_gem_and_softmax_gives_the_pytorch_result(kernel, path, name, kwargs):
    """The compiled GeM and softmax aggregation (float32 inference) against the poolers'
    PyTorch formulas (the path training uses): padding, holes, empty and one-token rows,
    per-feature powers and temperatures, a feature count with a tail after every vector width."""
    if path not in kernel.available_paths():
        pytest.skip(f"this CPU cannot run the {path} path (it has {kernel.available_paths()})")
    gen = torch.Generator().manual_seed(7)
    x = torch.randn(5, 90, 13, generator=gen) * 2
    mask = torch.ones(5, 90, dtype=torch.bool)
    mask[1, :40] = False
    mask[2, ::3] = False
    mask[3] = False
    mask[4, 1:] = False
    pool = pw.get_pooler(name, **kwargs)
    if kwargs.get("channels"):
        with torch.no_grad():
            next(pool.parameters()).uniform_(-1.5, 1.5, generator=gen)
    with torch.no_grad():
        expect = pool._pool(x, mask)  # the PyTorch formula
        if name == "gem":
            got, _ = kernel.gem(x, mask, pool.power.contiguous(), pool.eps, path=path)
        else:
            got, _ = kernel.softmax_pool(x, mask, pool.temperature.contiguous(), path=path)
    keep = mask.any(1)
    torch.testing.assert_close(got[keep], expect[keep], atol=2e-5, rtol=2e-5)
    assert (got[3] == 0).all()  # an empty row stays zero; the pooler's empty policy does the rest


def test_kernel_path_can_be_forced_from_the_environment(kernel, monkeypatch):
    """$POOLWISE_KERNEL_PATH picks the path of calls that name none (to time another CPU's
    path on this one); a path the CPU lacks is refused by name."""
    gen = torch.Generator().manual_seed(7)
    x = torch.randn(3, 90, 40, generator=gen)
    mask = torch.rand(3, 90, generator=gen) > 0.3
    u = torch.randn(3, 8, 40, generator=gen)
    monkeypatch.setenv("POOLWISE_KERNEL_PATH", "generic")
    forced = kernel.attend_masked(x, mask, u)
    assert torch.equal(forced, kernel.attend_masked(x, mask, u, "generic"))
    if kernel.available_paths()[0] != "generic":  # forced and best differ in summation order
        assert not torch.equal(forced, kernel.attend_masked(x, mask, u, kernel.available_paths()[0]))
    monkeypatch.setenv("POOLWISE_KERNEL_PATH", "sse9")
    with pytest.raises(RuntimeError, match="POOLWISE_KERNEL_PATH=sse9: kernel path 'sse9' is not available"):
        kernel.attend_masked(x, mask, u)


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("shape", [(1, 1), (7, 13), (70, 40), (200, 96)])
def test_row_dots_equal_matrix_vector_product(kernel, path, shape):
    """``row_dots`` (AdaPool's weight fingerprint) is W @ r on every path, rows past a
    64-row block and columns past the vector width included; bad shapes are refused."""
    if path not in kernel.available_paths():
        pytest.skip(f"this CPU cannot run the {path} path")
    gen = torch.Generator().manual_seed(shape[0])
    w = torch.randn(*shape, generator=gen)
    r = torch.randn(shape[1], generator=gen)
    got = kernel.row_dots(w, r, path)
    torch.testing.assert_close(got, (w.double() @ r.double()).float(), atol=1e-5, rtol=1e-5)
    assert torch.equal(got, kernel.row_dots(w, r, path))  # deterministic: the cache compares exactly
    with pytest.raises(RuntimeError, match="row_dots needs W"):
        kernel.row_dots(w, torch.randn(shape[1] + 1), path)


@pytest.mark.parametrize("heads", [1, 3, 8])
def test_attention_kernel_reads_strided_queries_and_writes_heads_first(kernel, heads):
    """The kernel reads a query in place whatever its row and head strides (an expanded
    shared query, a permuted GEMM output) and can write its output heads first; every layout
    gives the same numbers as contiguous input and output. Bad query shapes name what was wrong."""
    gen = torch.Generator().manual_seed(heads)
    x = torch.randn(4, 140, 40, generator=gen)
    mask = torch.rand(4, 140, generator=gen) > 0.2
    mask[2] = False  # an empty row: zero in every layout (the output is not pre-zeroed)
    shared = torch.randn(1, heads, 40, generator=gen)
    want = kernel.attend_masked(x, mask, shared.expand(4, -1, -1).contiguous())
    assert torch.equal(kernel.attend_masked(x, mask, shared.expand(4, -1, -1)), want)
    permuted = torch.randn(heads, 4, 40, generator=gen).permute(1, 0, 2)  # heads B * D apart
    want = kernel.attend_masked(x, mask, permuted.contiguous())
    got = kernel.attend_masked(x, mask, permuted, heads_first=True)
    assert got.shape == (4, heads, 40) and torch.equal(got, want) and (got[2] == 0).all()
    assert heads == 1 or got.stride() == (40, 4 * 40, 1)
    with pytest.raises(RuntimeError, match=r"query must be float32 \(B, H, D\) = \(4, H, 40\)"):
        kernel.attend_masked(x, mask, torch.randn(4, heads, 80)[..., ::2])


@pytest.mark.parametrize("bias", [False, True])
@pytest.mark.parametrize("query, heads", [("mean", 1), ("mean", 4), (0, 1), ([0, -1], 2)])
@pytest.mark.parametrize("empty", ["zero", "nan"])
def test_adapool_kernel_path_keeps_the_empty_policy(kernel, bias, query, heads, empty):
    """The compiled AdaPool path skips the empty-row pass only where an empty row comes out
    zero by itself (no bias, no residual); with biases or a token query's residual the policy
    still applies; real rows equal the textbook form."""
    torch.manual_seed(0)
    pool = pw.get_pooler("adapool", dim=32, num_heads=heads, query=query, bias=bias, empty=empty).eval()
    x = torch.randn(4, 70, 32)
    mask = torch.rand(4, 70) > 0.3
    mask[:, 0] = True
    mask[:, -1] = True
    mask[2] = False
    with torch.no_grad():
        got = pool(x, mask)
        pool.folded = False
        want = pool(x, mask)
    fill = torch.zeros(32) if empty == "zero" else torch.full((32,), float("nan"))
    torch.testing.assert_close(got[2], fill, equal_nan=True)
    torch.testing.assert_close(got[[0, 1, 3]], want[[0, 1, 3]], atol=1e-5, rtol=1e-5)
