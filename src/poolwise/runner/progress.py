"""Live sweep progress with rich: runs done, the current run and its epoch, ETA."""

from __future__ import annotations

import sys
import time

from .spec import RunSpec


class Progress:
    """``quiet=True`` prints nothing; otherwise a rich live display on a terminal, or one
    plain line per finished run when output is not a terminal (logs, CI)."""

    def __init__(self, quiet: bool = False) -> None:
        self.quiet = quiet
        self._live = None
        self._bar = None
        self._overall = None
        self._current = None
        self._start = 0.0
        self._done = 0
        self._total = 0

    def begin(self, total: int, skipped: int) -> None:
        self._total, self._done, self._start = total, skipped, time.perf_counter()
        if self.quiet:
            return
        if skipped:
            print(f"{skipped} of {total} runs already in the database; resuming", file=sys.stderr)
        if sys.stderr.isatty():
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )
            from rich.progress import Progress as RichProgress

            self._bar = RichProgress(
                TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(), transient=False,
            )
            self._overall = self._bar.add_task("runs", total=total, completed=skipped)
            self._current = self._bar.add_task("waiting", total=1, completed=0)
            self._bar.start()

    def started(self, spec: RunSpec) -> None:
        if self._bar is not None:
            self._bar.update(self._current, description=spec.label(), completed=0, total=1)

    def epoch(self, spec: RunSpec, epoch: int, total: int, row: dict[str, float]) -> None:
        if self._bar is not None:
            val = row.get("val_loss")
            extra = f" epoch {epoch}/{total}" + (f" val {val:.4g}" if val is not None else "")
            self._bar.update(self._current, description=spec.label() + extra, completed=epoch, total=total)

    def finished(self, spec: RunSpec, ok: bool, wall_s: float) -> None:
        self._done += 1
        if self.quiet:
            return
        if self._bar is not None:
            self._bar.update(self._overall, completed=self._done)
            if not ok:
                self._bar.console.print(f"[red]failed[/red] {spec.label()} (see the database for the error)")
            return
        elapsed = time.perf_counter() - self._start
        print(f"[{self._done}/{self._total}] {'done' if ok else 'FAILED'} {spec.label()} "
              f"in {wall_s:.1f}s (elapsed {elapsed:.0f}s)", file=sys.stderr, flush=True)

    def end(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None
