"""Registry, resolver, repr, config and error messages."""

import pytest
import torch

import poolwise as pw
from poolwise.pooling import AdaPool, MeanPooling

from .helpers import ALL, KWARGS, D, build

NAMES = ["adapool", "attention", "first", "gated", "gem", "last", "latent_attention", "max", "mean",
         "mean_sqrt_len", "min", "multi", "softmax", "sum", "wavg", "weighted_mean"]
ALIASES = {"cls": "first", "avg": "mean", "map": "attention", "pma": "attention"}


def test_every_documented_name_is_registered():
    assert pw.list_poolers() == NAMES
    assert set(pw.list_poolers(aliases=True)) == set(NAMES) | set(ALIASES)
    for alias, name in ALIASES.items():
        assert pw.get_pooler(alias, **KWARGS.get(name, {})).name == name


def test_names_are_normalised():
    assert isinstance(pw.get_pooler(" Mean "), MeanPooling)
    assert pw.get_pooler("mean-sqrt-len").name == "mean_sqrt_len"


def test_unknown_name_lists_known_ones_and_suggests():
    with pytest.raises(ValueError, match=r"unknown pooler 'meen'\. Did you mean 'mean'\?.*adapool"):
        pw.get_pooler("meen")


def test_missing_dim_is_named():
    with pytest.raises(TypeError, match=r"'adapool' is learned and needs dim \(the token feature size"):
        pw.get_pooler("adapool")
    with pytest.raises(TypeError, match="needs max_len"):
        pw.get_pooler("wavg")


def test_unexpected_kwargs_are_named_with_accepted_ones():
    with pytest.raises(TypeError, match=r"'mean' got unexpected argument\(s\) dim; it accepts: empty"):
        pw.get_pooler("mean", dim=4)


def test_resolver_accepts_lists_dicts_and_instances():
    multi = pw.get_pooler(["mean", "max"])
    assert multi.name == "multi" and multi(torch.randn(2, 3, 4)).shape == (2, 8)
    assert pw.get_pooler({"name": "max", "empty": "nan"}).empty == "nan"
    inst = MeanPooling()
    assert pw.get_pooler(inst) is inst
    with pytest.raises(TypeError, match="extra arguments"):
        pw.get_pooler(inst, empty="nan")
    with pytest.raises(ValueError, match="'name' key"):
        pw.get_pooler({"empty": "zero"})


@pytest.mark.parametrize("name,expected", [
    ("mean", "MeanPooling(empty='zero')"),
    ("first", "FirstPooling(empty='zero')"),
    ("gem", "GeMPooling(p=3.0, learn=True, channels=1, p_min=1.0, p_max=10.0, eps=1e-06, empty='zero')"),
    ("softmax", "SoftmaxPooling(t=1.0, learn=True, channels=1, empty='zero')"),
    ("wavg", "WeightedAveragePooling(max_len=64, align='start', empty='zero')"),
])
def test_exact_repr_of_flat_poolers(name, expected):
    assert repr(pw.get_pooler(name, **KWARGS.get(name, {}))) == expected


def test_exact_repr_of_adapool():
    assert repr(AdaPool(4, num_heads=2, query=0)) == (
        "AdaPool(\n"
        "  dim=4, num_heads=2, query=0, scale='dim', bias=False, dropout=0.0, empty='zero'\n"
        "  (q_proj): Linear(in_features=4, out_features=4, bias=False)\n"
        "  (k_proj): Linear(in_features=4, out_features=4, bias=False)\n"
        "  (v_proj): Linear(in_features=4, out_features=4, bias=False)\n"
        "  (out_proj): Linear(in_features=4, out_features=4, bias=False)\n"
        ")"
    )


def test_multi_config_nests_member_configs():
    cfg = pw.get_pooler("multi", poolers=["mean", {"name": "gem", "p": 2.0}]).config()
    assert cfg["poolers"][1]["p"] == 2.0 and cfg["poolers"][0] == {"name": "mean", "empty": "zero"}
    assert pw.Pooler.from_config(cfg).config() == cfg


def test_from_config_on_a_subclass_checks_the_type():
    with pytest.raises(ValueError, match="not a AdaPool"):
        AdaPool.from_config({"name": "mean"})


def test_callable_query_is_not_json_safe():
    pool = AdaPool(4, query=lambda x, m: x[:, 0])
    with pytest.raises(TypeError, match="not JSON-safe"):
        pool.config()


@pytest.mark.parametrize("x,mask,err,match", [
    (torch.randn(2, 3), None, ValueError, r"shape \(B, N, D\).*got 2 dimensions"),
    ([[1.0]], None, TypeError, "must be a torch.Tensor"),
    (torch.ones(2, 3, 4, dtype=torch.long), None, TypeError, "floating-point"),
    (torch.randn(2, 3, 4), torch.ones(2, 4), ValueError, r"mask must have shape \(B, N\) = \(2, 3\)"),
    (torch.randn(2, 3, 4), torch.ones(2, 3), TypeError, "bool or integer 0/1.*mask == 0"),
    (torch.randn(2, 3, 4), torch.full((2, 3), 2), ValueError, r"only 0 and 1.*\[2\]"),
])
def test_bad_inputs_get_clear_errors(x, mask, err, match):
    with pytest.raises(err, match=match):
        pw.get_pooler("mean")(x, mask)


