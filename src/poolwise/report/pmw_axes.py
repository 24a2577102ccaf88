"""The model-size and maximum-length axes of the Pool Me Wisely study: each pooler's score
against the size of the (pooling-neutral) backbone and against the text tasks' maximum
length, with the paper's claims about each checked on them."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from .compare import paper_name
from .figures import new_figure, to_png
from .files import atomic_write_bytes

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


def size_checks(sizes: pd.DataFrame) -> pd.DataFrame:
    """Per task: W-Avg's and Attn's change from the smallest to the largest backbone, and the
    |CLS/Last - Avg| gap at both ends (the paper: the first two grow, the gap narrows)."""
    rows = []
    for task, frame in sizes.groupby("base_task", sort=True):
        present = [z for z in SIZE_ORDER if z in set(frame["size"])]
        lo, hi = present[0], present[-1]
        g_lo, g_hi = _gap(frame, lo), _gap(frame, hi)
        rows.append({"task": task, "sizes": f"{lo}->{hi}", "wavg": _trend(frame, "wavg"),
                     "latent_attention": _trend(frame, "latent_attention"), "gap_small": g_lo,
                     "gap_large": g_hi})
    return pd.DataFrame(rows)


def _verdict(values: list[bool]) -> str:
    if not values:
        return "not run"
    held = sum(values)
    return "agrees" if held == len(values) else "disagrees" if not held else f"partly ({held}/{len(values)})"


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
    checks = size_checks(sizes)

    def num(x: float | None) -> str:
        return "-" if x is None or pd.isna(x) else f"{x:+.3g}"

    md = ["## Backbone size", "",
          "Each pooler's score on the pooling-neutral backbones in three sizes (`poolwise pretrain "
          "--list` gives their shapes). Change from the smallest to the largest size (higher is "
          "better; MSE counts negated), and the CLS/Last-Avg gap at both ends:", "",
          "| task | sizes | W-Avg change | Attn change | CLS/Last-Avg gap, small | gap, large |",
          "|---|---|---|---|---|---|"]
    for r in checks.to_dict("records"):
        md.append(f"| {r['task']} | {r['sizes']} | {num(r['wavg'])} | {num(r['latent_attention'])} | "
                  f"{num(r['gap_small'])} | {num(r['gap_large'])} |")
    wavg = [v > 0 for v in checks["wavg"].dropna()]
    attn = [v > 0 for v in checks["latent_attention"].dropna()]
    gaps = [lg < sm for sm, lg in zip(checks["gap_small"], checks["gap_large"])
            if not (pd.isna(sm) or pd.isna(lg))]
    md += ["", "| paper's claim | our check | verdict |", "|---|---|---|",
           f"| W-Avg improves as models grow | W-Avg higher on the largest than the smallest | "
           f"**{_verdict(wavg)}** |",
           f"| Attn improves as models grow | Attn higher on the largest than the smallest | "
           f"**{_verdict(attn)}** |",
           f"| the CLS-Avg gap narrows as models grow | gap smaller on the largest | **{_verdict(gaps)}** |",
           "", "![sizes](sizes.png)"]
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
    checks = []
    panels = []
    for (task, backbone), frame in lengths.groupby(["base_task", "backbone"], sort=True):
        sizes = sorted(frame["max_length"].unique())
        table = frame.pivot_table(index="pooler", columns="max_length", values="mean")
        spread = {n: float(frame[frame["max_length"] == n]["score"].max()
                           - frame[frame["max_length"] == n]["score"].min()) for n in sizes}
        checks.append(spread[sizes[0]] > spread[sizes[-1]])
        md += [f"### {task} on {backbone}", "",
               "| pooler | " + " | ".join(str(n) for n in sizes) + " |", "|---" * (len(sizes) + 1) + "|"]
        md += [f"| {paper_name(p)} | " + " | ".join(f"{table.loc[p, n]:.4g}" for n in sizes) + " |"
               for p in table.index]
        md += ["| spread (best - worst) | " + " | ".join(f"{spread[n]:.3g}" for n in sizes) + " |", ""]
        panels.append((f"{task} ({backbone})", frame))
    atomic_write_bytes(out / "lengths.png", _plot_lengths(panels))
    md += ["| paper's claim | our check | verdict |", "|---|---|---|",
           f"| pooling matters most at short lengths, stabilising at 64-128 | pooler spread larger at the "
           f"shortest length than at the longest | **{_verdict(checks)}** |", "", "![lengths](lengths.png)"]
    return "\n".join(md)


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
    sum_best, avg_below = [], []
    for task, frame in att.groupby("task", sort=True):
        table = frame.pivot_table(index="pooler", columns="eps", values="mean")
        for pooler in table.index:
            cells = " | ".join(f"{table.loc[pooler, e]:.3g}" for e in budgets)
            md.append(f"| {task} | {paper_name(pooler)} | {cells} |")
        at = table[mid]
        fixed = [p for p in ("first", "last", "mean", "sum", "max") if p in at.index]
        if "sum" in fixed and len(fixed) > 1:
            sum_best.append(at[fixed].idxmin() == "sum")
        if {"mean", "sum", "max"} <= set(at.index):
            avg_below.append(bool(at["mean"] < at["sum"] and at["mean"] < at["max"]))
    md += ["", f"Checks at eps {mid:g}:", "", "| claim | our check | verdict |", "|---|---|---|",
           f"| paper, Table 10: Sum is the most robust fixed pooling | Sum lowest success of the fixed "
           f"poolings | **{_verdict(sum_best)}** |",
           f"| Theorem 4.2's constants: Avg (contracting) resists better than Max and Sum | Avg below Max "
           f"and Sum | **{_verdict(avg_below)}** |"]
    return "\n".join(md)
