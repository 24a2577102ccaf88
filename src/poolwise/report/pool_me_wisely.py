"""Our frozen-backbone study beside the Pool Me Wisely paper's qualitative findings.

Each finding is a test per task (:mod:`poolwise.report.verdicts`: Welch over seeds, a paired
bootstrap over test items where runs kept them, Holm over the report) and a verdict *agrees*,
*disagrees*, *inconclusive* or *mixed*, with the tasks it held and reversed on; the paper's
numbers come from other backbones and data sets, so only the direction of each finding is
comparable, not the values."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from .compare import (
    LOWER_IS_BETTER,
    base_task,
    cell_text,
    paper_name,
    per_item,
    per_seed,
    recommend,
    summarize,
    task_modality,
)
from .files import atomic_write_text
from .pmw_axes import attack_section, length_section, size_section
from .verdicts import RULE, SPREAD, Check, all_of, beats_each, below_each, better, holm, not_worse, verdict

FIXED = ("first", "last", "mean", "sum", "max")


@dataclass(frozen=True)
class Finding:
    modality: str
    paper: str
    tasks: Callable[[list[str]], list[str]]
    check: Callable[[Runs], Check | None]  # the runs of one task -> a test, or None (not testable)
    ours: str


@dataclass(frozen=True)
class Runs:
    """One task's results for the checks: per-seed ``values`` per pooler, optional per-item
    hits (``items``), whether higher is better, and the metric's name."""

    values: dict[str, list[float]]
    items: dict[str, Any] | None
    higher: bool
    metric: str

    def kw(self) -> dict[str, Any]:
        return {"higher": self.higher, "items": self.items}


def _token(r: Runs) -> str | None:
    return next((p for p in ("first", "last", "cls") if p in r.values), None)


def _avg_sum_beat_token(r: Runs) -> Check | None:
    tok = _token(r)
    if tok is None or "mean" not in r.values:
        return None
    return all_of([better(r.values, p, tok, **r.kw()) for p in ("mean", "sum") if p in r.values])


def _token_best_fixed(r: Runs) -> Check | None:
    """The token pooler above every other fixed pooler."""
    tok = _token(r)
    others = [p for p in FIXED if p in r.values and p != tok]
    return None if tok is None or not others else beats_each(r.values, tok, others, **r.kw())


def _max_sum_worst_fixed(r: Runs) -> Check | None:
    fixed = [p for p in FIXED if p in r.values]
    rest = [p for p in fixed if p not in ("max", "sum")]
    if not {"max", "sum"} <= set(fixed) or not rest:
        return None
    return all_of([below_each(r.values, p, rest, **r.kw()) for p in ("max", "sum")])


def _attn_best(r: Runs) -> Check | None:
    others = [p for p in r.values if p != "latent_attention"]
    if "latent_attention" not in r.values or not others:
        return None
    return beats_each(r.values, "latent_attention", others, **r.kw())


def _attn_best_sum_worst(r: Runs) -> Check | None:
    if not {"latent_attention", "sum"} <= set(r.values) or len(r.values) < 3:
        return None
    rest = [p for p in r.values if p != "latent_attention"]
    best = beats_each(r.values, "latent_attention", rest, **r.kw())
    worst = below_each(r.values, "sum", [p for p in r.values if p != "sum"], **r.kw())
    return all_of([best, worst])


def _sum_beats_avg(r: Runs) -> Check | None:
    return better(r.values, "sum", "mean", **r.kw()) if {"sum", "mean"} <= set(r.values) else None


def competitive_margin(r: Runs, best: str) -> float:
    """The margin of "competitive": 1 point of a % metric, 5% of the best mean of an error."""
    if r.metric in LOWER_IS_BETTER:
        return 0.05 * abs(sum(r.values[best]) / len(r.values[best]))
    return 1.0


