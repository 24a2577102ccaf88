"""Plots and Markdown for the probes; every figure from the probe's DataFrame alone."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from .figures import new_figure, to_png
from .files import atomic_write_bytes, atomic_write_text


def _lines(ax: Any, df: pd.DataFrame, x: str, y: str, marker: str = "o") -> dict[str, Any]:
    """One line per pooler, in first-seen order; returns the lines by pooler."""
    lines = {}
    for pooler, g in df.groupby("pooler", sort=False):
        g = g.sort_values(x)
        (lines[pooler],) = ax.plot(g[x], g[y], marker=marker, label=pooler)
    return lines


def _finish(plt: Any, fig: Any, ax: Any, xlabel: str, ylabel: str, title: str) -> bytes:
    """Labels, grid and legend of a line plot, rendered to PNG bytes."""
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    return to_png(plt, fig)


def plot_expressivity(df: pd.DataFrame, model: str) -> bytes:
    """Two panels: the absolute output change (the paper's Figure 2 left, which carries each
    pooling's scale) and the change relative to the unperturbed output's norm (scale-free)."""
    relative = "relative_mean" in df
    plt, fig, axes = new_figure(11.0 if relative else 6.5, 4.2, ncols=2 if relative else 1)
    panels = ((axes[0], "distance", "‖g(f(X+δ)) - g(f(X))‖ (absolute)"),
              (axes[1], "relative", "‖g(f(X+δ)) - g(f(X))‖ / ‖g(f(X))‖ (relative)")) if relative else \
        ((axes, "distance", "pooled output change ‖g(f(X+δ)) - g(f(X))‖"),)
    norm = str(df["norm"].iloc[0]) if "norm" in df and len(df) else "frobenius"
    for ax, col, ylabel in panels:
        for pooler, line in _lines(ax, df, "epsilon", f"{col}_mean").items():
            g = df[df.pooler == pooler].sort_values("epsilon")
            mean, std = g[f"{col}_mean"], g[f"{col}_std"]
            ax.fill_between(g.epsilon, (mean - std).clip(lower=mean * 1e-3), mean + std,
                            color=line.get_color(), alpha=0.15)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel(f"input perturbation ε ({norm} norm on the input embeddings)")
        ax.set_ylabel(ylabel)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(f"Expressivity: output change vs input change ({model})", fontsize=10)
    return to_png(plt, fig)


def plot_similarity(df: pd.DataFrame, model: str) -> bytes:
    plt, fig, ax = new_figure()
    piv = df.pivot(index="pooler", columns="kind", values="relative_distance")[["similar", "dissimilar"]]
    piv = piv.loc[list(dict.fromkeys(df.pooler))]
    piv.plot.bar(ax=ax, rot=0)
    ax.set_ylabel("distance / mean output norm")
    ax.set_xlabel("pooler")
    ax.set_title(f"Similar vs dissimilar pairs ({model})")
    ax.grid(True, axis="y", alpha=0.3)
    return to_png(plt, fig)


def plot_agreement(df: pd.DataFrame, model: str) -> bytes:
    plt, fig, ax = new_figure(5.5, 4.8)
    im = ax.imshow(df.values, vmin=-1, vmax=1, cmap="RdBu_r")
    ax.set_xticks(range(len(df.columns)), df.columns, rotation=45, ha="right")
    ax.set_yticks(range(len(df.index)), df.index)
    for i in range(len(df.index)):
        for j in range(len(df.columns)):
            ax.text(j, i, f"{df.values[i, j]:.2f}", ha="center", va="center", fontsize=8)
    fig.colorbar(im, ax=ax, label="mean cosine similarity")
    ax.set_title(f"Cross-pooler agreement ({model})")
    return to_png(plt, fig)


def plot_distractors(df: pd.DataFrame, model: str) -> bytes:
    plt, fig, axes = new_figure(10, 4.2)
    fig.delaxes(axes)
    left, right = fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2)
    _lines(left, df, "distractors", "relative_move")
    _lines(right, df, "distractors", "signal_loss")
    for ax, label in ((left, "relative move ‖g(X') - g(X)‖ / ‖g(X)‖"),
                      (right, "signal loss vs clean token centroid")):
        ax.set_xscale("symlog", linthresh=1)
        ax.set_yscale("symlog", linthresh=1e-3)
        ax.set_xlabel("distractor tokens added")
        ax.set_ylabel(label)
        ax.grid(True, which="both", alpha=0.3)
    left.legend(fontsize=8)
    fig.suptitle(f"Distractor robustness ({model})")
    return to_png(plt, fig)


def plot_weights(df: pd.DataFrame, model: str) -> bytes:
    plt, fig, ax = new_figure()
    _lines(ax, df, "position", "weight", marker=".")
    positive = df.weight[df.weight > 0]
    if len(positive) and positive.max() / positive.min() > 10:  # log only when values span decades
        ax.set_yscale("log")
    return _finish(plt, fig, ax, "token position (from the first real token)", "mean pooling weight",
                   f"Learned pooling weights by position ({model})")


def markdown_table(df: pd.DataFrame) -> str:
    """A GitHub Markdown table; floats with 4 significant digits."""
    def cell(v: object) -> str:
        return f"{v:.4g}" if isinstance(v, float) else str(v)

    lines = ["| " + " | ".join(map(str, df.columns)) + " |", "|" + "---|" * len(df.columns)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in df.itertuples(index=False)]
    return "\n".join(lines)


PLOTS = {"expressivity": plot_expressivity, "similarity": plot_similarity,
         "agreement": plot_agreement, "snr": plot_distractors, "weights": plot_weights}


def write_probe_report(results: dict[str, pd.DataFrame], out_dir: str | Path, model: str) -> dict[str, Path]:
    """One PNG, CSV and JSON per probe and a ``summary.md`` with every table."""
    out = Path(out_dir)
    paths: dict[str, Path] = {}
    md = [f"# Pooling probes on {model}", ""]
    for name, df in results.items():
        table = df.reset_index() if name == "agreement" else df
        paths[f"{name}.png"] = atomic_write_bytes(out / f"{name}.png", PLOTS[name](df, model))
        paths[f"{name}.csv"] = atomic_write_text(out / f"{name}.csv", table.to_csv(index=False))
        paths[f"{name}.json"] = atomic_write_text(out / f"{name}.json",
                                                  table.to_json(orient="records", indent=1))
        md += [f"## {name}", "", markdown_table(table), "", f"![{name}]({name}.png)", ""]
    paths["summary.md"] = atomic_write_text(out / "summary.md", "\n".join(md))
    return paths
