"""Report of frozen-backbone comparisons: runs.csv, a table per task (mean, sample std and 95%
interval over seeds, best in bold), bar plots with 95% intervals, and a recommendation from a
test of the best pooler against the runner-up (:mod:`poolwise.report.verdicts`: Welch over seeds
and, where runs stored their per-item test results, a paired bootstrap over test items)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from ..runner.store import ResultsStore
from .figures import new_figure, to_png
from .files import atomic_write_bytes, atomic_write_text
from .settings import base_name, differing_keys, labelled, setting_label
from .stats import cell, describe
from .verdicts import SPREAD, better

#: the paper's names for our poolers (its "Last/CLS" is one family: the CLS token of an encoder,
#: the last token of a decoder)
PAPER_NAMES = {
    "first": "CLS",
    "cls": "CLS",
    "last": "Last",
    "mean": "Avg",
    "sum": "Sum",
    "max": "Max",
    "wavg": "W-Avg",
    "latent_attention": "Attn",
    "adapool": "AdaPool",
}
LOWER_IS_BETTER = {"mse"}


def paper_name(label: str) -> str:
    """The paper's name of a pooler label, keeping its setting: ``mean [epochs=2]`` ->
    ``Avg [epochs=2]``."""
    name = base_name(label)
    return PAPER_NAMES.get(name, name) + label[len(name):]

def pooler_label(label: str) -> str:
    """A table row's name: poolwise's, plus the paper's where it differs (``mean (paper: Avg)``,
    ``first (paper: CLS)``, ``last``)."""
    paper = paper_name(label)
    return label if paper.lower() == label.lower() else f"{label} (paper: {base_name(paper)})"


#: what a frozen-backbone sweep varies; every other config key is part of a run's setting
#: (the backbone and the maximum length are shown in the task's label, see :func:`task_label`)
AXES = ("pooler", "seed", "backbone", "max_length")
#: the backbone of runs stored before runs named theirs
LEGACY_BACKBONES = {"text-bbc": "minilm", "text-rt": "minilm", "text-csv": "minilm",
                    "text-nexttoken": "lm-bbc", "vision-mnist": "vit-mnist",
                    "vision-digits": "vit-mnist", "vision-noisy": "vit-mnist"}


def task_label(task: str, backbone: str, default: bool, max_length: int = 0) -> str:
    """``task`` on its default backbone and length, ``task@backbone`` on another backbone,
    ``task@len=32`` (or ``task@backbone,len=32``) with a maximum length set."""
    parts = ([] if default else [backbone]) + ([f"len={max_length}"] if max_length else [])
    return f"{task}@{','.join(parts)}" if parts else task


def base_task(label: str) -> str:
    """The task of a :func:`task_label`."""
    return label.split("@", 1)[0]


def _backbone_of(task: str, cfg: dict, metrics: dict) -> tuple[str, str, bool, bool]:
    """(name, objective, neutral, the task's default) of a run's backbone."""
    if "backbone" in metrics:
        return metrics["backbone"], metrics["objective"], metrics["neutral"], metrics["default_backbone"]
    name = cfg.get("backbone") or ("hf" if cfg.get("model") else
                                   LEGACY_BACKBONES.get(task, f"patchts-{task.removeprefix('ts-')}"))
    neutral = name.startswith("patchts-")  # the time-series backbones were neutral already
    return name, "", neutral, neutral


def compare_frame(store: ResultsStore, tasks: list[str] | None = None) -> pd.DataFrame:
    """One row per finished frozen-backbone run: task, pooler, seed, metric, value, wall_s, ...
    (recognised by their ``metric``/``value`` results, so the report needs no task registry).
    When a task's runs differ in a setting other than pooler and seed (``epochs``, ``data``,
    ...), the pooler column names it (``mean [epochs=2]``), so no average mixes settings."""
    rows = [r for r in store.rows(status="done")
            if {"metric", "value"} <= set(r["metrics"] or {}) and (not tasks or r["task"] in tasks)]
    for row in rows:
        row["task_"] = row["task"]
        name, objective, neutral, default = _backbone_of(row["task"], row["config"], row["metrics"])
        row["task"] = task_label(row["task"], name, default, int(row["config"].get("max_length") or 0))
        row["backbone_"] = (name, objective, neutral)
    varying = {t: differing_keys([r["config"] for r in rows if r["task"] == t], AXES)
               for t in {r["task"] for r in rows}}
    records = []
    for row in rows:
        cfg, m = row["config"], row["metrics"]
        setting = setting_label(cfg, varying[row["task"]])
        records.append(
            {
                "task": row["task"],
                "base_task": row["task_"],
                "backbone": row["backbone_"][0],
                "objective": row["backbone_"][1],
                "neutral": row["backbone_"][2],
                "max_length": int(m.get("max_length") or cfg.get("max_length") or 0),
                "pooler": labelled(cfg["pooler"], setting),
                "setting": setting,
                "seed": cfg["seed"],
                "metric": m["metric"],
                "value": m["value"],
                "wall_s": row["wall_s"],
                "val": m["val"],
                "best_epoch": m["best_epoch"],
                "train_s": m["train_s"],
                "features_s": m["features_s"],
                "epochs": cfg["epochs"],
                "modality": task_modality(row["task"]),
                "host": row["host"],
                "key": row["key"],
                **{k: v for k, v in m.items() if k.startswith("fgsm_")},  # attack success (%) per budget
                # one 0/1 per test item (the scored metric's hit), for paired tests; "" when not stored
                "hits": m.get("test_hits") or "",
            }
        )
    df = pd.DataFrame.from_records(records)
    return df.sort_values(["task", "pooler", "seed"]).reset_index(drop=True) if not df.empty else df


def task_modality(task: str) -> str:
    """``text``, ``vision`` or ``timeseries`` from a task name's prefix."""
    prefix = base_task(task).split("-", 1)[0]
    return {"ts": "timeseries"}.get(prefix, prefix)