def _wavg_competitive(r: Runs) -> Check | None:
    fixed = [p for p in FIXED if p in r.values]
    if "wavg" not in r.values or not fixed:
        return None
    sign = 1 if r.higher else -1
    best = max(fixed, key=lambda p: sign * sum(r.values[p]) / len(r.values[p]))
    return not_worse(r.values, "wavg", best, competitive_margin(r, best), higher=r.higher)


def _adapool_beats_fixed_averages(r: Runs) -> Check | None:
    """AdaPool above Avg, Max and Sum (the poolings that cannot down-weight noise tokens)."""
    others = [p for p in ("mean", "max", "sum") if p in r.values]
    if "adapool" not in r.values or not others:
        return None
    return beats_each(r.values, "adapool", others, **r.kw())


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
        "mean and sum each above CLS",
    ),
    Finding(
        "text",
        "next-token prediction: Last is the best pooling",
        _pick("text-nexttoken"),
        _token_best_fixed,
        "last above each other fixed pooler",
    ),
    Finding(
        "vision",
        "ViT classification: CLS best of the fixed poolings",
        _pick("vision-", ("vision-mnist", "vision-digits")),
        _token_best_fixed,
        "CLS above each of mean/sum/max",
    ),
    Finding(
        "vision",
        "Max and Sum are consistently the worst fixed poolings",
        _pick("vision-"),
        _max_sum_worst_fixed,
        "max and sum each below every other fixed pooler",
    ),
    Finding(
        "vision",
        "(AdaPool paper) adaptive pooling resists distractors where Avg and Max do not",
        _pick("vision-noisy"),
        _adapool_beats_fixed_averages,
        "adapool above each of mean, max and sum",
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
        "latent_attention above every other pooler",
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
        "last above each other fixed pooler",
    ),
    Finding(
        "timeseries",
        "imputation: Attn is the best pooling and Sum the worst",
        _pick("ts-impute"),
        _attn_best_sum_worst,
        "latent_attention above and sum below every other pooler",
    ),
    Finding(
        "all",
        "W-Avg is competitive everywhere",
        lambda ts: list(ts),
        _wavg_competitive,
        "wavg not worse than the best fixed pooler by more than 1 point (5% of an error)",
    ),
]


def task_runs(df: pd.DataFrame, task: str) -> Runs:
    """The :class:`Runs` of one task label of a :func:`~poolwise.report.compare_frame`."""
    metric = str(df.loc[df["task"] == task, "metric"].iloc[0])
    return Runs(per_seed(df, task), per_item(df, task), metric not in LOWER_IS_BETTER, metric)


def finding_checks(df: pd.DataFrame, tasks: list[str]) -> list[tuple[Finding, str, Check]]:
    """(finding, task, check) for every paper finding testable on ``tasks`` (before Holm)."""
    ran = {task_modality(t) for t in tasks}
    out = []
    for f in FINDINGS:
        if f.modality != "all" and f.modality not in ran:
            continue
        for task in f.tasks(tasks):
            check = f.check(task_runs(df, task))
            if check is not None:
                out.append((f, task, check))
    return out


def findings_table(df: pd.DataFrame, tasks: list[str] | None = None,
                   checks: list[tuple[Finding, str, Check]] | None = None) -> pd.DataFrame:
    """One row per paper finding: where it was tested, where it held or reversed, and a
    verdict (``tasks``: the task labels to judge on, default every task in ``df``;
    ``checks``: already Holm-corrected checks, default those of ``tasks`` corrected alone)."""
    tasks = list(df["task"].unique()) if tasks is None else tasks
    if checks is None:
        raw = finding_checks(df, tasks)
        checks = [(f, t, c) for (f, t, _), c in zip(raw, holm([c for _, _, c in raw]))]
    ran = {task_modality(t) for t in tasks}
    rows = []
    for f in FINDINGS:
        if f.modality != "all" and f.modality not in ran:
            continue
        mine = [(t, c) for g, t, c in checks if g is f and t in tasks]
        rows.append({
            "modality": f.modality,
            "paper's finding": f.paper,
            "our check": f.ours,
            "held on": ", ".join(t for t, c in mine if c.outcome == "holds") or "-",
            "reversed on": ", ".join(t for t, c in mine if c.outcome == "fails") or "-",
            "tested on": ", ".join(t for t, _ in mine) or "-",
            "verdict": verdict([c for _, c in mine]),
        })
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
    """Poolers x tasks, mean ± sample std [95% interval], best per task in bold."""
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
            text = cell_text(s["mean"].iloc[0], s["std"].iloc[0], int(s["n"].iloc[0]), s["ci95"].iloc[0])
            best = summary[summary["task"] == t]["pooler"].iloc[0]
            cells.append(f"**{text}**" if p == best else text)
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


