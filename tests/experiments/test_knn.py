import hashlib
import json
import math

import pytest
import torch

from poolwise.experiments import KNNConfig, run_knn
from poolwise.models import KNNCentroidModel
from poolwise.pooling import AdaPool
from poolwise.runner import RunSpec

TINY = {"num_samples": 60, "num_vectors": 16, "dim": 4, "depth": 1, "num_heads": 2, "ffn_dim": 8,
        "epochs": 2, "batch_size": 16, "lr": 1e-3}


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("POOLWISE_CACHE", str(tmp_path))


@pytest.mark.parametrize("pooler", ["adapool", "mean", "max", "cls_token", "gem"])
def test_tiny_run_reports_finite_metrics(pooler):
    out = run_knn(KNNConfig(k=4, pooler=pooler, **TINY))
    m = out["metrics"]
    assert len(out["history"]) == 2 and m["best_epoch"] in (1, 2)
    for key in ("test_signal_loss", "best_val_loss", "baseline_centroid", "baseline_query"):
        assert math.isfinite(m[key]) and m[key] >= 0
    assert m["snr"] == 4 / 16


def test_runs_are_deterministic_by_seed():
    a = run_knn(KNNConfig(k=2, seed=3, **TINY))["metrics"]["test_signal_loss"]
    b = run_knn(KNNConfig(k=2, seed=3, **TINY))["metrics"]["test_signal_loss"]
    c = run_knn(KNNConfig(k=2, seed=4, **TINY))["metrics"]["test_signal_loss"]
    assert a == b and a != c


def test_progress_callback_sees_every_epoch():
    seen = []
    run_knn(KNNConfig(k=2, **TINY), lambda e, t, row: seen.append((e, t, sorted(row))))
    assert [s[:2] for s in seen] == [(1, 2), (2, 2)]
    assert seen[0][2] == ["epoch", "train_loss", "val_loss", "wall_s"]


def test_folds_select_distinct_validation_slices():
    a = run_knn(KNNConfig(k=2, seed=0, folds=3, **TINY))["metrics"]["best_val_loss"]
    b = run_knn(KNNConfig(k=2, seed=1, folds=3, **TINY))["metrics"]["best_val_loss"]
    assert a != b


def test_query_marker_lands_on_the_query_vector_with_cls():
    """The paper's code prepended CLS before adding markers, so marker 0 hit the CLS token."""
    model = KNNCentroidModel(dim=4, depth=1, num_heads=2, ffn_dim=8, pooler="cls_token")
    with torch.no_grad():
        model.marker.weight.copy_(torch.tensor([[100.0] * 4, [0.0] * 4]))
    seen = {}
    model.encoder.register_forward_pre_hook(lambda m, args: seen.setdefault("h", args[0]))
    x = torch.zeros(2, 5, 4)
    model(x)
    h = seen["h"]
    assert h.shape == (2, 6, 4)
    assert torch.equal(h[:, 1], torch.full((2, 4), 100.0))  # the query vector, after CLS
    assert (h[:, 0] < 1).all() and (h[:, 2:] == 0).all()


def test_paper_cls_marker_lands_on_the_cls_token():
    """``cls_marker="paper"`` reproduces the paper's code: CLS first, then the markers, so
    marker 0 lands on the CLS token and the query vector gets marker 1 like every other."""
    model = KNNCentroidModel(dim=4, depth=1, num_heads=2, ffn_dim=8, pooler="cls_token", cls_marker="paper")
    with torch.no_grad():
        model.marker.weight.copy_(torch.tensor([[100.0] * 4, [7.0] * 4]))
    seen = {}
    model.encoder.register_forward_pre_hook(lambda m, args: seen.setdefault("h", args[0]))
    model(torch.zeros(2, 5, 4))
    h = seen["h"]
    assert h.shape == (2, 6, 4)
    assert torch.allclose(h[:, 0], model.cls[0, 0] + 100.0)
    assert (h[:, 1:] == 7.0).all()  # the query vector is indistinguishable from the others