def summarize(df: pd.DataFrame) -> pd.DataFrame:
    """Mean, sample std, 95% interval half-width (``ci95``) and run count per task and pooler,
    ranked best first."""
    g = df.groupby(["task", "pooler", "metric"], sort=False)["value"]
    s = describe(g).reset_index()
    s["lower_better"] = s["metric"].isin(LOWER_IS_BETTER)
    s["order"] = s["mean"].where(s["lower_better"], -s["mean"])
    return s.sort_values(["task", "order"]).drop(columns="order").reset_index(drop=True)


def cell_text(mean: float, std: float, n: int, ci95: float | None = None) -> str:
    """``mean ± std [±ci95]`` (sample std, 95% t-interval); a single seed has no spread."""
    return cell(mean, std, ci95, n)


def per_seed(df: pd.DataFrame, task: str) -> dict[str, list[float]]:
    """Each pooler's per-seed values on ``task``."""
    part = df[df["task"] == task]
    return {p: list(g.sort_values("seed")["value"]) for p, g in part.groupby("pooler", sort=False)}


def per_item(df: pd.DataFrame, task: str) -> dict[str, Any] | None:
    """Each pooler's ``(seeds, items)`` 0/1 test hits on ``task``, or None where any run of
    the task lacks them (runs stored before they were kept, regression tasks)."""
    import numpy as np

    part = df[df["task"] == task]
    if "hits" not in part or (part["hits"].fillna("") == "").any():
        return None
    out = {p: np.array([[c == "1" for c in h] for h in g.sort_values("seed")["hits"]], dtype=float)
           for p, g in part.groupby("pooler", sort=False)}
    return out if len({a.shape[1] for a in out.values()}) == 1 else None


def recommend(summary: pd.DataFrame, task: str, df: pd.DataFrame | None = None) -> dict[str, object]:
    """Best and runner-up pooler on ``task`` and a test between them (``df``: the runs, for
    the per-seed values and per-item hits; without it the verdict can only name the order)."""
    s = summary[summary["task"] == task].reset_index(drop=True)
    best = s.iloc[0]
    out: dict[str, object] = {
        "task": task,
        "metric": best["metric"],
        "best": best["pooler"],
        "best_mean": float(best["mean"]),
        "best_std": float(best["std"]),
    }
    if len(s) < 2:
        out.update(runner_up=None, clear=None, verdict=f"only {best['pooler']} was run")
        return out
    second = s.iloc[1]
    gap = abs(float(best["mean"] - second["mean"]))
    out.update(runner_up=second["pooler"], runner_up_mean=float(second["mean"]), gap=gap)
    if df is None or min(best["n"], second["n"]) < 2:
        out.update(clear=None, p=None, verdict=(
            f"{best['pooler']} is best, {second['pooler']} second (gap {gap:.3g}); "
            "one seed (or no per-seed values), so nothing was tested: run more seeds"))
        return out
    check = better(per_seed(df, task), best["pooler"], second["pooler"],
                   higher=not bool(best["lower_better"]), items=per_item(df, task))
    out.update(clear=check.outcome == "holds", p=check.p, check=check.detail)
    if check.outcome == "holds":
        out["verdict"] = (f"use {best['pooler']}: it beats {second['pooler']} by {gap:.3g} "
                          f"({check.detail.split(', ', 1)[1]})")
    else:
        out["verdict"] = (f"{best['pooler']} and {second['pooler']} are not distinguishable here (gap "
                          f"{gap:.3g}, {check.detail.split(', ', 1)[1]}): either will do, or run more seeds")
    return out