def _findings_rows(df: pd.DataFrame, groups: dict[str, list[str]],
                   backbones: dict[str, str] | None = None) -> list[str]:
    """The findings table (neutral backbones, and objective-trained beside them) and, below
    it, every test that decided a verdict; Holm corrects all of them together."""
    main, other = groups.get("neutral", []), groups.get("objective", [])
    if not main:  # no pooling-neutral runs: judge on whatever ran
        main, other = list(df["task"].unique()), []
    backbones = backbones or {}
    raw = finding_checks(df, main) + finding_checks(df, other)
    checks = [(f, t, c) for (f, t, _), c in zip(raw, holm([c for _, _, c in raw]))]
    ft = findings_table(df, main, checks)
    head = "| modality | paper | our check | backbones (objective) | verdict | held on | reversed on |"
    rule = "|---|---|---|---|---|---|---|"
    if other:
        head += " objective-trained backbones: verdict | held on | reversed on |"
        rule += "---|---|---|"
        by_paper = {r["paper's finding"]: r for r in findings_table(df, other, checks).to_dict("records")}
    lines = [head, rule]
    for r in ft.to_dict("records"):
        paper = r["paper's finding"]
        line = (f"| {r['modality']} | {paper} | {r['our check']} | {_named(r['tested on'], backbones)} | "
                f"**{r['verdict']}** | {r['held on']} | {r['reversed on']} |")
        if other:
            o = by_paper.get(paper)
            line += f" {o['verdict']} | {o['held on']} | {o['reversed on']} |" if o else " - | - | - |"
        lines.append(line)
    lines += ["", f"{RULE} {len(checks)} tests in this table.", "", "### The tests", ""]
    lines += [f"* {f.ours}, {t}: {c.text()}" for f, t, c in checks]
    return lines


def findings_markdown(
    df: pd.DataFrame, modalities: dict[str, list[str]], run_s: dict[str, float],
    groups: dict[str, list[str]] | None = None, backbones: str = "", sizes: str = "",
    objectives: dict[str, str] | None = None,
) -> str:
    """The report from the runs ``df`` (a :func:`~poolwise.report.compare_frame`): the
    backbones (``backbones``: :func:`backbone_table`), one table per modality (``run_s``:
    summed run time, for the heading), the recommendations, the findings judged on the
    pooling-neutral backbones (``groups``: :func:`backbone_groups`) beside the
    objective-trained ones, and the size and length axes (``sizes``, Markdown);
    ``objectives`` (task label -> "backbone (objective)") names each finding's backbones."""
    summary = summarize(df)
    md = [
        "# Pool Me Wisely, reproduced at small scale",
        "",
        f"Frozen backbones, pooler + linear head trained (Adam 1e-3, batch 32); cells: mean {SPREAD}; "
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
        md += [f"* {t}: {recommend(summary, t, df)['verdict']}" for t in tasks] + [""]
    md += ["## The paper's findings against ours", ""]
    if groups and groups.get("objective"):
        md += ["Verdicts on the pooling-neutral backbones (each task's default), and beside them on the "
               "backbones whose pretraining favours a pooler.", ""]
    md += _findings_rows(df, groups or {}, objectives)
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
    text = findings_markdown(df, by_modality, run_s, backbone_groups(df), backbone_table(df), axes,
                             objectives)
    return atomic_write_text(Path(out_dir) / "findings.md", text)
