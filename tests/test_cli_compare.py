"""`poolwise compare`, `poolwise pretrain` and `poolwise reproduce pool-me-wisely` as a user runs them."""

from __future__ import annotations

import pandas as pd
import pytest

from tests.test_cli import poolwise, poolwise_main


@pytest.fixture
def env(tmp_path):
    return {"POOLWISE_CACHE": str(tmp_path / "cache")}


@pytest.fixture
def csv_file(tmp_path):
    rows = ["review,sentiment"] + [f"the cat sat {'.' * (i % 3)},good" for i in range(15)] + \
        [f"a dog ran on the mat {'s' * (i % 3)},bad" for i in range(15)]
    path = tmp_path / "reviews.csv"
    path.write_text("\n".join(rows) + "\n")
    return path


def test_list_names_every_task_with_a_description():
    r = poolwise("compare", "--list")
    assert r.returncode == 0, r.stderr
    names = [line.split()[0] for line in r.stdout.splitlines()]
    for name in ("text-bbc", "text-rt", "text-nexttoken", "ts-gunpoint", "ts-japanesevowels", "ts-forecast",
                 "vision-mnist", "vision-digits", "vision-noisy"):
        assert name in names
    assert all(len(line.split()) > 3 for line in r.stdout.splitlines())


def test_compare_on_your_csv_and_model_writes_table_plot_csv_and_recommendation(tmp_path, env, csv_file,
                                                                                tiny_bert_dir):
    out = tmp_path / "out"
    args = ["compare", "--data", str(csv_file), "--text-column", "review", "--label-column", "sentiment",
            "--model", str(tiny_bert_dir), "--poolers", "mean,max", "--seeds", "2", "--set", "epochs=2",
            "--out", str(out), "--quiet"]
    r = poolwise(*args, env_extra=env)
    assert r.returncode == 0, r.stderr
    assert "4 runs done" in r.stdout and "text-csv: " in r.stdout
    df = pd.read_csv(out / "runs.csv")
    assert len(df) == 4 and {"task", "pooler", "seed", "metric", "value", "wall_s"} <= set(df.columns)
    assert set(df["pooler"]) == {"mean", "max"} and set(df["seed"]) == {0, 1}
    table = (out / "table.md").read_text()
    assert "**" in table and "Recommendation:" in table
    assert (out / "text-csv.png").stat().st_size > 5_000
    again = poolwise(*args, env_extra=env)  # resumable: nothing is run twice
    assert again.returncode == 0 and "0 runs done, 4 already there" in again.stdout
    rebuilt = tmp_path / "rebuilt"
    r = poolwise("report", "--db", str(out / "runs.sqlite"), "--out", str(rebuilt))
    assert r.returncode == 0, r.stderr
    assert (rebuilt / "runs.csv").read_text() == (out / "runs.csv").read_text()


@pytest.mark.parametrize("args, message", [
    (["compare"], "give --task TASK"),
    (["compare", "--task", "text-imdb"], "unknown task 'text-imdb'"),
    (["compare", "--task", "ts-gunpoint", "--poolers", "median"], "unknown pooler median"),
    (["compare", "--task", "ts-gunpoint", "--seeds", "0"], "--seeds must be >= 1"),
    (["compare", "--task", "ts-gunpoint", "--model", "x"], "--model applies to text tasks"),
    (["compare", "--task", "ts-gunpoint", "--set", "epochs=-1"], "epochs must be a non-negative int"),
    (["pretrain", "vit"], "unknown backbone vit"),
    (["reproduce", "pool-me-wisely", "--modalities", "audio"], "unknown modality audio"),
    (["reproduce", "pool-me-wisely", "--seeds", "0,1"], "--seeds is a count"),
    (["reproduce", "pool-me-wisely", "--sizes", "m,xl"], "--sizes takes a comma list of s, m, l; got 'm,xl'"),
    (["compare", "--task", "vision-mnist", "--backbone", "mlm"], "vision-mnist cannot use backbone 'mlm'"),
    (["reproduce", "pool-me-wisely", "--max-lengths", "16,x"], "--max-lengths takes a comma list"),
    (["reproduce", "adapool-knn", "--modalities", "text"], "--modalities applies to pool-me-wisely"),
])
def test_bad_input_is_one_line_and_exit_2(args, message, env, tmp_path):
    r = poolwise_main(*args, "--out", str(tmp_path / "o"), env_extra=env) if args[0] != "pretrain" else \
        poolwise_main(*args, env_extra=env)
    assert r.returncode == 2, r.stdout + r.stderr
    assert message in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("body, message", [
    ("", "is empty"),
    ("text,label\na,x\nb,x\nc,x\n", "single class"),
    ("words,label\na,x\nb,y\n", "has no column 'text'"),
])
def test_bad_csv_is_refused_before_anything_is_written(tmp_path, env, body, message, tiny_bert_dir):
    path = tmp_path / "bad.csv"
    path.write_text(body)
    out = tmp_path / "o"
    r = poolwise("compare", "--data", str(path), "--model", str(tiny_bert_dir), "--out", str(out),
                 env_extra=env)
    assert r.returncode == 2 and message in r.stderr, r.stderr
    assert not out.exists()


