"""Our frozen-backbone study beside the Pool Me Wisely paper's qualitative findings.

Each finding is checked on our table and marked *agrees*, *disagrees* or *partly* (with the
tasks it held on); the paper's numbers come from other backbones and data sets, so only the
direction of each finding is comparable, not the values."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from .compare import base_task, cell_text, paper_name, recommend, summarize, task_modality
from .files import atomic_write_text
from .pmw_axes import attack_section, length_section, size_section

FIXED = ("first", "last", "mean", "sum", "max")


@dataclass(frozen=True)
class Finding:
    modality: str
    paper: str
    tasks: Callable[[list[str]], list[str]]
    holds: Callable[[pd.DataFrame, str], bool | None]  # (summary of one task, task) -> verdict
    ours: str


def _means(s: pd.DataFrame) -> dict[str, float]:
    lower = bool(s["lower_better"].iloc[0])
    return {p: (-m if lower else m) for p, m in zip(s["pooler"], s["mean"])}  # higher = better


def _best_of(s: pd.DataFrame, names: tuple[str, ...]) -> str | None:
    m = {p: v for p, v in _means(s).items() if p in names}
    return max(m, key=m.get) if m else None


def _token(s: pd.DataFrame) -> str | None:
    return next((p for p in ("first", "last", "cls") if p in set(s["pooler"])), None)


def _avg_sum_beat_token(s: pd.DataFrame, task: str) -> bool | None:
    m, tok = _means(s), _token(s)
    if tok is None or "mean" not in m:
        return None
    return m["mean"] > m[tok] and m.get("sum", m["mean"]) > m[tok]


def _token_best_fixed(s: pd.DataFrame, task: str) -> bool | None:
    """The token pooler strictly above every other fixed pooler (a tie does not count)."""
    m, tok = _means(s), _token(s)
    if tok is None:
        return None
    return all(m[tok] > v for p, v in m.items() if p in FIXED and p != tok)


def _max_sum_worst_fixed(s: pd.DataFrame, task: str) -> bool | None:
    m = {p: v for p, v in _means(s).items() if p in FIXED}
    if not {"max", "sum"} <= set(m) or len(m) < 3:
        return None
    return set(sorted(m, key=m.get)[:2]) == {"max", "sum"}


def _attn_best(s: pd.DataFrame, task: str) -> bool | None:
    m = _means(s)
    return None if "latent_attention" not in m else max(m, key=m.get) == "latent_attention"


def _attn_best_sum_worst(s: pd.DataFrame, task: str) -> bool | None:
    m = _means(s)
    if not {"latent_attention", "sum"} <= set(m):
        return None
    return max(m, key=m.get) == "latent_attention" and min(m, key=m.get) == "sum"


def _sum_beats_avg(s: pd.DataFrame, task: str) -> bool | None:
    m = _means(s)
    return None if not {"sum", "mean"} <= set(m) else m["sum"] > m["mean"]


def _wavg_competitive(s: pd.DataFrame, task: str) -> bool | None:
    m = _means(s)
    best = _best_of(s, FIXED)
    if "wavg" not in m or best is None:
        return None
    spread = float(s.loc[s["pooler"].isin(["wavg", best]), "std"].sum())
    return m["wavg"] >= m[best] - spread


def _adapool_beats_fixed_averages(s: pd.DataFrame, task: str) -> bool | None:
    """AdaPool above Avg, Max and Sum (the poolings that cannot down-weight noise tokens) by
    more than the two poolers' seed spread."""
    m = _means(s)
    others = [p for p in ("mean", "max", "sum") if p in m]
    if "adapool" not in m or not others:
        return None
    std = dict(zip(s["pooler"], s["std"]))
    return all(m["adapool"] - m[p] > std["adapool"] + std[p] for p in others)


def _pick(prefix: str, names: tuple[str, ...] = ()) -> Callable[[list[str]], list[str]]:
    """Task labels (``task`` or ``task@backbone``) whose task starts with ``prefix`` and is
    one of ``names`` (any, without names)."""
    return lambda tasks: [t for t in tasks if base_task(t).startswith(prefix)
                          and (not names or base_task(t) in names)]