def test_cls_marker_is_checked_and_keeps_old_run_keys():
    with pytest.raises(ValueError, match="cls_marker must be one of query, paper; got 'cls'"):
        KNNConfig(k=2, cls_marker="cls", **TINY)
    with pytest.raises(ValueError, match="cls_marker"):
        KNNCentroidModel(dim=4, depth=1, num_heads=2, ffn_dim=8, pooler="cls_token", cls_marker="x")
    default = RunSpec("adapool-knn", {"k": 2, "pooler": "cls_token", **TINY})
    explicit = RunSpec("adapool-knn", {"k": 2, "pooler": "cls_token", "cls_marker": "query", **TINY})
    paper = RunSpec("adapool-knn", {"k": 2, "pooler": "cls_token", "cls_marker": "paper", **TINY})
    assert default.key == explicit.key != paper.key
    # the key of a default run is the hash without the field, as before it existed
    params = {k: v for k, v in default.params.items() if k not in KNNConfig.key_optional}
    blob = json.dumps({"task": "adapool-knn", "params": params}, sort_keys=True, default=str)
    assert default.key == hashlib.sha256(blob.encode()).hexdigest()[:20]


def test_adapool_defaults_follow_the_paper():
    model = KNNCentroidModel(dim=16, depth=1, num_heads=8, pooler="adapool")
    assert isinstance(model.pool, AdaPool)
    assert model.pool.query == 0 and model.pool.residual and model.pool.num_heads == 8
    assert model.pool.scaling == pytest.approx(1 / math.sqrt(2))
    assert model.pool.q_proj.weight.std().item() == pytest.approx(0.02, rel=0.3)


@pytest.mark.parametrize("kwargs,match", [
    ({"k": 0}, "k must be a positive int"),
    ({"k": 200}, r"k must be in \[1, num_vectors=128\]"),
    ({"k": 4, "pooler": "nope"}, "unknown pooler 'nope'"),
    ({"k": 4, "epochs": -1}, "epochs must be a positive int"),
    ({"k": 4, "num_heads": 3}, "num_heads=3 must divide dim=16"),
    ({"k": 4, "lr": 0.0}, "lr must be > 0"),
    ({"k": 4, "device": "tpu"}, "device must be 'auto', 'cpu'"),
])
def test_config_validation(kwargs, match):
    with pytest.raises(ValueError, match=match):
        KNNConfig(**kwargs)


def test_explicit_cpu_device_matches_auto_here():
    if torch.cuda.is_available():
        pytest.skip("auto picks CUDA on this machine")
    a = run_knn(KNNConfig(k=2, device="cpu", **TINY))["metrics"]
    b = run_knn(KNNConfig(k=2, device="auto", **TINY))["metrics"]
    assert a["test_signal_loss"] == b["test_signal_loss"] and a["device"] == "cpu"


def test_cls_still_means_the_learned_token_here_with_a_deprecation_warning():
    with pytest.warns(DeprecationWarning, match="cls_token"):
        cfg = KNNConfig(k=4, pooler="cls", **TINY)
    assert cfg.pooler == "cls_token"
    with pytest.warns(DeprecationWarning, match="cls_token"):
        model = KNNCentroidModel(dim=4, depth=1, num_heads=2, ffn_dim=8, pooler="cls")
    assert model.cls is not None  # a learned token, not the registry's 'first'
    assert KNNCentroidModel(dim=4, depth=1, num_heads=2, ffn_dim=8, pooler="first").cls is None


def test_practitioner_options_are_checked_and_keep_old_run_keys():
    for bad, match in (({"warmup_steps": -1}, "warmup_steps must be an int >= 0"),
                       ({"marker_std": 0.0}, "marker_std must be a number > 0 or None"),
                       ({"fresh_data": "yes"}, "fresh_data must be True or False")):
        with pytest.raises(ValueError, match=match):
            KNNConfig(k=2, **bad, **TINY)
    default = RunSpec("adapool-knn", {"k": 2, **TINY})
    explicit = RunSpec("adapool-knn", {"k": 2, "warmup_steps": 0, "marker_std": None, "fresh_data": False,
                                       **TINY})
    assert default.key == explicit.key != RunSpec("adapool-knn", {"k": 2, "fresh_data": True, **TINY}).key


