"""Report of the from-scratch vision sweep: runs.csv, an accuracy table beside the AdaPool
paper's CIFAR numbers, accuracy against image SNR, and findings.md checking the paper's claims."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from ..runner.store import ResultsStore
from .figures import new_figure, to_png
from .files import atomic_write_bytes, atomic_write_text
from .settings import base_name, differing_keys, labelled, setting_label
from .stats import cell, describe
from .verdicts import RULE, SPREAD, Check, all_of, below_each, better, holm, verdict

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
    """Mean, sample std, 95% interval and count of the test accuracy (%) per setting and pooler."""
    g = df.assign(acc=df.test_acc * 100).groupby(["dataset", "placement", "snr", "canvas", "pooler"])["acc"]
    return describe(g).reset_index()


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
            text = cell(r["mean"], r["std"], r["ci95"], int(r["n"]), ".2f", ".2f")
            cells.append(f"**{text}**" if best[c] == pooler else text)
        for d in paper_sets:
            ref = PAPER[d].get(base_name(pooler))
            cells.append(f"{ref[0]:.2f} ± {ref[1]:.2f}" if ref else "-")
        lines.append(f"| {_label(pooler)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _accs(df: pd.DataFrame, c: tuple[str, str, float]) -> dict[str, list[float]]:
    """Per-seed test accuracy (%) of each pooler in setting ``c``."""
    part = df[(df.dataset == c[0]) & (df.placement == c[1]) & (df.snr == c[2])]
    return {p: list(100 * g.sort_values("seed").test_acc) for p, g in part.groupby("pooler")}


def claim_checks(df: pd.DataFrame) -> list[tuple[str, tuple[str, str, float], Check]]:
    """The paper's three vision claims as tests, in each setting that has the variants they
    name: focal and mean queries each above every other variant, corner below focal and mean,
    ClsToken below AvgPool (before Holm)."""
    out = []
    for c in _columns(vision_summary(df)):
        acc = _accs(df, c)
        rest = [p for p in acc if p not in ("adapool-focal", "adapool-mean")]
        if {"adapool-focal", "adapool-mean"} <= set(acc) and rest:
            out.append(("focal and mean queries best", c, all_of(
                [better(acc, q, o) for q in ("adapool-focal", "adapool-mean") for o in rest])))
        if {"adapool-focal", "adapool-mean", "adapool-corner"} <= set(acc):
            out.append(("corner the worst query", c,
                        below_each(acc, "adapool-corner", ["adapool-focal", "adapool-mean"])))
        if {"cls_token", "mean"} <= set(acc):
            out.append(("ClsToken below AvgPool", c, better(acc, "mean", "cls_token")))
    return out


CLAIMS = ("focal and mean queries best", "corner the worst query", "ClsToken below AvgPool")


def claim_lines(df: pd.DataFrame) -> list[str]:
    """The claims' verdicts over the settings (Holm over every test of this report), then each
    setting's tests."""
    raw = claim_checks(df)
    checks = holm([c for _, _, c in raw])
    out = ["| paper's claim | verdict | held in | reversed in |", "|---|---|---|---|"]
    for claim in CLAIMS:
        mine = [(c, k) for (name, c, _), k in zip(raw, checks) if name == claim]
        if not mine:
            continue
        held = ", ".join(_col_name(*c) for c, k in mine if k.outcome == "holds") or "-"
        rev = ", ".join(_col_name(*c) for c, k in mine if k.outcome == "fails") or "-"
        out.append(f"| {claim} | **{verdict([k for _, k in mine])}** | {held} | {rev} |")
    out += ["", RULE, ""]
    for c in _columns(vision_summary(df)):
        mine = [(name, k) for (name, cc, _), k in zip(raw, checks) if cc == c]
        if mine:
            out.append(f"**{_col_name(*c)}**")
            out += [f"* {name}: {k.text()}" for name, k in mine]
            out.append("")
    return out if raw else []


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
            ax.fill_between(r.snr, r["mean"] - r["ci95"].fillna(0), r["mean"] + r["ci95"].fillna(0),
                            color=line.get_color(), alpha=0.12, linewidth=0)
    snrs = sorted(summ.snr.unique())
    ax.set_xscale("log", base=2)
    ax.set_xticks(snrs, [f"{s:.2g}" for s in snrs])
    ax.set_xlabel("image SNR (fraction of patches on the object)")
    ax.set_ylabel("test accuracy (%)")
    seeds = int(summ.n.max())
    dashed = "; dashed: object anywhere" if len(groups) > 1 else ""
    ax.set_title(f"ViT from scratch: accuracy vs image SNR (band: 95% interval, {seeds} seed(s){dashed})",
                 fontsize=9)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, ncol=2)
    return to_png(plt, fig)


def write_vision_report(store: ResultsStore, out_dir: str | Path) -> dict[str, Path]:
    """Write ``runs.csv``, ``table.md``, ``findings.md`` and ``accuracy_vs_snr.png`` from the
    store alone."""
    df = vision_frame(store)
    if df.empty:
        raise ValueError(f"no finished {TASK} runs in {store.path}")
    return write_vision_files(df, out_dir, f"database `{store.path}`",
                              len(store.rows(task=TASK, status="failed")))


def write_vision_files(df: pd.DataFrame, out_dir: str | Path, source: str,
                       failed: int = 0) -> dict[str, Path]:
    """The files of :func:`write_vision_report` from a :func:`vision_frame` (or its runs.csv);
    ``source`` names where the runs came from."""
    out = Path(out_dir)
    paths = {"csv": out / "runs.csv", "table": out / "table.md", "findings": out / "findings.md",
             "plot": out / "accuracy_vs_snr.png"}
    atomic_write_text(paths["csv"], df.to_csv(index=False))
    seeds = int(df.groupby(["dataset", "placement", "snr", "pooler"]).size().max())
    over = f"mean over {seeds} seeds, {SPREAD}" if seeds > 1 else "one seed"
    table = _table(df)
    md = [f"# ViT from scratch: test accuracy % ({over})", "",
          f"{len(df)} finished runs" + (f", {failed} failed" if failed else "") +
          f"; {source}. Best of each column in bold. The paper's columns are its "
          "CIFAR results (6-layer ViT, 300 epochs, 5 folds) for reference, not the same data.", "", table, "",
          f"Training wall time {df.wall_s.sum() / 60:.1f} min in all; median "
          f"{df.train_images_per_s.median():.0f} training images/s per run."]
    atomic_write_text(paths["table"], "\n".join(md) + "\n")
    findings = ["# Findings: the AdaPool paper's vision claims on these runs", "",
                "Each claim is tested per setting on the per-seed test accuracies (Welch; an "
                "intersection-union test where a claim needs several comparisons).", ""]
    findings += claim_lines(df) or ["(no setting holds the variants the claims name)", ""]
    snr = snr_lines(df)
    if snr:
        findings += ["## Image SNR (beyond the paper's table)", "", *snr, ""]
    atomic_write_text(paths["findings"], "\n".join(findings))
    atomic_write_bytes(paths["plot"], _plot(df))
    return paths