FINDINGS = [
    Finding(
        "text",
        "global text tasks (classification): Avg and Sum beat Last clearly",
        _pick("text-", ("text-bbc", "text-rt", "text-csv")),
        _avg_sum_beat_token,
        "mean and sum > CLS",
    ),
    Finding(
        "text",
        "next-token prediction: Last is the best pooling",
        _pick("text-nexttoken"),
        _token_best_fixed,
        "last best of the fixed poolers",
    ),
    Finding(
        "vision",
        "ViT classification: CLS best of the fixed poolings",
        _pick("vision-", ("vision-mnist", "vision-digits")),
        _token_best_fixed,
        "CLS best of first/mean/sum/max",
    ),
    Finding(
        "vision",
        "Max and Sum are consistently the worst fixed poolings",
        _pick("vision-"),
        _max_sum_worst_fixed,
        "max and sum the two lowest fixed",
    ),
    Finding(
        "vision",
        "(AdaPool paper) adaptive pooling resists distractors where Avg and Max do not",
        _pick("vision-noisy"),
        _adapool_beats_fixed_averages,
        "adapool above mean, max and sum by more than the seed spread",
    ),
    Finding(
        "timeseries",
        "classification: Attn is the best pooling",
        _pick(
            "ts-",
            tuple(
                f"ts-{k}"
                for k in (
                    "gunpoint",
                    "arrowhead",
                    "italypowerdemand",
                    "osuleaf",
                    "basicmotions",
                    "japanesevowels",
                )
            ),
        ),
        _attn_best,
        "latent_attention best overall",
    ),
    Finding(
        "timeseries",
        "classification: Sum often beats Avg",
        lambda ts: [t for t in ts if t.startswith("ts-")
                    and base_task(t) not in ("ts-forecast", "ts-impute")],
        _sum_beats_avg,
        "sum > mean",
    ),
    Finding(
        "timeseries",
        "forecasting: Last is the best pooling",
        _pick("ts-forecast"),
        _token_best_fixed,
        "last best of the fixed poolers",
    ),
    Finding(
        "timeseries",
        "imputation: Attn is the best pooling and Sum the worst",
        _pick("ts-impute"),
        _attn_best_sum_worst,
        "latent_attention best and sum worst of all",
    ),
    Finding(
        "all",
        "W-Avg is competitive everywhere",
        lambda ts: list(ts),
        _wavg_competitive,
        "wavg within seed spread of the best fixed pooler, or better",
    ),
]


def findings_table(summary: pd.DataFrame, tasks: list[str] | None = None) -> pd.DataFrame:
    """One row per paper finding: where it was tested, where it held, and a verdict
    (``tasks``: the task labels to judge on; default every task in ``summary``)."""
    tasks = list(summary["task"].unique()) if tasks is None else tasks
    ran = {task_modality(t) for t in tasks}
    rows = []
    for f in FINDINGS:
        if f.modality != "all" and f.modality not in ran:
            continue
        tested, held = [], []
        for task in f.tasks(tasks):
            verdict = f.holds(summary[summary["task"] == task], task)
            if verdict is None:
                continue
            tested.append(task)
            if verdict:
                held.append(task)
        if not tested:
            status = "not run"
        elif len(held) == len(tested):
            status = "agrees"
        elif not held:
            status = "disagrees"
        else:
            status = f"partly ({len(held)}/{len(tested)})"
        rows.append(
            {
                "modality": f.modality,
                "paper's finding": f.paper,
                "our check": f.ours,
                "held on": ", ".join(held) or "-",
                "tested on": ", ".join(tested) or "-",
                "verdict": status,
            }
        )
    return pd.DataFrame(rows)


def backbone_groups(df: pd.DataFrame) -> dict[str, list[str]]:
    """Task labels of a :func:`~poolwise.report.compare_frame` by kind of backbone:
    ``neutral`` (each task's default, pretrained without a pooling head), ``objective``
    (pretraining that favours a pooler), ``sizes`` (the neutral ones in other sizes) and
    ``lengths`` (text tasks at a maximum length other than their default)."""
    groups: dict[str, list[str]] = {"neutral": [], "objective": [], "sizes": [], "lengths": []}
    for label, rows in df.groupby("task", sort=True):
        if "len=" in label:
            groups["lengths"].append(label)
        elif not bool(rows["neutral"].iloc[0]):
            groups["objective"].append(label)
        elif label == base_task(label):
            groups["neutral"].append(label)
        else:
            groups["sizes"].append(label)
    return groups


