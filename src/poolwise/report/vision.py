"""Report of the from-scratch vision sweep: runs.csv, an accuracy table beside the AdaPool
paper's CIFAR numbers, accuracy against image SNR, and findings.md checking the paper's claims."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from ..runner.store import ResultsStore
from .figures import new_figure, to_png
from .files import atomic_write_bytes, atomic_write_text
from .settings import base_name, differing_keys, labelled, setting_label

TASK = "adapool-vision"
#: what the sweep varies; every other config key is part of a run's setting
AXES = ("pooler", "seed", "dataset", "canvas", "placement")
ORDER = ["cls_token", "mean", "max", "adapool-focal", "adapool-mean", "adapool-corner"]
LABELS = {"cls_token": "ClsToken", "mean": "AvgPool", "max": "MaxPool", "adapool-focal": "Ada-Focal",
          "adapool-mean": "Ada-Mean", "adapool-corner": "Ada-Corner"}
#: the paper's top-1 test accuracy (%, mean ± std over 5 folds), Table of section 3.4 of our notes
PAPER = {"cifar10": {"cls_token": (84.52, 0.21), "mean": (87.15, 0.35), "max": (87.65, 0.17),
                     "adapool-focal": (87.98, 0.42), "adapool-mean": (87.84, 0.30),
                     "adapool-corner": (87.00, 0.30)},
         "cifar100": {"cls_token": (55.56, 0.13), "mean": (59.63, 0.23), "max": (60.55, 0.28),
                      "adapool-focal": (61.22, 0.33), "adapool-mean": (61.23, 0.20),
                      "adapool-corner": (57.08, 0.31)}}


def vision_frame(store: ResultsStore) -> pd.DataFrame:
    """One row per finished run; ``pooler`` carries the setting when runs of several settings
    (other than the sweep's axes) share the store."""
    rows = store.rows(task=TASK, status="done")
    varying = differing_keys([r["config"] for r in rows], AXES)
    records = []
    for row in rows:
        cfg, m = row["config"], row["metrics"]
        records.append({
            "pooler": labelled(cfg["pooler"], setting_label(cfg, varying)), "dataset": cfg["dataset"],
            "canvas": cfg["canvas"], "placement": cfg["placement"], "snr": m["snr"], "seed": cfg["seed"],
            "test_acc": m["test_acc"], "best_val_acc": m["best_val_acc"], "best_epoch": m["best_epoch"],
            "tokens": m["tokens"], "train_images": m["train_images"], "test_images": m["test_images"],
            "train_images_per_s": m["train_images_per_s"], "wall_s": row["wall_s"], "epochs": cfg["epochs"],
            "dim": cfg["dim"], "depth": cfg["depth"], "patch": cfg["patch"], "device": m["device"],
            "host": row["host"], "key": row["key"],
        })
    df = pd.DataFrame.from_records(records)
    if df.empty:
        return df
    return df.sort_values(["dataset", "placement", "snr", "pooler", "seed"],
                          ascending=[True, True, False, True, True]).reset_index(drop=True)


def _rank(label: str) -> tuple[int, str]:
    name = base_name(label)
    return (ORDER.index(name) if name in ORDER else len(ORDER), label)


def _label(label: str) -> str:
    name = base_name(label)
    return LABELS.get(name, name) + label[len(name):]


def vision_summary(df: pd.DataFrame) -> pd.DataFrame:
    """Mean, std and count of the test accuracy (%) per setting and pooler."""
    g = df.assign(acc=df.test_acc * 100).groupby(["dataset", "placement", "snr", "canvas", "pooler"])["acc"]
    return pd.DataFrame({"mean": g.mean(), "std": g.std(ddof=0), "n": g.size()}).reset_index()


def _columns(summ: pd.DataFrame) -> list[tuple[str, str, float]]:
    cols = summ[["dataset", "placement", "snr"]].drop_duplicates()
    cols = cols.sort_values(["dataset", "placement", "snr"], ascending=[True, True, False])
    return [tuple(r) for r in cols.itertuples(index=False)]


def _col_name(dataset: str, placement: str, snr: float) -> str:
    where = "" if snr >= 1 else (", centred" if placement == "centre" else ", anywhere")
    return f"{dataset} SNR {snr:.2g}{where}"


def _table(df: pd.DataFrame) -> str:
    summ = vision_summary(df)
    cols = _columns(summ)
    paper_sets = [d for d in PAPER if d not in set(df.dataset)] or list(PAPER)
    head = "| variant | " + " | ".join(_col_name(*c) for c in cols) + " | " + \
        " | ".join(f"paper {d}" for d in paper_sets) + " |"
    lines = [head, "|---" * (len(cols) + len(paper_sets) + 1) + "|"]
    keyed = summ.set_index(["dataset", "placement", "snr", "pooler"])
    best = {c: summ[(summ.dataset == c[0]) & (summ.placement == c[1]) & (summ.snr == c[2])]
            .set_index("pooler")["mean"].idxmax() for c in cols}
    for pooler in sorted(df.pooler.unique(), key=_rank):
        cells = []
        for c in cols:
            if (*c, pooler) not in keyed.index:
                cells.append("-")
                continue
            r = keyed.loc[(*c, pooler)]
            text = f"{r['mean']:.2f} ± {r['std']:.2f}" if r["n"] > 1 else f"{r['mean']:.2f}"
            cells.append(f"**{text}**" if best[c] == pooler else text)
        for d in paper_sets:
            ref = PAPER[d].get(base_name(pooler))
            cells.append(f"{ref[0]:.2f} ± {ref[1]:.2f}" if ref else "-")
        lines.append(f"| {_label(pooler)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _verdict(ok: bool | None) -> str:
    return {True: "agrees", False: "disagrees", None: "partly"}[ok]


def _gap(m: dict[str, float], s: dict[str, float], a: str, b: str) -> str:
    gap = m[a] - m[b]
    noise = max(s.get(a, 0.0), s.get(b, 0.0))
    note = " (within the seeds' spread)" if abs(gap) <= noise else (" (one seed)" if not noise else "")
    return f"{_label(a)} minus {_label(b)} = {gap:+.2f} points{note}"


def claim_lines(df: pd.DataFrame) -> list[str]:
    """The paper's three vision claims, checked in each setting that has the variants they
    name: focal and mean queries best, corner the worst query, ClsToken below AvgPool."""
    summ = vision_summary(df)
    out = []
    for c in _columns(summ):
        part = summ[(summ.dataset == c[0]) & (summ.placement == c[1]) & (summ.snr == c[2])]
        m = dict(zip(part.pooler, part["mean"]))
        s = dict(zip(part.pooler, part["std"].fillna(0.0)))
        lines = []
        ranked = sorted(m, key=m.get, reverse=True)
        if {"adapool-focal", "adapool-mean"} <= set(m) and len(m) > 2:
            top = set(ranked[:2])
            both = top == {"adapool-focal", "adapool-mean"}
            ok = True if both else (None if top & {"adapool-focal", "adapool-mean"} else False)
            lines.append(f"focal and mean queries best: **{_verdict(ok)}** (order: "
                         f"{', '.join(_label(p) for p in ranked)})")
        if {"adapool-focal", "adapool-mean", "adapool-corner"} <= set(m):
            below = [q for q in ("adapool-focal", "adapool-mean") if m["adapool-corner"] < m[q]]
            ok = True if len(below) == 2 else (None if below else False)
            lines.append(f"corner the worst query: **{_verdict(ok)}** ("
                         f"{_gap(m, s, 'adapool-corner', 'adapool-focal')}; "
                         f"{_gap(m, s, 'adapool-corner', 'adapool-mean')})")
        if {"cls_token", "mean"} <= set(m):
            lines.append(f"ClsToken below AvgPool: **{_verdict(m['cls_token'] < m['mean'])}** "
                         f"({_gap(m, s, 'cls_token', 'mean')})")
        if lines:
            out.append(f"**{_col_name(*c)}**")
            out += [f"* {line}" for line in lines]
            out.append("")
    return out


def snr_lines(df: pd.DataFrame) -> list[str]:
    """Beyond the paper's table: accuracy lost from the highest to the lowest image SNR per
    variant (centred object), the noise-robustness claim of the paper's title."""
    summ = vision_summary(df)
    out = []
    for dataset in sorted(summ.dataset.unique()):
        part = summ[(summ.dataset == dataset) & (summ.placement == "centre")]
        snrs = sorted(part.snr.unique())
        if len(snrs) < 2:
            continue
        hi, lo = snrs[-1], snrs[0]
        drops = {}
        for pooler, g in part.groupby("pooler"):
            at = dict(zip(g.snr, g["mean"]))
            if hi in at and lo in at:
                drops[pooler] = at[hi] - at[lo]
        ranked = sorted(drops, key=drops.get)
        out.append(f"* {dataset}, SNR {hi:.2g} → {lo:.2g} (centred): accuracy lost, least first: "
                   + ", ".join(f"{_label(p)} {drops[p]:.2f}" for p in ranked))
    return out


def _plot(df: pd.DataFrame) -> bytes:
    summ = vision_summary(df)
    groups = list(summ[["dataset", "placement"]].drop_duplicates().itertuples(index=False))
    plt, fig, ax = new_figure(7, 4.5)
    colours = {}
    for dataset, placement in groups:
        part = summ[(summ.dataset == dataset) & (summ.placement == placement)]
        for pooler in sorted(part.pooler.unique(), key=_rank):
            r = part[part.pooler == pooler].sort_values("snr")
            style = "-" if placement == "centre" else "--"
            kw = {"color": colours[pooler]} if pooler in colours else {}
            label = _label(pooler) + ("" if len(groups) == 1 else f" ({dataset}, {placement})")
            (line,) = ax.plot(r.snr, r["mean"], style, marker="o", label=label, **kw)
            colours.setdefault(pooler, line.get_color())
            ax.fill_between(r.snr, r["mean"] - r["std"].fillna(0), r["mean"] + r["std"].fillna(0),
                            color=line.get_color(), alpha=0.12, linewidth=0)
    snrs = sorted(summ.snr.unique())
    ax.set_xscale("log", base=2)
    ax.set_xticks(snrs, [f"{s:.2g}" for s in snrs])
    ax.set_xlabel("image SNR (fraction of patches on the object)")
    ax.set_ylabel("test accuracy (%)")
    seeds = int(summ.n.max())
    dashed = "; dashed: object anywhere" if len(groups) > 1 else ""
    ax.set_title(f"ViT from scratch: accuracy vs image SNR (band ± std, {seeds} seed(s){dashed})", fontsize=9)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, ncol=2)
    return to_png(plt, fig)


def write_vision_report(store: ResultsStore, out_dir: str | Path) -> dict[str, Path]:
    """Write ``runs.csv``, ``table.md``, ``findings.md`` and ``accuracy_vs_snr.png`` from the
    store alone."""
    out = Path(out_dir)
    df = vision_frame(store)
    if df.empty:
        raise ValueError(f"no finished {TASK} runs in {store.path}")
    paths = {"csv": out / "runs.csv", "table": out / "table.md", "findings": out / "findings.md",
             "plot": out / "accuracy_vs_snr.png"}
    atomic_write_text(paths["csv"], df.to_csv(index=False))
    failed = store.rows(task=TASK, status="failed")
    seeds = int(df.groupby(["dataset", "placement", "snr", "pooler"]).size().max())
    over = f"mean ± std over {seeds} seeds" if seeds > 1 else "one seed"
    table = _table(df)
    md = [f"# ViT from scratch: test accuracy % ({over})", "",
          f"{len(df)} finished runs" + (f", {len(failed)} failed" if failed else "") +
          f"; database `{store.path}`. Best of each column in bold. The paper's columns are its "
          "CIFAR results (6-layer ViT, 300 epochs, 5 folds) for reference, not the same data.", "", table, "",
          f"Training wall time {df.wall_s.sum() / 60:.1f} min in all; median "
          f"{df.train_images_per_s.median():.0f} training images/s per run."]
    atomic_write_text(paths["table"], "\n".join(md) + "\n")
    findings = ["# Findings: the AdaPool paper's vision claims on these runs", "",
                "Each claim is checked per setting on the mean over seeds: *agrees*, *disagrees* or "
                "*partly*; a gap within the seeds' spread is marked as such.", ""]
    findings += claim_lines(df) or ["(no setting holds the variants the claims name)", ""]
    snr = snr_lines(df)
    if snr:
        findings += ["## Image SNR (beyond the paper's table)", "", *snr, ""]
    atomic_write_text(paths["findings"], "\n".join(findings))
    atomic_write_bytes(paths["plot"], _plot(df))
    return paths
