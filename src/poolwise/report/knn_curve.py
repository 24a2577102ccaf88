"""Learning curves of the kNN-Centroid task (``--preset curve``): test signal loss after every
epoch against sample-gradients, for finished runs (the store's history) and for runs still
under way (the history in their checkpoint), with the MaxPool / AdaPool and AvgPool / AdaPool
margins along the way."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pandas as pd
import torch

from ..runner.store import ResultsStore
from .figures import new_figure, to_png
from .files import atomic_write_bytes, atomic_write_text

TASK = "adapool-knn"
LABELS = {"adapool": "AdaPool", "max": "MaxPool", "mean": "AvgPool", "cls_token": "ClsToken"}
COLOURS = {"adapool": "C0", "max": "C3", "mean": "C2", "cls_token": "C1"}


def curve_frame(store: ResultsStore, specs: Sequence | None = None) -> pd.DataFrame:
    """One row per (run, epoch) with a test loss: finished runs from the store, and for
    ``specs`` (the sweep's RunSpecs) not finished yet, the epochs in their checkpoint."""
    from ..experiments.knn import checkpoint_path

    rows, done = [], set()
    for row in store.rows(task=TASK, status="done"):
        cfg = row["config"]
        if not cfg.get("test_every_epoch"):
            continue
        done.add(row["key"])
        rows += [_record(cfg, h, "done") for h in row["history"] or [] if "test_loss" in h]
    for spec in specs or ():
        if spec.key in done:
            continue
        cfg = spec.config()
        path = checkpoint_path(cfg)
        if not path.is_file():
            continue
        history = torch.load(path, weights_only=True)["history"]
        rows += [_record(cfg.to_dict(), h, "running") for h in history if "test_loss" in h]
    return pd.DataFrame.from_records(rows)


def _record(cfg: dict, h: dict, status: str) -> dict:
    return {"pooler": cfg["pooler"], "k": cfg["k"], "snr": cfg["k"] / cfg["num_vectors"], "seed": cfg["seed"],
            "epoch": h["epoch"], "sample_gradients": h["sample_gradients"], "test_loss": h["test_loss"],
            "val_loss": h.get("val_loss"), "train_loss": h.get("train_loss"), "wall_s": h.get("wall_s"),
            "status": status}


def margins(df: pd.DataFrame) -> pd.DataFrame:
    """Mean test loss per SNR, pooler and sample-gradients (over seeds), and the ratios of
    MaxPool and AvgPool to AdaPool where both were measured at the same point."""
    wide = df.pivot_table(index=["snr", "sample_gradients"], columns="pooler", values="test_loss",
                          aggfunc="mean").reset_index()
    for rival in ("max", "mean"):
        if "adapool" in wide and rival in wide:
            wide[f"{rival}/adapool"] = wide[rival] / wide["adapool"]
    return wide


def _plot(df: pd.DataFrame) -> bytes:
    snrs = sorted(df.snr.unique())
    plt, fig, axes = new_figure(5.0 * len(snrs), 7.0, nrows=2, ncols=len(snrs))
    axes = [list(axes)] if len(snrs) == 1 else [list(col) for col in axes.T]
    wide = margins(df)
    for (ax_loss, ax_margin), snr in zip(axes, snrs):
        part = df[df.snr == snr]
        for (pooler, seed), line in part.groupby(["pooler", "seed"]):
            line = line.sort_values("sample_gradients")
            ax_loss.plot(line.sample_gradients, line.test_loss, color=COLOURS.get(pooler),
                         label=f"{LABELS.get(pooler, pooler)} (seed {seed})", lw=1.2)
        base = wide[wide.snr == snr].sort_values("sample_gradients")
        for rival, colour in (("max/adapool", "C3"), ("mean/adapool", "C2")):
            if rival in base:
                ax_margin.plot(base.sample_gradients, base[rival], color=colour,
                               label=rival.replace("max", "MaxPool").replace("mean", "AvgPool")
                               .replace("adapool", "AdaPool"))
        ax_margin.axhline(1.0, color="grey", lw=0.8, ls="--")
        for ax in (ax_loss, ax_margin):
            ax.set_xscale("log")
            ax.grid(True, which="both", alpha=0.3)
            ax.set_xlabel("sample-gradients")
        ax_loss.set_yscale("log")
        ax_loss.set_title(f"SNR {snr:.3g}: test signal loss per epoch", fontsize=9)
        ax_margin.set_title(f"SNR {snr:.3g}: loss ratio over AdaPool", fontsize=9)
        ax_loss.legend(fontsize=7)
        ax_margin.legend(fontsize=7)
    return to_png(plt, fig)


def write_curve_report(df: pd.DataFrame, out_dir: str | Path, every: int = 10) -> dict[str, Path]:
    """``curve.csv`` (every epoch of every run), ``curve.md`` (the losses and margins every
    ``every`` epochs and at the last epoch each run reached) and ``curve.png``."""
    if df.empty:
        raise ValueError("no kNN run with a per-epoch test loss (test_every_epoch) yet")
    out = Path(out_dir)
    paths = {"curve_csv": out / "curve.csv", "curve_table": out / "curve.md", "curve_plot": out / "curve.png"}
    ordered = df.sort_values(["snr", "pooler", "seed", "epoch"])
    atomic_write_text(paths["curve_csv"], ordered.to_csv(index=False))
    wide = margins(df)
    epochs = sorted(df.epoch.unique())
    keep = set(epochs[every - 1::every]) | {e for e in df.groupby(["snr", "pooler", "seed"]).epoch.max()}
    grads = set(df[df.epoch.isin(keep)].sample_gradients)
    poolers = [p for p in ("adapool", "max", "mean", "cls_token") if p in wide]
    ratios = [c for c in ("max/adapool", "mean/adapool") if c in wide]
    lines = ["| SNR | sample-gradients | " + " | ".join(LABELS.get(p, p) for p in poolers) + " | "
             + " | ".join(ratios) + " |", "|---|---|" + "---|" * (len(poolers) + len(ratios))]
    for _, r in wide[wide.sample_gradients.isin(grads)].sort_values(["snr", "sample_gradients"]).iterrows():
        cells = [f"{r[p]:.4g}" if pd.notna(r[p]) else "-" for p in poolers]
        cells += [f"{r[c]:.2f}x" if pd.notna(r[c]) else "-" for c in ratios]
        lines.append(f"| {r.snr:.3g} | {int(r.sample_gradients):,} | " + " | ".join(cells) + " |")
    state = df.groupby(["snr", "pooler", "seed"]).agg(epochs=("epoch", "max"), status=("status", "last"),
                                                     wall_s=("wall_s", "max")).reset_index()
    runs = ", ".join(f"{LABELS.get(s.pooler, s.pooler)} SNR {s.snr:.3g} seed {s.seed}: {s.epochs} epochs "
                     f"({s.status}, {s.wall_s / 3600:.1f} h)" for s in state.itertuples())
    md = ["# kNN-Centroid learning curves (the paper's model and optimiser)", "",
          "Test signal loss after each epoch (fresh training sets every epoch; mean over the seeds "
          "measured at that point), every "
          f"{every} epochs and at each run's last epoch so far. Runs: {runs}.", "", *lines, "",
          "![learning curves](curve.png)", ""]
    atomic_write_text(paths["curve_table"], "\n".join(md))
    atomic_write_bytes(paths["curve_plot"], _plot(df))
    return paths