def test_the_study_plans_neutral_backbones_by_default_and_the_others_on_request():
    from poolwise.cli.frozen import study_backbones

    assert study_backbones("vision-mnist", "neutral", ["m"]) == ["vit-mim"]
    assert study_backbones("vision-mnist", "all", ["m"]) == ["vit-mim", "vit-mnist"]
    assert study_backbones("vision-mnist", "objective", ["m"]) == ["vit-mnist"]
    assert study_backbones("text-nexttoken", "all", ["s", "m", "l"]) == ["mlm-s", "mlm", "mlm-l", "lm-bbc"]
    assert study_backbones("ts-gunpoint", "objective", ["m"]) == []  # neutral already: nothing else
    assert study_backbones("ts-gunpoint", "neutral", ["s", "l"]) == ["patchts-gunpoint-s",
                                                                      "patchts-gunpoint-l"]


def test_the_study_runs_a_size_axis_end_to_end(tmp_path, monkeypatch):
    """`reproduce pool-me-wisely --sizes s,m` on the time-series tasks (backbones trained for
    2 steps): every task on both sizes, ts-impute among them, and a size section with its plot."""
    import dataclasses

    pytest.importorskip("aeon")
    from poolwise.experiments import pretrain as pt

    monkeypatch.setenv("POOLWISE_CACHE", str(tmp_path / "cache"))
    for name, recipe in list(pt.RECIPES.items()):
        monkeypatch.setitem(pt.RECIPES, name, dataclasses.replace(recipe, steps=2))
    r = poolwise_main("reproduce", "pool-me-wisely", "--modalities", "timeseries", "--poolers", "last,mean",
                      "--seeds", "1", "--sizes", "s,m", "--set", "epochs=1", "--workers", "1",
                      "--out", str(tmp_path / "o"), "--quiet")
    assert r.returncode == 0, r.stderr
    runs = pd.read_csv(tmp_path / "o" / "runs.csv")
    assert len(runs) == 2 * 2 * 8 and {"patchts-forecast", "patchts-forecast-s"} <= set(runs.backbone)
    assert {"ts-impute", "ts-impute@patchts-forecast-s", "ts-gunpoint@patchts-gunpoint-s"} <= set(runs.task)
    findings = (tmp_path / "o" / "findings.md").read_text()
    assert "## Backbone size" in findings and "| ts-gunpoint | s->m |" in findings
    assert (tmp_path / "o" / "sizes.png").is_file()
    assert "imputation: Attn is the best pooling and Sum the worst" in findings


def test_missing_backbones_are_listed_largest_first_and_pretrained_in_parallel(tmp_path, monkeypatch):
    """The study's preparation: only the project's own backbones that are not stored, the
    costliest first; two workers pretrain two of them at once, and a second call finds none."""
    pytest.importorskip("aeon")
    from poolwise.cli._common import grid_specs
    from poolwise.cli._prepare import missing_backbones, prepare_backbones
    from poolwise.experiments import pretrain as pt

    monkeypatch.setenv("POOLWISE_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("POOLWISE_SHIPPED_BACKBONES", "0")  # vit-mim and mlm ship: count them as missing

    def specs(task, backbone):
        return grid_specs(task, {"backbone": backbone}, pooler=["mean", "max"], seed=[0])

    study = (specs("ts-gunpoint", "patchts-gunpoint-s") + specs("vision-mnist", "vit-mim")
             + specs("text-rt", "minilm") + specs("text-bbc", "mlm")
             + specs("ts-arrowhead", "patchts-arrowhead-s"))
    assert [n for n, _ in missing_backbones(study)] == ["vit-mim", "mlm", "patchts-arrowhead-s",
                                                        "patchts-gunpoint-s"]  # minilm ships: never
    small = specs("ts-gunpoint", "patchts-gunpoint-s") + specs("ts-arrowhead", "patchts-arrowhead-s")
    lines = []
    seconds = prepare_backbones(small, 2, lines.append, quiet=True)
    assert set(seconds) == {"patchts-gunpoint-s", "patchts-arrowhead-s"} and min(seconds.values()) > 0
    assert "2 at a time" in lines[0]
    for name in seconds:
        model, ident = pt.load_backbone(name, auto=False)
        assert ident.startswith(f"{name}-seed0-") and model.cfg.dim == pt.SIZE_SHAPES["patchts"]["s"][0]
    assert missing_backbones(small) == [] and prepare_backbones(small, 2, lines.append, quiet=True) == {}


def test_features_are_warmed_in_parallel_once_per_task_and_reused(tmp_path, monkeypatch):
    """Two workers compute two tasks' features (shipped backbones: nothing to pretrain); the
    runs' own load then finds them cached, whatever their pooler and seed."""
    pytest.importorskip("aeon")
    from poolwise.cli._common import grid_specs
    from poolwise.cli._prepare import missing_backbones, warm_features
    from poolwise.experiments.frozen import load_task_features

    monkeypatch.setenv("POOLWISE_CACHE", str(tmp_path / "cache"))
    specs = [s for t in ("ts-gunpoint", "ts-arrowhead")
             for s in grid_specs(t, {}, pooler=["mean", "max"], seed=[0, 1])]
    assert missing_backbones(specs) == []
    assert warm_features(specs, 2) > 0  # seconds of backbone passes
    assert len(list((tmp_path / "cache" / "features").iterdir())) == 2
    assert warm_features(specs, 2) == 0  # all cached now
    assert all(load_task_features(s.config()).build_s == 0 for s in specs)