def test_warmup_factor_and_marker_init():
    from poolwise.experiments.knn import fresh_seed, warmup_factor

    assert [warmup_factor(s, 4) for s in range(6)] == [0.25, 0.5, 0.75, 1.0, 1.0, 1.0]
    assert fresh_seed(0, 2) != fresh_seed(0, 3) and fresh_seed(0, 2) != fresh_seed(1, 2)
    torch.manual_seed(0)
    wide = KNNCentroidModel(dim=64, depth=1, num_heads=2, ffn_dim=8, pooler="mean", marker_std=3.0)
    narrow = KNNCentroidModel(dim=64, depth=1, num_heads=2, ffn_dim=8, pooler="mean")
    assert wide.marker.weight.std() > 2.0 and narrow.marker.weight.std() < 0.05


def _losses(cfg: KNNConfig) -> list[dict]:
    return [{k: v for k, v in row.items() if k != "wall_s"} for row in run_knn(cfg)["history"]]


def test_fresh_data_and_warmup_change_training_and_are_deterministic():
    base = _losses(KNNConfig(k=4, pooler="mean", **TINY))
    fresh = _losses(KNNConfig(k=4, pooler="mean", fresh_data=True, **TINY))
    again = _losses(KNNConfig(k=4, pooler="mean", fresh_data=True, **TINY))
    assert fresh == again
    assert fresh[0]["train_loss"] == base[0]["train_loss"]  # the first epoch uses the fixed sets
    assert fresh[1]["train_loss"] != base[1]["train_loss"]  # the second draws new ones
    warm = _losses(KNNConfig(k=4, pooler="mean", warmup_steps=50, **TINY))
    assert warm[0]["train_loss"] != base[0]["train_loss"]


def test_a_killed_resumable_run_continues_to_the_same_result(monkeypatch):
    """A ``resume`` run stopped after epoch 2 of 4 (the process dies: an exception out of the
    progress callback) and started again finishes with the history, test loss and weights of
    a run never stopped: the checkpoint restores model, optimiser, scheduler, the shuffling
    generator and the fresh-data epoch count. The test loss is in every history row."""
    from poolwise.experiments.knn import checkpoint_path

    cfg = KNNConfig(k=4, pooler="adapool", **{**TINY, "epochs": 4}, fresh_data=True, warmup_steps=3,
                    test_every_epoch=True, resume=True)
    whole = run_knn(KNNConfig(**{**cfg.to_dict(), "resume": False}))

    class Killed(Exception):
        pass

    def die_after_two(epoch, epochs, row):
        if epoch == 2:
            raise Killed

    with pytest.raises(Killed):
        run_knn(cfg, progress=die_after_two)
    assert checkpoint_path(cfg).is_file()
    seen = []
    resumed = run_knn(cfg, progress=lambda e, n, row: seen.append(e))
    assert seen == [3, 4]  # only the epochs left ran
    strip = [{k: v for k, v in r.items() if k != "wall_s"} for r in resumed["history"]]
    assert strip == [{k: v for k, v in r.items() if k != "wall_s"} for r in whole["history"]]
    assert all("test_loss" in r and r["sample_gradients"] == 48 * r["epoch"] for r in strip)
    assert resumed["metrics"]["test_signal_loss"] == whole["metrics"]["test_signal_loss"]
    # the checkpoint loads without unpickling code, and a resumable config keeps others' keys
    state = torch.load(checkpoint_path(cfg), weights_only=True)
    assert state["epoch"] == 4
    plain = dict(TINY)
    assert RunSpec("adapool-knn", {"k": 4, **plain}).key == RunSpec(
        "adapool-knn", {"k": 4, **plain, "resume": False, "test_every_epoch": False}).key