def test_learned_pooler_checks_feature_size():
    with pytest.raises(ValueError, match="x has D=5 features but this pooler was built with dim=4"):
        AdaPool(4)(torch.randn(2, 3, 5))


@pytest.mark.parametrize("cu,match", [
    (torch.tensor([0, 2, 4]), "end at T=5"),
    (torch.tensor([1, 5]), "start at 0"),
    (torch.tensor([0, 3, 2, 5]), "never decrease"),
])
def test_bad_cu_seqlens(cu, match):
    with pytest.raises(ValueError, match=match):
        pw.get_pooler("mean").packed(torch.randn(5, 4), cu)


def test_packed_type_errors():
    with pytest.raises(ValueError, match=r"packed x must have shape \(T, D\)"):
        pw.get_pooler("mean").packed(torch.randn(2, 5, 4), torch.tensor([0, 5]))
    with pytest.raises(TypeError, match="1-D integer tensor"):
        pw.get_pooler("mean").packed(torch.randn(5, 4), torch.tensor([0.0, 5.0]))


@pytest.mark.parametrize("name,kwargs,match", [
    ("mean", {"empty": "ignore"}, "empty must be one of 'zero', 'nan', 'raise'"),
    ("adapool", {"dim": 6, "num_heads": 4}, "num_heads must be a positive divisor of dim=6"),
    ("adapool", {"dim": 4, "query": "first"}, "query must be 'mean', a token index"),
    ("adapool", {"dim": 4, "scale": "sqrt"}, "scale must be 'dim', 'head_dim'"),
    ("gem", {"p": 20.0}, r"strictly inside \(p_min, p_max\)"),
    ("gem", {"p_min": 0.0}, "0 < p_min < p_max"),
    ("softmax", {"channels": 4, "learn": False}, "channels > 1 needs learn=True"),
    ("wavg", {"max_len": 0}, "max_len must be a positive int"),
    ("wavg", {"max_len": 4, "align": "middle"}, "align must be 'start' or 'end'"),
    ("attention", {"dim": 4, "num_queries": 0}, "num_queries must be a positive int"),
    ("multi", {"poolers": []}, "non-empty list"),
    ("multi", {"poolers": ["mean"], "combine": "max"}, "combine must be one of"),
])
def test_bad_constructor_arguments(name, kwargs, match):
    with pytest.raises(ValueError, match=match):
        pw.get_pooler(name, **kwargs)


def test_multi_proj_needs_dim():
    with pytest.raises(TypeError, match="combine='proj' needs dim"):
        pw.get_pooler("multi", poolers=["mean", "max"], combine="proj")


def test_wavg_longer_than_max_len_raises_but_padding_beyond_is_fine():
    wavg = pw.get_pooler("wavg", max_len=4)
    with pytest.raises(ValueError, match="a row has 6 real tokens but max_len=4"):
        wavg(torch.randn(2, 6, 3))
    mask = torch.zeros(2, 6, dtype=torch.bool)
    mask[:, 2:6] = True  # 4 real tokens in a padded length of 6
    assert torch.isfinite(wavg(torch.randn(2, 6, 3), mask)).all()


def test_softmax_channel_count_checked():
    with pytest.raises(ValueError, match=r"channels=4 \(expected 1 or D\)"):
        pw.get_pooler("softmax", channels=4)(torch.randn(2, 3, 5))


def test_adapool_query_index_out_of_range():
    mask = torch.tensor([[1, 1, 1], [1, 0, 0]])
    with pytest.raises(ValueError, match=r"query index 2 does not exist in row\(s\) \[1\]"):
        AdaPool(4, query=2)(torch.randn(2, 3, 4), mask)


def test_adapool_callable_query_shape_checked():
    with pytest.raises(ValueError, match=r"must return \(B, D\)"):
        AdaPool(4, query=lambda x, m: x)(torch.randn(2, 3, 4))


@pytest.mark.parametrize("name", ALL)
def test_reset_parameters_restores_initial_state(name):
    pooler = build(name, perturb=False)
    before = {k: v.clone() for k, v in pooler.state_dict().items()}
    with torch.no_grad():
        for p in pooler.parameters():
            p.add_(1.0)
    pooler.reset_parameters()
    for key, value in pooler.state_dict().items():
        if key.endswith(("logits", "temperature", "p_raw")) or "norm" in key or key.endswith("mlp.0.weight"):
            assert torch.equal(value, before[key]), key  # deterministic inits come back exactly
        else:
            assert torch.isfinite(value).all() and not torch.equal(value, before[key] + 1.0), key


