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


def test_summary_ranks_by_metric_direction_with_sample_std_and_interval():
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
    # sample std of (80, 82) is sqrt(2) (the population std would be 1); t(0.975, 1) = 12.706
    assert row["mean"] == 81 and abs(row["std"] - 2 ** 0.5) < 1e-12 and row["n"] == 2
    assert abs(row["ci95"] - 12.706205 * 2 ** 0.5 / 2 ** 0.5) < 1e-5
    assert "| mean (paper: Avg) | 81 ± 1.4 [±13] | 2 |" in task_table(s, "a")


def test_recommendation_comes_from_a_test_win_tie_reversal():
    win = _df([("a", "max", "accuracy", [90, 91, 90.5]), ("a", "mean", "accuracy", [80, 81, 80.5])])
    r = recommend(summarize(win), "a", win)
    assert r["best"] == "max" and r["runner_up"] == "mean" and r["clear"] is True
    assert r["verdict"].startswith("use max") and "Welch p = " in r["verdict"]
    # a gap of 3 beside a sample std of 5: the old gap-vs-std rule aside, no test shows it
    tie = _df([("a", "max", "accuracy", [80, 90, 88]), ("a", "mean", "accuracy", [82, 86, 81])])
    r = recommend(summarize(tie), "a", tie)
    assert r["clear"] is False and "not distinguishable" in r["verdict"]
    single = _df([("a", "max", "accuracy", [90]), ("a", "mean", "accuracy", [80])])
    r = recommend(summarize(single), "a", single)
    assert r["clear"] is None and "one seed" in r["verdict"]


def test_recommendation_uses_per_item_hits_when_stored():
    """Two poolers whose seed means differ clearly, but only on 2 of 40 test items: the
    paired bootstrap over items (the test set is small) keeps it inconclusive."""
    rows = []
    for p, acc, hit in (("max", [95.0, 95.0, 95.1], "1" * 38 + "11"),
                        ("mean", [90.0, 90.1, 90.0], "1" * 38 + "00")):
        rows += [{"task": "a", "pooler": p, "seed": s, "metric": "accuracy", "value": v, "hits": hit}
                 for s, v in enumerate(acc)]
    df = pd.DataFrame(rows)
    r = recommend(summarize(df), "a", df)
    assert r["clear"] is False and "item bootstrap p = " in r["verdict"]
    assert recommend(summarize(df), "a", df.drop(columns="hits"))["clear"] is True  # Welch alone


def test_findings_are_tests_per_task():
    df = _df(
        [
            ("text-bbc", "first", "accuracy", [80, 80.5, 79.5]),
            ("text-bbc", "mean", "accuracy", [90, 90.5, 89.5]),
            ("text-bbc", "sum", "accuracy", [89, 89.5, 88.5]),
            ("text-rt", "first", "accuracy", [70, 70.5, 69.5]),
            ("text-rt", "mean", "accuracy", [69, 71, 70]),
            ("text-rt", "sum", "accuracy", [75, 75.5, 74.5]),
            ("ts-forecast", "last", "mse", [0.7, 0.71, 0.69]),
            ("ts-forecast", "mean", "mse", [1.0, 1.01, 0.99]),
        ]
    )
    ft = findings_table(df).set_index("paper's finding")
    text = ft.loc["global text tasks (classification): Avg and Sum beat Last clearly"]
    # text-bbc: both above CLS; text-rt: mean ties CLS -> inconclusive there
    assert text["verdict"] == "mixed (1 agree, 1 inconclusive)" and text["held on"] == "text-bbc"
    assert ft.loc["forecasting: Last is the best pooling", "verdict"] == "agrees"
    assert "ViT classification: CLS best of the fixed poolings" not in ft.index  # vision not run
    md = findings_markdown(df, {"text": ["text-bbc", "text-rt"], "timeseries": ["ts-forecast"]},
                           {"text": 60.0})
    assert "## text (18 runs, 1.0 min of run time)" in md and "**mixed (1 agree, 1 inconclusive)**" in md
    assert "### The tests" in md and "mean - first = +10, Welch p = " in md


