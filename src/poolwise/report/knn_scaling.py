"""Report of the kNN compute-scaling study: loss and AdaPool's margin against training compute.

Written beside the usual kNN report when a preset has several settings (``--preset scaling``,
``--preset variants``): ``scaling.md`` (one row per setting and SNR: what the setting changes,
its compute, each pooler's test signal loss, the margins of MaxPool and AvgPool over AdaPool)
and ``scaling.png`` (both against training FLOPs, log-log, the paper's compute marked). Built
from the store alone; runs stored before the FLOP count was recorded are left out.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from ..runner.store import ResultsStore
from .figures import new_figure, to_png
from .files import atomic_write_bytes, atomic_write_text
from .settings import base_name, differing_keys, parse_setting, setting_label, setting_text

TASK = "adapool-knn"
#: the paper's protocol: 1M sets, 5 folds (720k training sets an epoch), 100 epochs, 12 layers
PAPER_SAMPLE_GRADIENTS = 720_000 * 100
PAPER_FLOPS = PAPER_SAMPLE_GRADIENTS * 6.0 * 12 * 128 * (4 * 16 ** 2 + 2 * 128 * 16 + 2 * 16 * 64)
TARGET_MARGIN = 3.0  # the target: AdaPool 3x below MaxPool at SNR 0.125
#: config keys that set how much a run trains; the others (optimiser, dropout, ...) make a family
COMPUTE_KEYS = ("depth", "num_samples", "epochs")
MARKERS = "osD^vP*X"
#: what a runs.csv needs for the scaling report
CSV_COLUMNS = ("pooler", "setting", "k", "snr", "seed", "depth", "num_samples", "epochs",
               "test_signal_loss", "wall_s", "sample_gradients", "train_flops")


def scaling_frame(store: ResultsStore) -> pd.DataFrame:
    """One row per finished run that recorded its training FLOPs; ``setting`` names what
    differs between the runs' configs besides pooler, k and seed (e.g. ``depth=2, lr=0.002``),
    ``family`` the same without the compute keys (depth, samples, epochs): the runs of one
    family differ only in how much they train, so the plot joins them in one line."""
    rows = [r for r in store.rows(task=TASK, status="done") if "train_flops" in r["metrics"]]
    return _frame([{**r["metrics"], "wall_s": r["wall_s"]} for r in rows], [r["config"] for r in rows])


def scaling_frame_from_csv(path: str | Path) -> pd.DataFrame:
    """:func:`scaling_frame` from a kNN report's ``runs.csv`` instead of the database: each
    row's ``setting`` column gives its config (the keys that differ between runs), and the
    ``sample_gradients`` / ``train_flops`` columns its compute."""
    runs = pd.read_csv(path)
    missing = [c for c in CSV_COLUMNS if c not in runs]
    if missing:
        raise ValueError(f"{path} lacks the column(s) {', '.join(missing)}: a runs.csv of a kNN sweep "
                         "written by this version of poolwise is needed (poolwise report --db rebuilds it)")
    runs = runs.dropna(subset=["train_flops"])
    configs = [{**parse_setting(r.setting if isinstance(r.setting, str) else ""),  # one setting: empty
                "pooler": base_name(r.pooler), "k": int(r.k), "seed": int(r.seed), "depth": int(r.depth),
                "num_samples": int(r.num_samples), "epochs": int(r.epochs)}
               for r in runs.itertuples(index=False)]
    return _frame(runs.to_dict("records"), configs)


def _frame(metrics: list[dict], configs: list[dict]) -> pd.DataFrame:
    varying = differing_keys(configs, ("pooler", "k", "seed"))
    labels = compact_labels(configs, varying)
    family_keys = [k for k in varying if k not in COMPUTE_KEYS]
    families = compact_labels(configs, family_keys)
    records = []
    for cfg, m in zip(configs, metrics):
        records.append({"pooler": cfg["pooler"], "k": cfg["k"], "snr": m["snr"], "seed": cfg["seed"],
                        "depth": cfg["depth"], "num_samples": cfg["num_samples"], "epochs": cfg["epochs"],
                        "setting": labels[_setting_key(cfg, varying)],
                        "family": families[_setting_key(cfg, family_keys)],
                        "sample_gradients": m["sample_gradients"],
                        "train_flops": m["train_flops"], "test_signal_loss": m["test_signal_loss"],
                        "wall_s": m["wall_s"]})
    return pd.DataFrame.from_records(records)


def _setting_key(cfg: dict, keys: list[str]) -> tuple[str, ...]:
    return tuple(setting_text(cfg.get(k)) for k in keys)


def compact_labels(configs: list[dict], varying: list[str]) -> dict[tuple[str, ...], str]:
    """A short label per distinct setting: a key with more than two values among the settings
    is always named (``depth=4``); a two-valued key only where the setting departs from the
    value most settings share (``dropout=0.1`` on the one setting that has it), or everywhere
    when the two are tied. A setting that departs in nothing is ``-`` (the reference)."""
    settings = {_setting_key(cfg, varying): cfg for cfg in configs}
    shown: dict[tuple[str, ...], list[str]] = {key: [] for key in settings}
    for i, name in enumerate(varying):
        counts = pd.Series([key[i] for key in settings]).value_counts()
        for key in settings:
            tied = len(counts) == 2 and counts.iloc[0] == counts.iloc[1]
            if len(counts) > 2 or tied or counts[key[i]] < counts.iloc[0]:
                shown[key].append(name)
    return {key: setting_label(settings[key], shown[key]) or "-" for key in settings}


def scaling_table(df: pd.DataFrame) -> pd.DataFrame:
    """Mean loss per compute point, SNR and pooler (columns), with margins over AdaPool."""
    if "family" not in df:  # a frame built by hand: one family
        df = df.assign(family="-")
    keys = ["setting", "family", "depth", "sample_gradients", "train_flops", "snr"]
    wide = df.pivot_table(index=keys, columns="pooler", values="test_signal_loss", aggfunc="mean")
    seeds = df.groupby(keys)["seed"].nunique().rename("seeds")
    wall = df.groupby(keys)["wall_s"].mean().rename("wall_s_per_run")
    wide = wide.join(seeds).join(wall).reset_index()
    for rival in ("max", "mean"):
        if "adapool" in wide and rival in wide:
            wide[f"{rival}/adapool"] = wide[rival] / wide["adapool"]
    return wide.sort_values(["snr", "train_flops"]).reset_index(drop=True)


def _markdown(table: pd.DataFrame) -> str:
    known = {"adapool", "max", "mean", "depth", "setting", "family", "sample_gradients", "train_flops", "snr",
             "seeds", "wall_s_per_run", "max/adapool", "mean/adapool"}
    poolers = [p for p in ("adapool", "max", "mean") if p in table] + sorted(
        c for c in table.columns if c not in known)
    margins = [c for c in ("max/adapool", "mean/adapool") if c in table]
    head = ["SNR", "setting", "sample-gradients", "TFLOP", *poolers, *margins, "seeds", "s/run"]
    lines = ["| " + " | ".join(head) + " |", "|---" * len(head) + "|"]
    for _, r in table.iterrows():
        cells = [f"{r.snr:.3g}", r.setting, f"{int(r.sample_gradients):,}",
                 f"{r.train_flops / 1e12:.3g}"]
        cells += [f"{r[p]:.4g}" if pd.notna(r[p]) else "-" for p in poolers]
        cells += [f"{r[m]:.2f}x" if pd.notna(r[m]) else "-" for m in margins]
        cells += [f"{int(r.seeds)}", f"{r.wall_s_per_run:.0f}"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _point_label(r: pd.Series, several_amounts: bool) -> str:
    """``d2`` (depth), with the sample-gradients where the table has several amounts."""
    return f"d{int(r.depth)}" + (f", {r.sample_gradients / 1e3:.0f}k" if several_amounts else "")


def _plot(table: pd.DataFrame) -> bytes:
    """Loss and margins against FLOPs: colour the pooler, line style the SNR, marker the family;
    a line joins only the points of one family (settings that differ in compute alone)."""
    from matplotlib.lines import Line2D

    plt, fig, (ax_loss, ax_margin) = new_figure(12, 4.6, ncols=2)
    styles = {s: ls for s, ls in zip(sorted(table.snr.unique()), ("-", "--", ":", "-."))}
    families = list(dict.fromkeys(table.sort_values("train_flops").family))
    markers = {f: MARKERS[i % len(MARKERS)] for i, f in enumerate(families)}
    colours = {"adapool": "C0", "max": "C3", "mean": "C2"}
    margins = {"max/adapool": ("C3", "MaxPool / AdaPool"), "mean/adapool": ("C2", "AvgPool / AdaPool")}
    several_amounts = table.sample_gradients.nunique() > 1
    for (family, snr), part in table.groupby(["family", "snr"], sort=False):
        part = part.sort_values("train_flops")
        kw = {"ls": styles[snr], "marker": markers[family], "ms": 5}
        for pooler, colour in colours.items():
            if pooler in part:
                ax_loss.plot(part.train_flops, part[pooler], color=colour, **kw)
        for column, (colour, _) in margins.items():
            if column in part:
                ax_margin.plot(part.train_flops, part[column], color=colour, **kw)
        if "max/adapool" in part:  # which depth (and amount of data) each point has
            for _, r in part.dropna(subset=["max/adapool"]).iterrows():
                ax_margin.annotate(_point_label(r, several_amounts), (r.train_flops, r["max/adapool"]),
                                   fontsize=6, textcoords="offset points", xytext=(0, 5), ha="center")
    for ax in (ax_loss, ax_margin):
        ax.axvline(PAPER_FLOPS, color="k", lw=1, ls=":")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("training FLOPs per run (encoder, approximate)")
        ax.grid(True, which="both", alpha=0.3)
    ax_margin.axhline(TARGET_MARGIN, color="grey", lw=1, ls="--")
    ax_loss.set_ylabel("test signal loss")
    ax_margin.set_ylabel("loss ratio over AdaPool")
    ax_loss.set_title("kNN-Centroid: loss against compute")
    ax_margin.set_title("AdaPool's margin against compute (dN: depth)")
    # legends by role, not one entry per line: colours, line styles, markers
    ax_loss.legend(handles=[Line2D([], [], color=c, label=p) for p, c in colours.items() if p in table]
                   + [Line2D([], [], color="k", ls=ls, label=f"SNR {s:.3g}") for s, ls in styles.items()]
                   + [Line2D([], [], color="k", ls=":", lw=1, label="the paper's training compute")],
                   fontsize=7)
    family_handles = [Line2D([], [], color="grey", ls="", marker=markers[f],
                             label=f if len(f) <= 48 else f[:45] + "...") for f in families]
    ax_margin.legend(handles=[Line2D([], [], color=c, label=name) for column, (c, name) in margins.items()
                              if column in table]
                     + [Line2D([], [], color="grey", ls="--", lw=1, label=f"{TARGET_MARGIN:.0f}x")]
                     + (family_handles if len(families) > 1 else []), fontsize=6)
    return to_png(plt, fig)


def write_scaling_report(df: pd.DataFrame, out_dir: str | Path) -> dict[str, Path]:
    """Write ``scaling.md`` and ``scaling.png`` for the runs in ``df`` (:func:`scaling_frame`)."""
    if df.empty:
        raise ValueError("no finished kNN runs with a recorded FLOP count")
    out = Path(out_dir)
    table = scaling_table(df)
    md = ["# kNN-Centroid: signal loss and AdaPool's margin against training compute", "",
          f"{len(df)} finished runs; mean over seeds; TFLOP: the encoder's approximate training "
          f"FLOPs per run. The paper's protocol is {PAPER_SAMPLE_GRADIENTS:,} sample-gradients, "
          f"{PAPER_FLOPS / 1e12:,.0f} TFLOP.", "", _markdown(table), ""]
    paths = {"scaling_table": out / "scaling.md", "scaling_plot": out / "scaling.png"}
    atomic_write_text(paths["scaling_table"], "\n".join(md))
    atomic_write_bytes(paths["scaling_plot"], _plot(table))
    return paths


def write_scaling_report_if_several(df: pd.DataFrame, out_dir: str | Path) -> dict[str, Path]:
    """The scaling report when the finished runs in ``df`` (:func:`scaling_frame` or
    :func:`scaling_frame_from_csv`) span several settings (the compute points of
    ``--preset scaling`` or ``variants``); nothing for a single setting."""
    if df.empty or df["setting"].nunique() < 2:
        return {}
    return write_scaling_report(df, out_dir)
