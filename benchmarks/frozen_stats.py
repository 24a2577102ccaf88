"""Per-pooler statistics of frozen-backbone runs (a compare's runs.csv): mean, sample std and the
95% t-interval over seeds, and tests of the claims a reader would check (the best pooler
against the runner-up; the token pooler against the mean, the paper's "Last vs Avg"): Welch
over seeds and, where an ``items.csv`` beside a runs.csv holds the per-item test hits, a paired
bootstrap over test items too (the larger p decides), Holm-corrected over the claims of the
table, with three outcomes (one better / inconclusive).

    python benchmarks/frozen_stats.py docs/results/smollm2-frozen/*/runs.csv --md stats.md
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from poolwise.report.compare import LOWER_IS_BETTER, per_item, per_seed, pooler_label, read_runs_csv
from poolwise.report.stats import summary
from poolwise.report.verdicts import better, holm


def claims(frame: pd.DataFrame) -> list[tuple[str, str, str]]:
    """``(task, A, B)`` pairs to test: best vs runner-up, and last (or first) vs mean."""
    out = []
    for task, rows in frame.groupby("task"):
        higher = rows["metric"].iloc[0] not in LOWER_IS_BETTER
        means = rows.groupby("pooler")["value"].mean().sort_values(ascending=not higher)
        out.append((task, means.index[0], means.index[1]))
        token = "last" if "last" in means.index else "first"
        if token in means.index and "mean" in means.index and {token, "mean"} != set(means.index[:2]):
            out.append((task, token, "mean"))
    return out


def table(frame: pd.DataFrame, alpha: float = 0.05) -> str:
    lines = ["| task | pooler | mean ± sample std [95% CI] | seeds |", "|---|---|---|---|"]
    for task, rows in frame.groupby("task"):
        higher = rows["metric"].iloc[0] not in LOWER_IS_BETTER
        order = rows.groupby("pooler")["value"].mean().sort_values(ascending=not higher).index
        for pooler in order:
            s = summary(rows.loc[rows["pooler"] == pooler, "value"].tolist())
            lines.append(f"| {task} | {pooler_label(pooler)} | {s.text()} | {s.n} |")
    tests = []
    for task, a, b in claims(frame):
        higher = frame.loc[frame["task"] == task, "metric"].iloc[0] not in LOWER_IS_BETTER
        tests.append((task, a, b, better(per_seed(frame, task), a, b, higher=higher, alpha=alpha,
                                         items=per_item(frame, task))))
    judged = holm([c for *_, c in tests], alpha)
    lines += ["", f"| task | claim | test | Holm-corrected at {alpha} |", "|---|---|---|---|"]
    for (task, a, b, _), c in zip(tests, judged):
        said = {"holds": f"{a} better", "fails": f"{b} better"}.get(c.outcome, "inconclusive")
        lines.append(f"| {task} | {a} vs {b} | {c.detail} | **{said}** |")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="+", type=Path, help="runs.csv files of compare sweeps")
    ap.add_argument("--md", type=Path, help="also write the tables here")
    ap.add_argument("--alpha", type=float, default=0.05)
    args = ap.parse_args()
    frame = pd.concat([read_runs_csv(p) for p in args.runs], ignore_index=True)
    text = table(frame, args.alpha)
    print(text)
    if args.md:
        args.md.write_text(text)


if __name__ == "__main__":
    main()