def test_a_reversal_is_a_disagreement():
    df = _df([("text-bbc", "first", "accuracy", [90, 90.5, 89.5]),
              ("text-bbc", "mean", "accuracy", [80, 80.5, 79.5]),
              ("text-bbc", "sum", "accuracy", [79, 79.5, 78.5])])
    ft = findings_table(df).set_index("paper's finding")
    row = ft.loc["global text tasks (classification): Avg and Sum beat Last clearly"]
    assert row["verdict"] == "disagrees" and row["reversed on"] == "text-bbc"


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


def _frozen_run(store, task, pooler, seed, value, backbone, neutral, default, objective="x", max_length=0,
                default_length=0, attacks=None):
    from poolwise.runner import RunSpec

    spec = RunSpec(task, {"pooler": pooler, "seed": seed, "backbone": backbone, "max_length": max_length})
    store.mark_running(spec)
    store.mark_done(spec, {"metrics": {"metric": "accuracy", "value": value, "val": 0, "best_epoch": 1,
                                       "train_s": 0, "features_s": 0, "backbone": backbone,
                                       "objective": objective, "neutral": neutral,
                                       "default_backbone": default,
                                       "max_length": max_length or default_length, **(attacks or {})}}, 1.0)


def test_other_backbones_are_their_own_task_rows_and_findings_are_judged_apart(tmp_path):
    """Runs on a task's default (pooling-neutral) backbone keep the task's name; runs on
    another backbone are ``task@backbone``; findings are judged on the neutral rows, with the
    objective-trained rows beside; the backbones table names each one's objective."""
    from poolwise.report import compare_frame
    from poolwise.report.pool_me_wisely import backbone_groups, write_findings
    from poolwise.runner import ResultsStore

    store = ResultsStore(tmp_path / "runs.sqlite")
    for seed in (0, 1):
        for pooler, neutral_value, cls_value in (("first", 60, 95), ("mean", 90, 80), ("sum", 88, 79)):
            _frozen_run(store, "vision-mnist", pooler, seed, neutral_value + seed, "vit-mim", True, True,
                        "masked patches")
            _frozen_run(store, "vision-mnist", pooler, seed, cls_value + seed, "vit-mnist", False, False,
                        "digit classes through the CLS token")
            _frozen_run(store, "vision-mnist", pooler, seed, neutral_value - 10 + seed, "vit-mim-s", True,
                        False, "masked patches")
    df = compare_frame(store)
    assert sorted(df.task.unique()) == ["vision-mnist", "vision-mnist@vit-mim-s", "vision-mnist@vit-mnist"]
    assert set(df.pooler) == {"first", "mean", "sum"}  # the backbone is not a pooler setting
    assert backbone_groups(df) == {"neutral": ["vision-mnist"], "objective": ["vision-mnist@vit-mnist"],
                                   "sizes": ["vision-mnist@vit-mim-s"], "lengths": []}
    text = write_findings(df, tmp_path).read_text()
    assert "| vit-mnist | digit classes through the CLS token | no | vision-mnist |" in text
    assert "| vit-mim | masked patches | yes | vision-mnist |" in text
    row = next(r for r in text.splitlines() if r.startswith("| vision | ViT classification: CLS best"))
    assert "**disagrees**" in row and "agrees | vision-mnist@vit-mnist |" in row
    assert "| vit-mim (masked patches) |" in row  # each finding names its backbones
    assert "## Backbone size" in text and (tmp_path / "sizes.png").stat().st_size > 1000
    assert "| vision-mnist | s->m | - | - | +30 | +30 |" in text  # CLS-Avg gap 30 at both sizes
    # the same gap at both sizes, per seed: nothing narrowed, nothing widened
    assert "gap (signed as on the smallest, paired by seed) smaller on the largest | **inconclusive**" in text
    assert "* vision-mnist, gap narrows: **inconclusive** (gap@small - gap@large = +0" in text
    store.close()


