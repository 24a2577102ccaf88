"""Report of the kNN-Centroid sweep: runs.csv, a Markdown table and the signal-loss plot."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from ..runner.store import ResultsStore
from .figures import new_figure, to_png
from .files import atomic_write_bytes, atomic_write_text
from .settings import base_name, differing_keys, labelled, setting_label
from .stats import cell, describe
from .verdicts import RULE, SPREAD, Check, beats_each, holm, not_worse, verdict

TASK = "adapool-knn"
#: what a kNN sweep varies; every other config key is part of a run's setting
AXES = ("pooler", "k", "seed")
ORDER = ["adapool", "cls_token", "cls", "mean", "max"]
#: the paper's names; "cls" is how databases from before 0.2 name the learned token
LABELS = {"adapool": "AdaPool", "cls_token": "ClsToken (learned token)", "cls": "ClsToken (learned token)",
          "first": "first input token", "mean": "AvgPool", "max": "MaxPool"}


def knn_frame(store: ResultsStore) -> pd.DataFrame:
    """One row per finished run of the kNN task."""
    rows = store.rows(task=TASK, status="done")
    varying = differing_keys([r["config"] for r in rows], AXES)
    records = []
    for row in rows:
        cfg, m = row["config"], row["metrics"]
        setting = setting_label(cfg, varying)
        records.append({
            "pooler": labelled(cfg["pooler"], setting), "setting": setting, "k": cfg["k"],
            "snr": m["snr"], "seed": cfg["seed"],
            "test_signal_loss": m["test_signal_loss"], "best_val_loss": m["best_val_loss"],
            "best_epoch": m["best_epoch"], "baseline_centroid": m["baseline_centroid"],
            "baseline_query": m["baseline_query"], "wall_s": row["wall_s"],
            "train_samples_per_s": m.get("train_samples_per_s"), "epochs": cfg["epochs"],
            "depth": cfg["depth"], "num_heads": cfg["num_heads"], "num_samples": cfg["num_samples"],
            # the compute a run spent: with the setting, enough to rebuild the scaling report
            "sample_gradients": m.get("sample_gradients"), "train_flops": m.get("train_flops"),
            "host": row["host"], "key": row["key"],
        })
    df = pd.DataFrame.from_records(records)
    if df.empty:
        return df
    return df.sort_values(["k", "pooler", "seed"], key=lambda s: s.map(_pooler_rank) if s.name == "pooler"
                          else s).reset_index(drop=True)


def _pooler_rank(label: str) -> int:
    name = base_name(label)
    return ORDER.index(name) if name in ORDER else len(ORDER)


def _label(label: str) -> str:
    """The paper's name of a pooler label, keeping its setting."""
    name = base_name(label)
    return LABELS.get(name, name) + label[len(name):]


def _poolers(df: pd.DataFrame) -> list[str]:
    return sorted(df["pooler"].unique(), key=lambda p: (_pooler_rank(p), p))


def knn_summary(df: pd.DataFrame) -> pd.DataFrame:
    """Mean, sample std, 95% interval and count of the test signal loss per pooler and SNR,
    plus the baselines."""
    stats = describe(df.groupby(["pooler", "snr"])["test_signal_loss"]).reset_index()
    base = df.groupby("snr")[["baseline_centroid", "baseline_query"]].mean().reset_index()
    return stats.merge(base, on="snr")


def _table(df: pd.DataFrame) -> str:
    summ = knn_summary(df)
    snrs = sorted(summ["snr"].unique())
    head = "| pooler | " + " | ".join(f"SNR {s:.2g} (k={_k(df, s)})" for s in snrs) + " |"
    lines = [head, "|---" * (len(snrs) + 1) + "|"]
    best = summ.loc[summ.groupby("snr")["mean"].idxmin()].set_index("snr")["pooler"]
    for pooler in _poolers(df):
        cells = []
        for s in snrs:
            r = summ[(summ.pooler == pooler) & (summ.snr == s)]
            if r.empty:
                cells.append("-")
                continue
            text = cell(r["mean"].iloc[0], r["std"].iloc[0], r["ci95"].iloc[0], int(r["n"].iloc[0]), ".3g")
            cells.append(f"**{text}**" if best.get(s) == pooler else text)
        lines.append(f"| {_label(pooler)} | " + " | ".join(cells) + " |")
    for col, name in (("baseline_centroid", "centroid baseline"), ("baseline_query", "query baseline")):
        vals = summ.groupby("snr")[col].first()
        lines.append(f"| *{name}* | " + " | ".join(f"{vals[s]:.3g}" for s in snrs) + " |")
    return "\n".join(lines)


def _k(df: pd.DataFrame, snr: float) -> int:
    return int(df.loc[df.snr == snr, "k"].iloc[0])


