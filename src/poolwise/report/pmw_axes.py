"""The model-size and maximum-length axes of the Pool Me Wisely study: each pooler's score
against the size of the (pooling-neutral) backbone and against the text tasks' maximum
length, with the paper's claims about each checked on them."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from .compare import LOWER_IS_BETTER, paper_name
from .figures import new_figure, to_png
from .files import atomic_write_bytes
from .verdicts import Check, beats_each, better, holm, verdict

SIZE_ORDER = ("s", "m", "l")
TOKEN_POOLERS = ("first", "last", "cls")


def backbone_size(name: str) -> str:
    """``s``, ``m`` or ``l`` from a backbone name (the name alone is the middle size)."""
    return name.rsplit("-", 1)[1] if name.endswith(("-s", "-l")) else "m"


def size_frame(df: pd.DataFrame, summary: pd.DataFrame) -> pd.DataFrame:
    """Mean score per task, pooler and size, over the pooling-neutral backbones, for the
    tasks run in more than one size (empty otherwise). ``score`` is higher-is-better."""
    neutral = df[df["neutral"].astype(bool) & ~df["task"].str.contains("len=", regex=False)]
    labels = neutral.groupby("task")[["base_task", "backbone"]].first()
    labels["size"] = labels["backbone"].map(backbone_size)
    multi = labels.groupby("base_task")["size"].nunique()
    labels = labels[labels["base_task"].isin(multi[multi > 1].index)]
    if labels.empty:
        return pd.DataFrame()
    s = summary.merge(labels, left_on="task", right_index=True)
    s["score"] = s["mean"].where(~s["lower_better"], -s["mean"])
    return s[["base_task", "size", "pooler", "metric", "mean", "std", "score"]]


def _trend(frame: pd.DataFrame, pooler: str) -> float | None:
    """Score at the largest size minus score at the smallest, for ``pooler``."""
    rows = frame[frame["pooler"] == pooler].set_index("size")["score"]
    sizes = [z for z in SIZE_ORDER if z in rows.index]
    return None if len(sizes) < 2 else float(rows[sizes[-1]] - rows[sizes[0]])


def _gap(frame: pd.DataFrame, size: str) -> float | None:
    rows = frame[frame["size"] == size].set_index("pooler")["score"]
    token = next((p for p in TOKEN_POOLERS if p in rows.index), None)
    return None if token is None or "mean" not in rows.index else abs(float(rows[token] - rows["mean"]))


def scores(df: pd.DataFrame, task: str, pooler: str, column: str = "value") -> list[float]:
    """Per-seed values of ``pooler`` on task label ``task``, ordered by seed, higher-is-better
    for the ``value`` column (an error is negated)."""
    part = df[(df["task"] == task) & (df["pooler"] == pooler)].sort_values("seed")
    sign = -1.0 if column == "value" and part["metric"].isin(LOWER_IS_BETTER).any() else 1.0
    return [sign * float(v) for v in part[column]]


def _labels(df: pd.DataFrame, task: str) -> dict[str, str]:
    """size -> task label of ``task`` on its pooling-neutral backbones."""
    neutral = df[df["neutral"].astype(bool) & ~df["task"].str.contains("len=", regex=False)
                 & (df["base_task"] == task)]
    return {backbone_size(b): t for t, b in neutral.groupby("task")["backbone"].first().items()}


def _trend_check(df: pd.DataFrame, labels: dict[str, str], pooler: str) -> Check | None:
    present = [z for z in SIZE_ORDER if z in labels]
    big, small = scores(df, labels[present[-1]], pooler), scores(df, labels[present[0]], pooler)
    if not big or not small:
        return None
    return better({f"{pooler}@{present[-1]}": big, f"{pooler}@{present[0]}": small},
                  f"{pooler}@{present[-1]}", f"{pooler}@{present[0]}")


def _gap_values(df: pd.DataFrame, label: str, sign: float) -> list[float] | None:
    token = next((p for p in TOKEN_POOLERS if scores(df, label, p)), None)
    if token is None or not scores(df, label, "mean"):
        return None
    return [sign * (t - m) for t, m in zip(scores(df, label, token), scores(df, label, "mean"))]


def _gap_check(df: pd.DataFrame, labels: dict[str, str]) -> Check | None:
    """The CLS/Last - Avg gap, signed by its direction on the smallest size and paired by seed,
    smaller on the largest size than on the smallest."""
    present = [z for z in SIZE_ORDER if z in labels]
    small = _gap_values(df, labels[present[0]], 1.0)
    if not small:
        return None
    sign = 1.0 if sum(small) >= 0 else -1.0
    small, large = [sign * g for g in small], _gap_values(df, labels[present[-1]], sign)
    if not large:
        return None
    return better({"gap@small": small, "gap@large": large}, "gap@small", "gap@large")


def size_checks(df: pd.DataFrame, sizes: pd.DataFrame) -> pd.DataFrame:
    """Per task: W-Avg's and Attn's change from the smallest to the largest backbone, the
    |CLS/Last - Avg| gap at both ends (the paper: the first two grow, the gap narrows), and
    the test of each (Holm-corrected over this table)."""
    rows, checks = [], []
    for task, frame in sizes.groupby("base_task", sort=True):
        present = [z for z in SIZE_ORDER if z in set(frame["size"])]
        lo, hi = present[0], present[-1]
        labels = _labels(df, task)
        row = {"task": task, "sizes": f"{lo}->{hi}", "wavg": _trend(frame, "wavg"),
               "latent_attention": _trend(frame, "latent_attention"), "gap_small": _gap(frame, lo),
               "gap_large": _gap(frame, hi)}
        for name, check in (("wavg_check", _trend_check(df, labels, "wavg")),
                            ("attn_check", _trend_check(df, labels, "latent_attention")),
                            ("gap_check", _gap_check(df, labels))):
            row[name] = len(checks) if check is not None else None
            if check is not None:
                checks.append(check)
        rows.append(row)
    checks = holm(checks)
    for row in rows:
        for name in ("wavg_check", "attn_check", "gap_check"):
            row[name] = None if row[name] is None else checks[row[name]]
    return pd.DataFrame(rows)


def plot_sizes(sizes: pd.DataFrame) -> bytes:
    """PNG: one panel per task, each pooler's score against backbone size (s, m, l)."""
    tasks = sorted(sizes["base_task"].unique())
    cols = min(4, len(tasks))
    rows = -(-len(tasks) // cols)
    plt, fig, _ = new_figure(3.2 * cols, 2.6 * rows)
    fig.clf()
    for i, task in enumerate(tasks):
        ax = fig.add_subplot(rows, cols, i + 1)
        frame = sizes[sizes["base_task"] == task]
        for pooler, line in frame.groupby("pooler", sort=True):
            line = line.set_index("size").reindex([z for z in SIZE_ORDER if z in set(line["size"])])
            ax.errorbar(range(len(line)), line["mean"], yerr=line["std"], marker="o", capsize=2,
                        label=paper_name(pooler))
            ax.set_xticks(range(len(line)), list(line.index))
        ax.set_title(task, fontsize=9)
        ax.set_ylabel(frame["metric"].iloc[0], fontsize=8)
        ax.grid(alpha=0.3)
    fig.axes[0].legend(fontsize=7)
    fig.suptitle("test score against backbone size (s / m / l), mean ± std over seeds")
    return to_png(plt, fig)


def size_section(df: pd.DataFrame, summary: pd.DataFrame, out: Path) -> str:
    """Markdown for findings.md (and ``sizes.png`` in ``out``), or "" without a size axis."""
    sizes = size_frame(df, summary)
    if sizes.empty:
        return ""
    atomic_write_bytes(out / "sizes.png", plot_sizes(sizes))
    checks = size_checks(df, sizes)

    def num(x: float | None) -> str:
        return "-" if x is None or pd.isna(x) else f"{x:+.3g}"

    def judged(column: str) -> list[Check]:
        return [c for c in checks[column] if c is not None]

    md = ["## Backbone size", "",
          "Each pooler's score on the pooling-neutral backbones in three sizes (`poolwise pretrain "
          "--list` gives their shapes). Change from the smallest to the largest size (higher is "
          "better; MSE counts negated), and the CLS/Last-Avg gap at both ends:", "",
          "| task | sizes | W-Avg change | Attn change | CLS/Last-Avg gap, small | gap, large |",
          "|---|---|---|---|---|---|"]
    for r in checks.to_dict("records"):
        md.append(f"| {r['task']} | {r['sizes']} | {num(r['wavg'])} | {num(r['latent_attention'])} | "
                  f"{num(r['gap_small'])} | {num(r['gap_large'])} |")
    md += ["", "| paper's claim | our check (Welch over seeds, Holm over this table) | verdict |",
           "|---|---|---|",
           f"| W-Avg improves as models grow | W-Avg higher on the largest than the smallest | "
           f"**{verdict(judged('wavg_check'))}** |",
           f"| Attn improves as models grow | Attn higher on the largest than the smallest | "
           f"**{verdict(judged('attn_check'))}** |",
           f"| the CLS-Avg gap narrows as models grow | gap (signed as on the smallest, paired by seed) "
           f"smaller on the largest | **{verdict(judged('gap_check'))}** |", ""]
    for r in checks.to_dict("records"):
        for name, what in (("wavg_check", "W-Avg grows"), ("attn_check", "Attn grows"),
                           ("gap_check", "gap narrows")):
            if r[name] is not None:
                md.append(f"* {r['task']}, {what}: {r[name].text()}")
    md += ["", "![sizes](sizes.png)"]
    return "\n".join(md)


def length_frame(df: pd.DataFrame, summary: pd.DataFrame) -> pd.DataFrame:
    """Mean score per task, backbone, pooler and maximum length, for the (task, backbone)
    pairs run at more than one length (empty otherwise). ``score`` is higher-is-better."""
    labels = df.groupby("task")[["base_task", "backbone", "max_length"]].first()
    labels = labels[labels["max_length"] > 0]
    multi = labels.groupby(["base_task", "backbone"])["max_length"].nunique()
    keep = multi[multi > 1].index
    labels = labels[[(t, b) in keep for t, b in zip(labels["base_task"], labels["backbone"])]]
    if labels.empty:
        return pd.DataFrame()
    s = summary.merge(labels, left_on="task", right_index=True)
    s["score"] = s["mean"].where(~s["lower_better"], -s["mean"])
    return s[["base_task", "backbone", "max_length", "pooler", "metric", "mean", "std", "score"]]


def length_section(df: pd.DataFrame, summary: pd.DataFrame, out: Path) -> str:
    """Markdown for findings.md (and ``lengths.png``), or "" without a length sweep. The
    paper (its Table 9): pooling matters most at short lengths and the poolers stabilise at
    64-128 tokens; checked as the spread between the best and the worst pooler being larger
    at the shortest length than at the longest."""
    lengths = length_frame(df, summary)
    if lengths.empty:
        return ""
    md = ["## Maximum length", "",
          "Each pooler's score with inputs cut to each maximum length (words for our encoders, "
          "tokens for Hugging Face ones); best-worst spread among the poolers at each length:", ""]
    checks, names = [], []
    panels = []
    for (task, backbone), frame in lengths.groupby(["base_task", "backbone"], sort=True):
        sizes = sorted(frame["max_length"].unique())
        table = frame.pivot_table(index="pooler", columns="max_length", values="mean")
        spread = {n: float(frame[frame["max_length"] == n]["score"].max()
                           - frame[frame["max_length"] == n]["score"].min()) for n in sizes}
        ends = {n: _seed_spreads(df, frame, n) for n in (sizes[0], sizes[-1])}
        checks.append(better({"short": ends[sizes[0]], "long": ends[sizes[-1]]}, "short", "long"))
        names.append(f"{task} on {backbone}, spread at {sizes[0]} vs {sizes[-1]}")
        md += [f"### {task} on {backbone}", "",
               "| pooler | " + " | ".join(str(n) for n in sizes) + " |", "|---" * (len(sizes) + 1) + "|"]
        md += [f"| {paper_name(p)} | " + " | ".join(f"{table.loc[p, n]:.4g}" for n in sizes) + " |"
               for p in table.index]
        md += ["| spread (best - worst) | " + " | ".join(f"{spread[n]:.3g}" for n in sizes) + " |", ""]
        panels.append((f"{task} ({backbone})", frame))
    atomic_write_bytes(out / "lengths.png", _plot_lengths(panels))
    checks = holm(checks)
    md += ["| paper's claim | our check (per-seed best-worst spread, Welch, Holm over this table) "
           "| verdict |",
           "|---|---|---|",
           f"| pooling matters most at short lengths, stabilising at 64-128 | pooler spread larger at the "
           f"shortest length than at the longest | **{verdict(checks)}** |", ""]
    md += [f"* {n}: {c.text()}" for n, c in zip(names, checks)]
    md += ["", "![lengths](lengths.png)"]
    return "\n".join(md)


def _seed_spreads(df: pd.DataFrame, frame: pd.DataFrame, length: int) -> list[float]:
    """Per seed, the best minus the worst pooler's score at ``length`` (the runs of one seed
    index compared with each other)."""
    label = df[(df["base_task"] == frame["base_task"].iloc[0]) & (df["backbone"] == frame["backbone"].iloc[0])
               & (df["max_length"] == length)]["task"].iloc[0]
    per = [scores(df, label, p) for p in frame[frame["max_length"] == length]["pooler"]]
    n = min(len(v) for v in per)
    return [max(v[i] for v in per) - min(v[i] for v in per) for i in range(n)]


def _plot_lengths(panels: list[tuple[str, pd.DataFrame]]) -> bytes:
    plt, fig, axes = new_figure(3.6 * len(panels), 3.0, ncols=len(panels))
    for ax, (title, frame) in zip(axes if len(panels) > 1 else [axes], panels):
        for pooler, line in frame.groupby("pooler", sort=True):
            line = line.sort_values("max_length")
            ax.errorbar(line["max_length"], line["mean"], yerr=line["std"], marker="o", capsize=2,
                        label=paper_name(pooler))
        ax.set_xscale("log", base=2)
        ax.set_xlabel("maximum length")
        ax.set_ylabel(frame["metric"].iloc[0])
        ax.set_title(title, fontsize=9)
        ax.grid(alpha=0.3)
    (axes[0] if len(panels) > 1 else axes).legend(fontsize=7)
    return to_png(plt, fig)


def attack_frame(df: pd.DataFrame) -> pd.DataFrame:
    """Mean FGSM success (%) per task label, pooler and budget, on the tasks' default lengths
    and the (m-size) backbones (empty when no run measured it)."""
    cols = sorted((c for c in df.columns if c.startswith("fgsm_")), key=lambda c: float(c[5:]))
    if not cols:
        return pd.DataFrame()
    keep = df[~df["task"].str.contains("len=", regex=False)
              & ~df["backbone"].str.endswith(("-s", "-l"))].dropna(subset=cols, how="all")
    if keep.empty:
        return pd.DataFrame()
    long = keep.melt(id_vars=["task", "pooler"], value_vars=cols, var_name="eps", value_name="success")
    long["eps"] = long["eps"].str[5:].astype(float)
    return long.groupby(["task", "pooler", "eps"], sort=True)["success"].agg(["mean", "std"]).reset_index()


def attack_section(df: pd.DataFrame) -> str:
    """Markdown: FGSM success per pooler on each classification task, and two checks: the
    paper's Table 10 (Sum the most robust fixed pooling on a ViT) and the ordering of
    Theorem 4.2's constants (Avg, which contracts, attacked less than Max and Sum)."""
    att = attack_frame(df)
    if att.empty:
        return ""
    budgets = sorted(att["eps"].unique())
    mid = budgets[len(budgets) // 2]
    md = ["## Adversarial robustness (FGSM on the pooler's input)", "",
          "Share (%) of the correctly scored test inputs that one FGSM step on the frozen features "
          "makes wrong (lower is more robust), mean over seeds; budgets in feature units (the "
          "features end in LayerNorm). The paper attacks a whole ViT's pixels (its Table 10); a "
          "frozen backbone leaves the pooler's input, where Theorem 4.2's constants apply.", "",
          "| task | pooler | " + " | ".join(f"eps {e:g}" for e in budgets) + " |",
          "|---|---|" + "---|" * len(budgets)]
    checks: list[tuple[str, str, Check]] = []
    for task, frame in att.groupby("task", sort=True):
        table = frame.pivot_table(index="pooler", columns="eps", values="mean")
        for pooler in table.index:
            cells = " | ".join(f"{table.loc[pooler, e]:.3g}" for e in budgets)
            md.append(f"| {task} | {paper_name(pooler)} | {cells} |")
        col = f"fgsm_{mid:g}"
        values = {p: scores(df[df[col].notna()], task, p, col) for p in table.index}
        fixed = [p for p in ("first", "last", "mean", "sum", "max") if values.get(p)]
        if "sum" in fixed and len(fixed) > 1:
            checks.append(("sum", task, beats_each(values, "sum", [p for p in fixed if p != "sum"],
                                                   higher=False)))
        if {"mean", "sum", "max"} <= set(fixed):
            checks.append(("avg", task, beats_each(values, "mean", ["max", "sum"], higher=False)))
    judged = holm([c for _, _, c in checks])
    sum_best = [c for (k, _, _), c in zip(checks, judged) if k == "sum"]
    avg_below = [c for (k, _, _), c in zip(checks, judged) if k == "avg"]
    md += ["", f"Checks at eps {mid:g} (success per seed, Welch, Holm over this table):", "",
           "| claim | our check | verdict |", "|---|---|---|",
           f"| paper, Table 10: Sum is the most robust fixed pooling | Sum lower success than each other "
           f"fixed pooling | **{verdict(sum_best)}** |",
           f"| Theorem 4.2's constants: Avg (contracting) resists better than Max and Sum | Avg below Max "
           f"and Sum | **{verdict(avg_below)}** |", ""]
    md += [f"* {'Sum most robust' if k == 'sum' else 'Avg below Max and Sum'}, {t}: {c.text()}"
           for (k, t, _), c in zip(checks, judged)]
    return "\n".join(md)