def test_runs_stored_before_backbones_were_named_are_labelled_with_theirs(tmp_path):
    from poolwise.report import compare_frame
    from poolwise.runner import ResultsStore

    store = ResultsStore(tmp_path / "runs.sqlite")
    store.mark_running(spec := _legacy_spec())
    store.mark_done(spec, {"metrics": {"metric": "accuracy", "value": 50, "val": 0, "best_epoch": 1,
                                       "train_s": 0, "features_s": 0}}, 1.0)
    df = compare_frame(store)
    assert df.task.tolist() == ["vision-mnist@vit-mnist"] and not df.neutral.iloc[0]
    store.close()


def _legacy_spec():
    """A run as stored before configs had a backbone field (no backbone in params or metrics)."""
    from poolwise.runner import RunSpec

    spec = RunSpec("vision-mnist", {"pooler": "mean"})
    params = {k: v for k, v in spec.params.items() if k != "backbone"}
    object.__setattr__(spec, "params", params)
    return spec


def test_a_length_sweep_is_its_own_rows_and_section(tmp_path):
    """Text runs with a maximum length set are ``task@len=N`` rows; the findings gain a
    length table per task with the pooler spread at each length and the paper's claim."""
    from poolwise.report import compare_frame
    from poolwise.report.pool_me_wisely import backbone_groups, write_findings
    from poolwise.runner import ResultsStore

    store = ResultsStore(tmp_path / "runs.sqlite")
    values = {16: {"first": 40, "mean": 70}, 64: {"first": 60, "mean": 72}}  # spread 30 at 16, 12 at 64
    for seed in (0, 1):
        for length, by_pooler in values.items():
            for pooler, value in by_pooler.items():
                _frozen_run(store, "text-rt", pooler, seed, value, "mlm", True, True, "masked words",
                            max_length=0 if length == 64 else length, default_length=64)
    df = compare_frame(store)
    assert sorted(df.task.unique()) == ["text-rt", "text-rt@len=16"]
    assert sorted(df.max_length.unique()) == [16, 64]
    groups = backbone_groups(df)
    assert groups["lengths"] == ["text-rt@len=16"] and groups["neutral"] == ["text-rt"]
    text = write_findings(df, tmp_path).read_text()
    assert "### text-rt on mlm" in text and "| spread (best - worst) | 30 | 12 |" in text
    assert "| Avg | 70 | 72 |" in text
    assert "pooler spread larger at the shortest length than at the longest | **agrees** |" in text
    assert (tmp_path / "lengths.png").stat().st_size > 1000
    store.close()


def test_attack_success_is_tabled_and_checked(tmp_path):
    from poolwise.report import compare_frame
    from poolwise.report.pool_me_wisely import write_findings
    from poolwise.runner import ResultsStore

    store = ResultsStore(tmp_path / "runs.sqlite")
    success = {"mean": (5, 20, 40), "sum": (3, 10, 30), "max": (8, 30, 60)}
    for seed in (0, 1, 2):
        for pooler, (a, b, c) in success.items():
            _frozen_run(store, "vision-mnist", pooler, seed, 90, "vit-mim", True, True,
                        attacks={"fgsm_0.01": a, "fgsm_0.03": b + seed * 0.5, "fgsm_0.1": c})
    text = write_findings(compare_frame(store), tmp_path).read_text()
    assert "| vision-mnist | Sum | 3 | 10.5 | 30 |" in text
    assert "| vision-mnist | Max | 8 | 30.5 | 60 |" in text
    assert "Sum lower success than each other fixed pooling | **agrees** |" in text
    assert "Avg below Max and Sum | **disagrees** |" in text  # Avg above Sum, every seed
    assert "* Avg below Max and Sum, vision-mnist: **fails** (mean - max = -10" in text
    store.close()


def test_table_rows_name_the_papers_pooler_only_where_it_differs():
    from poolwise.report.compare import pooler_label

    assert pooler_label("first") == "first (paper: CLS)"
    assert pooler_label("last") == "last" and pooler_label("max") == "max"
    assert pooler_label("mean [epochs=2]") == "mean [epochs=2] (paper: Avg)"
    assert pooler_label("gem") == "gem"