def test_factory_kwargs_set_dtype():
    pool = pw.get_pooler("adapool", dim=4, dtype=torch.float64)
    assert pool.q_proj.weight.dtype == torch.float64
    assert pool(torch.randn(2, 3, 4, dtype=torch.float64)).dtype == torch.float64


def test_output_dim():
    assert pw.get_pooler(["mean", "max"]).output_dim(16) == 32
    assert pw.get_pooler("attention", dim=4, num_queries=3, flatten=True).output_dim(4) == 12
    out = pw.get_pooler("attention", dim=4, num_queries=3)(torch.randn(2, 5, 4))
    assert out.shape == (2, 3, 4)


@pytest.mark.parametrize("name", ALL)
@pytest.mark.parametrize("view", ["feature_slice", "token_stride"])
def test_strided_inputs_pool_like_their_contiguous_copies(name, view):
    """Non-contiguous views (``h[..., :D]``, ``x[:, ::2]``) on every path: eager inference
    (segment kernels and the compiled kernel) and with autograd (dense kernels)."""
    torch.manual_seed(0)
    pooler = build(name)
    if view == "feature_slice":
        x = torch.randn(3, 7, 2 * D)[..., :D]
    else:
        x = torch.randn(3, 14, D)[:, ::2]
    mask = torch.tensor([[1] * 7, [0, 0, 1, 1, 1, 1, 1], [1, 0, 1, 0, 1, 1, 0]]).bool()
    assert not x.is_contiguous()
    with torch.no_grad():
        torch.testing.assert_close(pooler(x, mask), pooler(x.contiguous(), mask))
    xg = x.detach().requires_grad_(True)
    torch.testing.assert_close(pooler(xg, mask), pooler(x.contiguous(), mask).detach(),
                               atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("name", ALL)
@pytest.mark.parametrize("mode", ["inference_mode", "no_grad", "grad"])
def test_every_pooler_builds_and_runs_in_every_autograd_mode(name, mode):
    """Serving code builds poolers under ``torch.inference_mode()``; training under grad."""
    context = {"inference_mode": torch.inference_mode, "no_grad": torch.no_grad,
               "grad": torch.enable_grad}[mode]
    x = torch.randn(3, 6, D)
    mask = torch.tensor([[1] * 6, [0, 0, 1, 1, 1, 1], [0] * 6]).bool()
    with context():
        pooler = pw.get_pooler(name, **KWARGS.get(name, {})).eval()
        first = pooler(x, mask)
        again = pooler(x, mask)  # a second call (where a cache would be read)
    ref = build(name, perturb=False)
    ref.load_state_dict(pooler.state_dict())
    with torch.no_grad():
        torch.testing.assert_close(first, ref(x, mask), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(again, first)
    assert torch.isfinite(first).all()


@pytest.mark.parametrize("name, kwargs, err, match", [
    ("gem", {"p": "3"}, ValueError, "GeMPooling: p must be a number; got '3'"),
    ("adapool", {"dim": True}, ValueError, "AdaPool: dim must be a positive int .* got True"),
    ("adapool", {"dim": 8, "dropout": 1.5}, ValueError, r"dropout must be a number in \[0.0, 1.0\); got 1.5"),
    ("adapool", {"dim": 8, "bias": "yes"}, ValueError, "bias must be True or False; got 'yes'"),
    ("softmax", {"t": "a"}, ValueError, "SoftmaxPooling: t must be a number"),
    ("attention", {"dim": 8, "mlp_ratio": "2"}, ValueError, "mlp_ratio must be a number >= 0.0"),
    ("gated", {"dim": 8, "hidden": True}, ValueError, "hidden must be a positive int; got True"),
    ("multi", {"poolers": ["mean"], "dim": 2.5}, ValueError, "MultiPooling: dim must be a positive int"),
])
def test_config_values_of_the_wrong_type_are_named(name, kwargs, err, match):
    with pytest.raises(err, match=match):
        pw.get_pooler(name, **kwargs)


@pytest.mark.parametrize("name", ALL)
def test_inputs_the_pooler_cannot_use_get_errors_in_its_voice(name):
    pooler = build(name)
    cls = type(pooler).__name__
    with pytest.raises(ValueError, match=rf"{cls}: x has D=0 features"):
        pooler(torch.randn(2, 3, 0))
    with pytest.raises(ValueError, match=rf"{cls}: x is on the meta device"):
        pooler(torch.empty(2, 3, D, device="meta"))
    learned = any(isinstance(m, torch.nn.Linear) for m in pooler.modules())
    half = torch.randn(2, 3, D).half()
    if learned:  # projections multiply x: both in one dtype, or a TypeError that says how
        with pytest.raises(TypeError, match=r"x is torch.float16 but the pooler's weights are torch.float32"):
            pooler(half)
        assert pooler.half()(half).dtype == torch.float16
    else:  # computed in fp32 inside, returned in the input dtype
        assert pooler(half).dtype == torch.float16
