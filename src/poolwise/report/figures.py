"""Matplotlib set-up shared by the reports: headless backend, PNG bytes out."""

from __future__ import annotations

import io
from typing import Any


def new_figure(width: float = 6.5, height: float = 4.2, ncols: int = 1,
               nrows: int = 1) -> tuple[Any, Any, Any]:
    """``(pyplot, figure, axes)`` on the Agg backend (no display needed); with ``ncols`` or
    ``nrows`` > 1 the axes are matplotlib's grid of panels."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(nrows, ncols, figsize=(width, height), dpi=120)
    return plt, fig, ax


def to_png(plt: Any, fig: Any) -> bytes:
    """Lay out, render to PNG bytes and close the figure."""
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return buf.getvalue()
