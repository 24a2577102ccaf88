"""The kNN report's claim checks on hand-made frames (a win, a tie, a sweep cut short)."""

import pandas as pd

from poolwise.report.knn import claim_check, claim_checks


def frame(cells: dict[tuple[str, float], list[float]]) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                "pooler": p,
                "snr": s,
                "k": int(s * 128),
                "seed": seed,
                "test_signal_loss": v,
                "baseline_centroid": 0.05,
                "baseline_query": 0.04,
            }
            for (p, s), vals in cells.items()
            for seed, v in enumerate(vals)
        ]
    )


def test_a_clear_margin_holds_with_its_ratios():
    lines = claim_check(
        frame(
            {
                ("adapool", 0.125): [0.010, 0.011, 0.009],
                ("max", 0.125): [0.030, 0.031, 0.029],
                ("mean", 0.125): [0.050, 0.051, 0.049],
                ("cls_token", 0.125): [0.04, 0.04, 0.04],
            }
        )
    )
    assert lines[0].startswith(
        "SNR 0.125: AdaPool below mean and max (loss over AdaPool's: MaxPool 3.0x, "
        "AvgPool 5.0x, ClsToken (learned token) 4.0x): **holds** (adapool - mean = -0.04"
    )
    assert lines[-1] == "AdaPool lowest at SNR 0.03-0.25 over the settings tested: **agrees**"


def test_a_margin_inside_the_seed_noise_is_inconclusive():
    lines = claim_check(
        frame(
            {
                ("adapool", 0.125): [0.010, 0.030, 0.020],
                ("max", 0.125): [0.025, 0.012, 0.031],
                ("mean", 0.125): [0.050, 0.051, 0.049],
            }
        )
    )
    assert "**inconclusive**" in lines[0] and lines[-1].endswith("**inconclusive**")


def test_a_sweep_cut_short_still_reports_what_it_has():
    # SNR 0.125 lacks mean and ClsToken (killed mid-sweep); SNR 0.25 lacks AdaPool
    checks = claim_checks(
        frame(
            {
                ("adapool", 0.03125): [0.02, 0.021],
                ("max", 0.03125): [0.05, 0.051],
                ("mean", 0.03125): [0.06, 0.061],
                ("adapool", 0.125): [0.01, 0.011],
                ("max", 0.125): [0.03, 0.031],
                ("max", 0.25): [0.02, 0.021],
            }
        )
    )
    assert [what.split(" (")[0] for what, _ in checks] == [
        "SNR 0.0312: AdaPool below mean and max",
        "SNR 0.125: AdaPool below max",
    ]


def test_mean_at_snr_one_within_ten_percent_of_the_best():
    checks = claim_checks(
        frame({("max", 1.0): [0.0100, 0.0101, 0.0099], ("mean", 1.0): [0.0102, 0.0103, 0.0101]})
    )
    assert len(checks) == 1 and checks[0][1].outcome == "holds"
    checks = claim_checks(
        frame({("max", 1.0): [0.0100, 0.0101, 0.0099], ("mean", 1.0): [0.02, 0.0201, 0.0199]})
    )
    assert checks[0][1].outcome == "fails"


def test_learning_curves_include_runs_still_under_way(tmp_path, monkeypatch):
    """The curve report reads finished runs from the store and unfinished ones from their
    checkpoints: a sweep of hours shows its curves so far."""
    import torch

    from poolwise.experiments.knn import checkpoint_path
    from poolwise.report.knn_curve import curve_frame, write_curve_report
    from poolwise.runner import ResultsStore, RunSpec

    monkeypatch.setenv("POOLWISE_CACHE", str(tmp_path / "cache"))
    base = {"k": 4, "num_samples": 60, "num_vectors": 16, "dim": 4, "depth": 1, "num_heads": 2,
            "ffn_dim": 8, "epochs": 3, "batch_size": 16, "test_every_epoch": True, "resume": True}
    ada = RunSpec("adapool-knn", {**base, "pooler": "adapool"})
    mx = RunSpec("adapool-knn", {**base, "pooler": "max"})
    store = ResultsStore(tmp_path / "runs.sqlite")
    store.mark_running(ada)
    history = [{"epoch": e, "train_loss": 1.0, "val_loss": 0.5, "test_loss": 0.1 / e,
                "sample_gradients": 48 * e, "wall_s": 10.0 * e} for e in (1, 2, 3)]
    store.mark_done(ada, {"metrics": {"test_signal_loss": 0.0333}, "history": history}, 30.0)
    path = checkpoint_path(mx.config())
    path.parent.mkdir(parents=True)
    torch.save({"history": [{**h, "test_loss": 0.3 / h["epoch"]} for h in history[:2]]}, path)
    df = curve_frame(store, [ada, mx])
    assert sorted(zip(df.pooler, df.epoch, df.status)) == [
        ("adapool", 1, "done"), ("adapool", 2, "done"), ("adapool", 3, "done"), ("max", 1, "running"),
        ("max", 2, "running")]
    paths = write_curve_report(df, tmp_path / "out", every=1)
    md = paths["curve_table"].read_text()
    assert "| 0.25 | 96 | 0.05 | 0.15 | 3.00x |" in md  # epoch 2: max 0.15 over AdaPool 0.05
    assert "MaxPool SNR 0.25 seed 0: 2 epochs (running" in md and paths["curve_plot"].stat().st_size > 5000
    store.close()
