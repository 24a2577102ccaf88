"""The compute-scaling report and the scaling preset's grid."""

import pandas as pd
import pytest

from poolwise.experiments.knn import KNNConfig, train_flops_per_sample
from poolwise.experiments.knn_presets import PRESETS
from poolwise.report.knn_scaling import PAPER_FLOPS, scaling_table, write_scaling_report


def test_flops_per_sample_by_hand():
    cfg = KNNConfig(k=4, pooler="mean", depth=2, dim=16, num_heads=8, ffn_dim=64, num_vectors=128)
    per_token = 4 * 16 * 16 + 2 * 128 * 16 + 2 * 16 * 64  # projections, attention, FFN
    assert train_flops_per_sample(cfg) == 6.0 * 2 * 128 * per_token
    cls = KNNConfig(k=4, pooler="cls_token", depth=2)
    assert train_flops_per_sample(cls) > train_flops_per_sample(KNNConfig(k=4, pooler="adapool", depth=2))
    assert train_flops_per_sample(KNNConfig(k=4, depth=12)) * 72_000_000 == PAPER_FLOPS


def test_scaling_preset_crosses_points_with_the_grid_cheapest_first():
    preset = PRESETS["scaling"]
    bases = preset.configs()
    assert [b["depth"] for b in bases] == [1, 2, 4, 1, 12]
    assert bases[3]["num_samples"] == 80_000 and bases[4]["batch_size"] == 750 and bases[4]["dropout"] == 0.1
    collapsed = preset.configs({"num_samples": 100, "depth": 1, "batch_size": 8, "lr": 1e-3, "dropout": 0.0})
    assert len(collapsed) == 1  # points made equal by --set run once
    assert PRESETS["quick"].configs() == [PRESETS["quick"].base]
    variants = PRESETS["variants"].configs()
    assert len(variants) == 8 and all(v["depth"] == 2 for v in variants)
    assert variants[5]["fresh_data"] is True
    assert variants[7] == {**variants[0], "epochs": 15, "fresh_data": True}


def frame() -> pd.DataFrame:
    rows = []
    for depth, sg, flops in ((1, 80_000, 1e12), (4, 80_000, 4e12)):
        for pooler, loss in (("adapool", 0.01 / depth), ("max", 0.03), ("mean", 0.05)):
            for seed in (0, 1):
                rows.append({"pooler": pooler, "k": 16, "snr": 0.125, "seed": seed, "depth": depth,
                             "num_samples": 20_000, "epochs": 5, "setting": f"depth={depth}",
                             "sample_gradients": sg,
                             "train_flops": flops, "test_signal_loss": loss + 0.001 * seed, "wall_s": 10.0})
    return pd.DataFrame(rows)


def test_table_margins_and_files(tmp_path):
    table = scaling_table(frame())
    assert list(table.depth) == [1, 4] and list(table.seeds) == [2, 2]
    assert table["max/adapool"].tolist() == pytest.approx([0.0305 / 0.0105, 0.0305 / 0.003])
    paths = write_scaling_report(frame(), tmp_path)
    text = paths["scaling_table"].read_text()
    row = "| 0.125 | depth=4 | 80,000 | 4 | 0.003 | 0.0305 | 0.0505 | 10.17x | 16.83x | 2 | 10 |"
    assert row in text
    assert paths["scaling_plot"].stat().st_size > 20_000


def test_no_runs_with_flops_is_an_error(tmp_path):
    with pytest.raises(ValueError, match="no finished kNN runs"):
        write_scaling_report(pd.DataFrame(), tmp_path)


def test_compact_labels_name_what_each_setting_changes():
    from poolwise.report.knn_scaling import compact_labels

    quick = {"batch_size": 64, "lr": 0.002, "dropout": 0.0, "num_samples": 20_000}
    paper = {"batch_size": 750, "lr": 0.0005, "dropout": 0.1, "num_samples": 20_000}
    points = [{**quick, "depth": 1}, {**quick, "depth": 2}, {**quick, "depth": 1, "num_samples": 80_000},
              {**paper, "depth": 12}]
    keys = ["batch_size", "depth", "dropout", "lr", "num_samples"]
    labels = compact_labels(points, keys)
    assert sorted(labels.values()) == sorted(["depth=1", "depth=2", "depth=1, num_samples=80000",
                                              "batch_size=750, depth=12, dropout=0.1, lr=0.0005"])
    variants = [{"dropout": 0.0, "epochs": 5}, {"dropout": 0.1, "epochs": 5}, {"dropout": 0.0, "epochs": 15}]
    labels = compact_labels(variants, ["dropout", "epochs"])
    assert sorted(labels.values()) == ["-", "dropout=0.1", "epochs=15"]
    tied = compact_labels([{"epochs": 1}, {"epochs": 2}], ["epochs"])
    assert sorted(tied.values()) == ["epochs=1", "epochs=2"]


def test_families_join_only_runs_that_differ_in_compute(tmp_path):
    """The plot's lines: settings that differ only in depth / samples / epochs form a family;
    an optimiser change starts another (the scaling study's quick and paper optimisers)."""
    from poolwise.report.knn_scaling import scaling_frame
    from poolwise.runner import RunSpec
    from poolwise.runner.store import ResultsStore

    quick = {"batch_size": 64, "lr": 0.002, "num_samples": 20_000, "epochs": 5}
    points = [{**quick, "depth": 1}, {**quick, "depth": 2}, {**quick, "depth": 1, "num_samples": 80_000},
              {"batch_size": 750, "lr": 5e-4, "num_samples": 20_000, "epochs": 5, "depth": 12}]
    with ResultsStore(tmp_path / "runs.sqlite") as store:
        for i, point in enumerate(points):
            spec = RunSpec("adapool-knn", {**point, "pooler": "adapool", "k": 16, "seed": 0})
            assert store.claim(spec) == "claimed"
            metrics = {"snr": 0.125, "sample_gradients": point["num_samples"] * point["epochs"],
                       "train_flops": 1e12 * (i + 1), "test_signal_loss": 0.01}
            store.mark_done(spec, {"metrics": metrics}, 1.0)
        df = scaling_frame(store)
    families = dict(zip(df.depth.astype(str) + "/" + df.num_samples.astype(str), df.family))
    assert families["1/20000"] == families["2/20000"] == families["1/80000"] == "batch_size=64, lr=0.002"
    assert families["12/20000"] == "batch_size=750, lr=0.0005"
    assert "depth=2" in set(df.setting)


def test_parse_setting_inverts_setting_label():
    from poolwise.report.settings import parse_setting, setting_label

    cfg = {"lr": 0.0005, "dropout": 0.1, "fresh_data": True, "marker_std": None, "data": "a, b.csv",
           "model": "sentence-transformers/all-MiniLM-L6-v2", "depth": 12}
    assert parse_setting(setting_label(cfg, sorted(cfg))) == cfg
    assert parse_setting("") == {}
    with pytest.raises(ValueError, match="not a setting label"):
        parse_setting("depth")