def modality_table(summary: pd.DataFrame, tasks: list[str]) -> str:
    """Poolers x tasks, mean ± std, best per task in bold."""
    poolers: list[str] = []
    for t in tasks:
        for p in summary[summary["task"] == t]["pooler"]:
            if p not in poolers:
                poolers.append(p)
    head = (
        "| pooler | "
        + " | ".join(f"{t} ({summary[summary['task'] == t]['metric'].iloc[0]})" for t in tasks)
        + " |"
    )
    lines = [head, "|---" * (len(tasks) + 1) + "|"]
    for p in poolers:
        cells = []
        for t in tasks:
            s = summary[(summary["task"] == t) & (summary["pooler"] == p)]
            if s.empty:
                cells.append("-")
                continue
            cell = cell_text(s["mean"].iloc[0], s["std"].iloc[0], int(s["n"].iloc[0]))
            best = summary[summary["task"] == t]["pooler"].iloc[0]
            cells.append(f"**{cell}**" if p == best else cell)
        lines.append(f"| {paper_name(p)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def backbone_table(df: pd.DataFrame) -> str:
    """Each backbone of a :func:`~poolwise.report.compare_frame`: its pretraining objective,
    whether that pretraining had a pooling head, and the tasks it encoded."""
    lines = ["| backbone | pretrained on | pooling-neutral | tasks |", "|---|---|---|---|"]
    for name, rows in df.groupby("backbone", sort=True):
        objective = rows["objective"].iloc[0] or "(not recorded)"
        neutral = "yes" if bool(rows["neutral"].iloc[0]) else "no"
        tasks = ", ".join(sorted(rows["base_task"].unique()))
        lines.append(f"| {name} | {objective} | {neutral} | {tasks} |")
    return "\n".join(lines)


def _named(labels: str, backbones: dict[str, str]) -> str:
    """The distinct backbones (with their objective) of a comma list of task labels."""
    names = dict.fromkeys(backbones.get(t, "") for t in labels.split(", ") if t != "-")
    return ", ".join(n for n in names if n) or "-"


def _findings_rows(summary: pd.DataFrame, groups: dict[str, list[str]],
                   backbones: dict[str, str] | None = None) -> list[str]:
    main, other = groups.get("neutral", []), groups.get("objective", [])
    if not main:  # no pooling-neutral runs: judge on whatever ran
        main, other = list(summary["task"].unique()), []
    backbones = backbones or {}
    ft = findings_table(summary, main)
    head = "| modality | paper | our check | backbones (objective) | verdict | held on |"
    rule = "|---|---|---|---|---|---|"
    if other:
        head += " objective-trained backbones: verdict | held on |"
        rule += "---|---|"
        by_paper = {r["paper's finding"]: r for r in findings_table(summary, other).to_dict("records")}
    lines = [head, rule]
    for r in ft.to_dict("records"):
        paper = r["paper's finding"]
        line = (f"| {r['modality']} | {paper} | {r['our check']} | {_named(r['tested on'], backbones)} | "
                f"**{r['verdict']}** | {r['held on']} |")
        if other:
            o = by_paper.get(paper)
            line += f" {o['verdict']} | {o['held on']} |" if o else " - | - |"
        lines.append(line)
    return lines


def findings_markdown(
    summary: pd.DataFrame, modalities: dict[str, list[str]], run_s: dict[str, float],
    groups: dict[str, list[str]] | None = None, backbones: str = "", sizes: str = "",
    objectives: dict[str, str] | None = None,
) -> str:
    """The report: the backbones (``backbones``: :func:`backbone_table`), one table per
    modality (``run_s``: summed run time, for the heading), the recommendations, the
    findings judged on the pooling-neutral backbones (``groups``: :func:`backbone_groups`)
    beside the objective-trained ones, and the size and length axes (``sizes``, Markdown);
    ``objectives`` (task label -> "backbone (objective)") names each finding's backbones."""
    md = [
        "# Pool Me Wisely, reproduced at small scale",
        "",
        "Frozen backbones, pooler + linear head trained (Adam 1e-3, batch 32), mean ± std over seeds, "
        "test split used once. Backbones and data differ from the paper's (offline, CPU), so compare "
        "the direction of each finding, not the numbers. A task label `task@backbone` is the task on "
        "a backbone other than its default.",
        "",
    ]
    if backbones:
        md += ["## Backbones", "", backbones, ""]
    for modality, tasks in modalities.items():
        tasks = [t for t in tasks if t in set(summary["task"])]
        if not tasks:
            continue
        runs = int(summary[summary["task"].isin(tasks)]["n"].sum())
        md += [
            f"## {modality} ({runs} runs, {run_s.get(modality, 0.0) / 60:.1f} min of run time)",
            "",
            modality_table(summary, tasks),
            "",
        ]
        md += [f"* {t}: {recommend(summary, t)['verdict']}" for t in tasks] + [""]
    md += ["## The paper's findings against ours", ""]
    if groups and groups.get("objective"):
        md += ["Verdicts on the pooling-neutral backbones (each task's default), and beside them on the "
               "backbones whose pretraining favours a pooler.", ""]
    md += _findings_rows(summary, groups or {}, objectives)
    if sizes:
        md += ["", sizes]
    return "\n".join(md) + "\n"


def write_findings(df: pd.DataFrame, out_dir: str | Path) -> Path:
    """``findings.md`` from a :func:`compare_frame`: the backbones, per-modality tables, the
    findings check and, when the runs cover several sizes, the size axis (``sizes.png``)."""
    if df.empty:
        raise ValueError("no finished frozen-backbone runs")
    by_modality: dict[str, list[str]] = {}
    for task in sorted(df["task"].unique()):
        by_modality.setdefault(task_modality(task), []).append(task)
    run_s = {m: float(df[df["modality"] == m]["wall_s"].sum()) for m in by_modality}
    summary = summarize(df)
    axes = "\n\n".join(x for x in (size_section(df, summary, Path(out_dir)),
                                    length_section(df, summary, Path(out_dir)), attack_section(df)) if x)
    pairs = df[["task", "backbone", "objective"]].drop_duplicates().itertuples(index=False)
    objectives = {t: f"{b} ({o})" if o else b for t, b, o in pairs}
    text = findings_markdown(summary, by_modality, run_s, backbone_groups(df), backbone_table(df), axes,
                             objectives)
    return atomic_write_text(Path(out_dir) / "findings.md", text)