def claim_checks(df: pd.DataFrame) -> list[tuple[str, Check]]:
    """The paper's claims as tests on the per-seed test losses, per setting (a pooler label's
    suffix) and SNR: AdaPool below each of mean and max at SNR 0.03-0.25, and mean pooling
    no worse than the best pooler by more than 10% of its loss at SNR 1 (before Holm)."""
    out = []
    suffixes = dict.fromkeys(p[len(base_name(p)):] for p in df.pooler)
    for suffix in suffixes:
        for s in sorted(df.snr.unique()):
            part = df[(df.snr == s) & df.pooler.map(lambda p, x=suffix: p[len(base_name(p)):] == x)]
            loss = {base_name(p): list(g.sort_values("seed").test_signal_loss)
                    for p, g in part.groupby("pooler")}
            where = f"SNR {s:.3g}{suffix}"
            rivals = [p for p in ("mean", "max") if p in loss]
            if "adapool" in loss and rivals and 0.03 <= round(s, 2) <= 0.25:
                ada = sum(loss["adapool"]) / len(loss["adapool"])
                ratios = ", ".join(f"{_label(p)} {sum(loss[p]) / len(loss[p]) / ada:.1f}x" for p in
                                   ("max", "mean", "cls_token") if p in loss)
                check = beats_each(loss, "adapool", rivals, higher=False)
                out.append((f"{where}: AdaPool below {' and '.join(rivals)} (loss over AdaPool's: "
                            f"{ratios})", check))
            if "mean" in loss and len(loss) > 1 and s >= 1:
                best = min(loss, key=lambda p: sum(loss[p]) / len(loss[p]))
                if best != "mean":
                    margin = 0.1 * sum(loss[best]) / len(loss[best])
                    out.append((f"{where}: mean pooling within 10% of the best ({_label(best)})",
                                not_worse(loss, "mean", best, margin, higher=False)))
    return out


def claim_check(df: pd.DataFrame) -> list[str]:
    """The claims' lines for table.md: each test after Holm over this report, and a verdict."""
    raw = claim_checks(df)
    checks = holm([c for _, c in raw])
    lines = [f"{what}: {c.text()}" for (what, _), c in zip(raw, checks)]
    ada = [c for (what, _), c in zip(raw, checks) if "AdaPool below" in what]
    if ada:
        lines.append(f"AdaPool lowest at SNR 0.03-0.25 over the settings tested: **{verdict(ada)}**")
    return lines


def _plot(df: pd.DataFrame) -> bytes:
    summ = knn_summary(df)
    plt, fig, ax = new_figure(7, 4.5)
    for pooler in _poolers(df):
        r = summ[summ.pooler == pooler].sort_values("snr")
        per_seed = df[df.pooler == pooler].groupby("snr")["test_signal_loss"]
        lo, hi = per_seed.min().reindex(r.snr), per_seed.max().reindex(r.snr)
        (line,) = ax.plot(r.snr, r["mean"], marker="o", label=_label(pooler))
        ax.fill_between(r.snr, lo.values, hi.values, color=line.get_color(), alpha=0.2, linewidth=0)
    base = summ.groupby("snr")[["baseline_centroid", "baseline_query"]].first()
    ax.plot(base.index, base.baseline_centroid, "k--", lw=1, label="centroid baseline")
    ax.plot(base.index, base.baseline_query, "k:", lw=1.2, label="query baseline")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xticks(sorted(df.snr.unique()), [f"{s:.2g}" for s in sorted(df.snr.unique())])
    ax.set_xlabel("signal-to-noise ratio k/N")
    ax.set_ylabel("test signal loss (MSE to k-NN centroid)")
    seeds = int(df.groupby(["pooler", "snr"]).size().max())
    ax.set_title(f"kNN-Centroid: signal loss vs SNR (band: min-max over {seeds} seed(s))")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    return to_png(plt, fig)


def write_knn_report(store: ResultsStore, out_dir: str | Path) -> dict[str, Path]:
    """Write ``runs.csv``, ``table.md`` and ``signal_loss.png`` from the store alone."""
    df = knn_frame(store)
    if df.empty:
        raise ValueError(f"no finished {TASK} runs in {store.path}")
    failed = len(store.rows(task=TASK, status="failed"))
    return write_knn_files(df, out_dir, f"database `{store.path}`", failed)


def write_knn_files(df: pd.DataFrame, out_dir: str | Path, source: str, failed: int = 0) -> dict[str, Path]:
    """The files of :func:`write_knn_report` from a :func:`knn_frame` (or its runs.csv);
    ``source`` names where the runs came from."""
    out = Path(out_dir)
    paths = {"csv": out / "runs.csv", "table": out / "table.md", "plot": out / "signal_loss.png"}
    atomic_write_text(paths["csv"], df.to_csv(index=False))
    seeds = int(df.groupby(["pooler", "snr"]).size().max())
    over = f"mean over {seeds} seeds, {SPREAD}" if seeds > 1 else "one seed"
    md = [f"# kNN-Centroid: test signal loss ({over})", "",
          f"{len(df)} finished runs" + (f", {failed} failed" if failed else "") +
          f"; {source}.", "", _table(df), "", "## Against the paper's claims", ""]
    md += ([f"* {line}" for line in claim_check(df)] + ["", RULE]) if claim_checks(df) else \
        ["* (not enough poolers/SNRs to check)"]
    md += ["", f"Total training wall time {df.wall_s.sum() / 60:.1f} min; "
           f"median {df.train_samples_per_s.median():.0f} training samples/s."]
    atomic_write_text(paths["table"], "\n".join(md) + "\n")
    atomic_write_bytes(paths["plot"], _plot(df))
    return paths