def task_table(summary: pd.DataFrame, task: str) -> str:
    s = summary[summary["task"] == task]
    metric = s["metric"].iloc[0]
    best = s["pooler"].iloc[0]
    lines = [
        f"| pooler | {metric} ({'lower' if metric in LOWER_IS_BETTER else 'higher'} is better) | seeds |",
        "|---|---|---|",
    ]
    for r in s.itertuples():
        text = cell_text(r.mean, r.std, r.n, r.ci95)
        text = f"**{text}**" if r.pooler == best else text
        lines.append(f"| {pooler_label(r.pooler)} | {text} | {r.n} |")
    return "\n".join(lines)


def plot_task(summary: pd.DataFrame, task: str) -> bytes:
    s = summary[summary["task"] == task]
    plt, fig, ax = new_figure(6.0, 3.6)
    colors = ["tab:green" if i == 0 else "tab:blue" for i in range(len(s))]
    ax.bar(range(len(s)), s["mean"], yerr=s["ci95"].fillna(0), color=colors, capsize=4)
    ax.set_xticks(range(len(s)), [paper_name(p) for p in s["pooler"]], rotation=30, ha="right")
    metric = s["metric"].iloc[0]
    ax.set_ylabel(f"test {metric}")
    if metric != "mse":
        lo = float((s["mean"] - s["ci95"].fillna(0)).min())
        ax.set_ylim(max(0.0, lo - 0.15 * (float(s["mean"].max()) - lo + 1)), None)
    ax.set_title(f"{task}: mean and 95% interval over seeds (best in green)")
    ax.grid(axis="y", alpha=0.3)
    return to_png(plt, fig)


def read_runs_csv(path: str | Path) -> pd.DataFrame:
    """A compare report's ``runs.csv`` (floats read back exactly), with the per-item hits of
    the ``items.csv`` beside it when there is one (the ``hits`` column)."""
    path = Path(path)
    df = pd.read_csv(path, float_precision="round_trip")
    items = path.with_name("items.csv")
    if items.is_file():
        hits = pd.read_csv(items, dtype={"hits": str}).set_index("key")["hits"]
        df = df.assign(hits=df["key"].map(hits).fillna(""))
    return df


def write_compare_report(
    store: ResultsStore, out_dir: str | Path, tasks: list[str] | None = None, title: str = "Which pooling?"
) -> dict[str, Path]:
    """``runs.csv``, ``table.md`` (every task, with recommendations) and ``<task>.png``."""
    df = compare_frame(store, tasks)
    if df.empty:
        raise ValueError("the database holds no finished frozen-backbone runs")
    return write_compare_files(df, out_dir, title)


def write_compare_files(
    df: pd.DataFrame, out_dir: str | Path, title: str = "Which pooling?"
) -> dict[str, Path]:
    """The files of :func:`write_compare_report` from a :func:`compare_frame`."""
    out = Path(out_dir)
    summary = summarize(df)
    paths = {"csv": atomic_write_text(out / "runs.csv", df.drop(columns="hits", errors="ignore")
                                      .to_csv(index=False))}
    if "hits" in df and (df["hits"].fillna("") != "").any():  # per-item results, beside runs.csv
        paths["items"] = atomic_write_text(out / "items.csv", df[["key", "hits"]].to_csv(index=False))
    md = [f"# {title}", "", f"Cells: mean {SPREAD}. Recommendations: the best pooler tested against the "
          "runner-up (Welch across seeds; with per-item results, also a paired bootstrap over test items, "
          "the larger p deciding; level 0.05).", ""]
    for task in summary["task"].unique():
        rec = recommend(summary, task, df)
        paths[f"{task}.png"] = atomic_write_bytes(out / f"{task}.png", plot_task(summary, task))
        wall = df[df["task"] == task]["wall_s"].sum()
        md += [
            f"## {task}",
            "",
            task_table(summary, task),
            "",
            f"**Recommendation:** {rec['verdict']}.",
            "",
            f"{len(df[df['task'] == task])} runs, {wall:.0f} s of training in total.",
            "",
            f"![{task}]({task}.png)",
            "",
        ]
    paths["table"] = atomic_write_text(out / "table.md", "\n".join(md))
    return paths
