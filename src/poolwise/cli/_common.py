"""Pieces every command shares: the usage error, the parser class, sweep options (executor,
workers, store, ``--set`` overrides), pooler-name checks and the run summary."""

from __future__ import annotations

import argparse
import ast
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn


class UsageError(Exception):
    """A user mistake: reported in one line, exit code 2."""


class Parser(argparse.ArgumentParser):
    """argparse, with errors raised as :class:`UsageError` (one line, exit 2) instead of a
    usage block; an option that belongs to a sibling sub-command is named as such."""

    #: option string -> the sub-commands that own it (filled while building the parser)
    owners: dict[str, list[str]] | None = None

    def error(self, message: str) -> NoReturn:
        if message.startswith("unrecognized arguments") and self.owners:
            for word in message.split(":", 1)[1].split():
                if word in self.owners:
                    raise UsageError(f"{word} applies to {' and '.join(self.owners[word])} only "
                                     f"(see {self.prog} --help)")
        raise UsageError(f"{message} (see {self.prog} --help)")


def parse_value(text: str) -> Any:
    """A Python literal (``3``, ``0.1``, ``[1, 2]``, ``{'a': 1}``) or else the text itself."""
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def overrides(items: list[str]) -> dict[str, Any]:
    """``--set KEY=VALUE`` items as a dict of run settings."""
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UsageError(f"--set expects KEY=VALUE; got {item!r}")
        out[key.strip()] = parse_value(value.strip())
    return out


def int_list(text: str, what: str) -> tuple[int, ...]:
    """A comma-separated list of integers, e.g. ``--k 4,8``."""
    try:
        values = tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise UsageError(f"{what} must be a comma-separated list of integers; got {text!r}") from None
    if not values:
        raise UsageError(f"{what} is empty")
    return values


def pooler_names(text: str) -> list[str]:
    """Comma-separated registered pooler names; a one-line error names the unknown ones."""
    from ..pooling import list_poolers

    names = [p.strip() for p in text.split(",") if p.strip()]
    known = set(list_poolers(aliases=True))
    bad = [p for p in names if p not in known]
    if bad or not names:
        raise UsageError(f"unknown pooler {', '.join(bad) or '(none)'}; known: {', '.join(list_poolers())}")
    return names


def check_writable_dir(path: Path, what: str = "--out") -> Path:
    """Fail before any work when ``path`` cannot become a writable directory: it is a file, it
    lies under a file, or its nearest existing folder is not writable (read-only file system)."""
    import os

    if path.exists() and not path.is_dir():
        raise UsageError(f"{what} {path} is a file, not a directory")
    probe = path
    while not probe.exists():
        probe = probe.parent
    if not probe.is_dir():
        raise UsageError(f"{what} {path} lies under {probe}, which is a file")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise UsageError(f"{what} {path}: {probe} is not writable (read-only file system or permissions)")
    return path


def check_writable_file(path: Path, what: str = "--db") -> Path:
    """:func:`check_writable_dir` for the folder of a file that will be written."""
    if path.is_dir():
        raise UsageError(f"{what} {path} is a directory, not a file")
    check_writable_dir(path.parent, f"{what} {path}: its folder")
    return path


def first_line(err: BaseException) -> str:
    return str(err).splitlines()[0] if str(err) else type(err).__name__


def add_sweep_options(p: argparse.ArgumentParser, workers: int = 1, workers_note: str = "",
                      out: str = "results/<command>") -> None:
    """Options of every command that runs a sweep; ``workers`` is the local pool's default and
    ``out`` the default output directory, as the help shows it."""
    p.add_argument("--executor", default="local", choices=["local", "ray"],
                   help="where runs execute: a local process pool or a Ray cluster (default local)")
    p.add_argument("--address", help="Ray cluster to join (HOST:PORT, ray://..., auto)")
    p.add_argument("--workers", type=int, default=workers,
                   help=f"local process pool size (default {workers}{workers_note})")
    p.add_argument("--out", type=Path, help=f"output directory (default {out})")
    p.add_argument("--db", type=Path, help="results database (default OUT/runs.sqlite)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a run setting, e.g. --set epochs=3 (repeatable)")
    p.add_argument("--retry-failed", action="store_true", help="rerun runs recorded as failed")
    p.add_argument("--quiet", action="store_true", help="no progress display")


def executor(args: argparse.Namespace) -> Any:
    """The executor ``--executor``/``--address``/``--workers`` ask for; one-line errors."""
    from ..runner.executors import LocalExecutor, RayExecutor

    if args.workers < 1:
        raise UsageError(f"--workers must be >= 1; got {args.workers}")
    if args.address and args.executor != "ray":
        raise UsageError("--address needs --executor ray")
    try:
        if args.executor == "ray":
            return RayExecutor(args.address, cpus_per_run=1)
        return LocalExecutor(args.workers)
    except (ConnectionError, ValueError) as err:
        raise UsageError(str(err)) from None


def open_store(db: Path, create: bool, read_only: bool = False) -> Any:
    """The results store at ``db``; a broken or foreign file is a usage error."""
    from ..runner import ResultsStore, StoreError

    try:
        return ResultsStore(db, create=create, read_only=read_only)
    except StoreError as err:
        raise UsageError(str(err)) from None


def grid_specs(task: str, base: dict[str, Any], **axes: Any) -> list:
    """Every run of the grid, validated before any file is touched (one-line errors)."""
    from ..runner import grid

    try:
        return grid(task, base, **axes)
    except (ValueError, TypeError) as err:
        raise UsageError(first_line(err)) from None


def note_other_settings(store: Any, specs: list, axes: tuple[str, ...]) -> None:
    """Say on stderr when ``store`` already holds finished runs of the same task with other
    settings than ``specs`` (the report then shows each setting apart)."""
    from ..report.settings import other_settings

    for task in dict.fromkeys(s.task for s in specs):
        stored = [r["config"] for r in store.rows(task, "done")]
        diff = other_settings(stored, [dict(s.params) for s in specs if s.task == task], axes)
        if diff:
            what = "; ".join(f"{k}: {', '.join(there)} there, {', '.join(here)} here"
                             for k, (there, here) in diff.items())
            print(f"note: {store.path} holds finished {task} runs with other settings ({what}); "
                  "the report shows each setting separately", file=sys.stderr)


def print_summary(summary: Any, extra: str = "") -> None:
    """The closing lines of a sweep: counts, time, and each failed run's error."""
    elsewhere = f", {summary.elsewhere} running in another sweep" if summary.elsewhere else ""
    print(f"{summary.done} runs done, {summary.skipped} already there, {summary.failed} failed{elsewhere} "
          f"in {summary.wall_s / 60:.1f} min{extra}")
    for key, line in summary.errors.items():
        print(f"  failed {key}: {line}")


def print_paths(paths: dict[str, Path], width: int = 5) -> None:
    for what, path in paths.items():
        print(f"{what:>{width}}: {path}")


def stderr_log(quiet: bool) -> Callable[[str], None]:
    """A logger to stderr that ``--quiet`` silences."""

    def log(msg: str) -> None:
        if not quiet:
            print(msg, file=sys.stderr, flush=True)

    return log
