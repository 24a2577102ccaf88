"""Recommendations and the paper-findings check, on hand-made summaries."""

import pandas as pd

from poolwise.report.compare import recommend, summarize, task_table
from poolwise.report.pool_me_wisely import findings_markdown, findings_table


def _df(rows):
    return pd.DataFrame(
        [
            {"task": t, "pooler": p, "seed": s, "metric": m, "value": v}
            for t, p, m, vals in rows
            for s, v in enumerate(vals)
        ]
    )


def test_summary_ranks_by_metric_direction():
    s = summarize(
        _df(
            [
                ("a", "mean", "accuracy", [80, 82]),
                ("a", "max", "accuracy", [90, 90]),
                ("f", "last", "mse", [0.5, 0.5]),
                ("f", "mean", "mse", [0.9, 1.1]),
            ]
        )
    )
    assert s[s.task == "a"]["pooler"].tolist() == ["max", "mean"]
    assert s[s.task == "f"]["pooler"].tolist() == ["last", "mean"]  # lower MSE first
    row = s[(s.task == "a") & (s.pooler == "mean")].iloc[0]
    assert row["mean"] == 81 and row["std"] == 1 and row["n"] == 2
    assert "**90 ± 0**" in task_table(s, "a")


def test_recommendation_compares_gap_with_seed_spread():
    clear = summarize(_df([("a", "max", "accuracy", [90, 91]), ("a", "mean", "accuracy", [80, 81])]))
    r = recommend(clear, "a")
    assert r["best"] == "max" and r["runner_up"] == "mean" and r["clear"] is True
    assert r["verdict"].startswith("use max")
    close = summarize(_df([("a", "max", "accuracy", [80, 90]), ("a", "mean", "accuracy", [82, 86])]))
    assert (
        recommend(close, "a")["clear"] is False
        and "within the seed spread" in recommend(close, "a")["verdict"]
    )
    single = summarize(_df([("a", "max", "accuracy", [90]), ("a", "mean", "accuracy", [80])]))
    assert recommend(single, "a")["clear"] is None and "one seed" in recommend(single, "a")["verdict"]


def test_findings_mark_agreement_per_task():
    s = summarize(
        _df(
            [
                ("text-bbc", "first", "accuracy", [80, 80]),
                ("text-bbc", "mean", "accuracy", [90, 90]),
                ("text-bbc", "sum", "accuracy", [89, 89]),
                ("text-rt", "first", "accuracy", [70, 70]),
                ("text-rt", "mean", "accuracy", [69, 69]),
                ("text-rt", "sum", "accuracy", [75, 75]),
                ("ts-forecast", "last", "mse", [0.7, 0.7]),
                ("ts-forecast", "mean", "mse", [1.0, 1.0]),
            ]
        )
    )
    ft = findings_table(s).set_index("paper's finding")
    assert (
        ft.loc["global text tasks (classification): Avg and Sum beat Last clearly", "verdict"]
        == "partly (1/2)"
    )
    assert ft.loc["forecasting: Last is the best pooling", "verdict"] == "agrees"
    assert "ViT classification: CLS best of the fixed poolings" not in ft.index  # vision not run
    md = findings_markdown(
        s, {"text": ["text-bbc", "text-rt"], "timeseries": ["ts-forecast"]}, {"text": 60.0}
    )
    assert "## text (12 runs, 1.0 min of run time)" in md and "**partly (1/2)**" in md


def test_runs_of_different_settings_are_never_averaged(tmp_path):
    """Two sweeps into one store that differ in a setting: each setting is its own row."""
    from poolwise.report import compare_frame, knn_frame, summarize
    from poolwise.report.settings import other_settings
    from poolwise.runner import ResultsStore, RunSpec

    store = ResultsStore(tmp_path / "runs.sqlite")
    for epochs, value in ((1, 33.3), (2, 50.0)):
        spec = RunSpec("ts-gunpoint", {"pooler": "mean", "seed": 0, "epochs": epochs})
        store.mark_running(spec)
        store.mark_done(spec, {"metrics": {"metric": "accuracy", "value": value, "val": 0, "best_epoch": 1,
                                           "train_s": 0, "features_s": 0}}, 1.0)
    summary = summarize(compare_frame(store))
    assert sorted(summary.pooler) == ["mean [epochs=1]", "mean [epochs=2]"]
    assert sorted(summary["mean"]) == [33.3, 50.0] and (summary.n == 1).all()
    for epochs, value in ((1, 0.02), (2, 0.01)):
        spec = RunSpec("adapool-knn", {"k": 4, "pooler": "mean", "seed": 0, "epochs": epochs})
        store.mark_running(spec)
        store.mark_done(spec, {"metrics": {"test_signal_loss": value, "best_val_loss": value, "best_epoch": 1,
                                           "baseline_centroid": 0, "baseline_query": 0, "snr": 4 / 128}}, 1.0)
    assert sorted(knn_frame(store).pooler) == ["mean [epochs=1]", "mean [epochs=2]"]
    stored = [r["config"] for r in store.rows("adapool-knn", "done")]
    planned = [dict(RunSpec("adapool-knn", {"k": 8, "pooler": "max", "epochs": 2}).params)]
    assert other_settings(stored, planned, ("pooler", "k", "seed")) == {"epochs": (["1", "2"], ["2"])}
    assert other_settings(stored[1:], planned, ("pooler", "k", "seed")) == {}
    store.close()
