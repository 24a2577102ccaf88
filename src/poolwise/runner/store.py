"""SQLite results store. One row per run, keyed by the run's config hash.

Every state change is one transaction (WAL journal, ``synchronous=FULL``), so a process killed
at any moment leaves each run either finished with all its results or not finished at all.

Several sweeps (processes or machines) may share one store: a sweep *claims* a run in one
transaction right before it starts it, as a lease that names its owner (``host:pid``) and that
the owner renews (:class:`Heartbeat`). Another sweep skips a run whose lease is alive and takes
over one whose owner died (same host: the pid is gone; any host: no heartbeat for
``POOLWISE_LEASE_S`` seconds, default 120).
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ..data.cache import pid_alive
from .spec import RunSpec

SCHEMA_VERSION = "2"  # 2: runs.owner and runs.heartbeat (leases); version 1 stores are upgraded
READABLE_SCHEMAS = ("1", "2")
_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS runs (
    key TEXT PRIMARY KEY,
    task TEXT NOT NULL,
    config TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('running', 'done', 'failed')),
    seed INTEGER,
    metrics TEXT,
    history TEXT,
    error TEXT,
    wall_s REAL,
    versions TEXT,
    host TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    started_at REAL,
    finished_at REAL,
    owner TEXT,
    heartbeat REAL
);
"""


def lease_seconds() -> float:
    """How long a lease lives without a heartbeat (``POOLWISE_LEASE_S``, default 120 s)."""
    return float(os.environ.get("POOLWISE_LEASE_S", "120"))


def owner_id() -> str:
    """This process as a lease owner: ``host:pid``."""
    return f"{platform.node()}:{os.getpid()}"


def owner_alive(owner: str | None, heartbeat: float | None) -> bool:
    """Whether the lease of ``owner`` holds: a fresh heartbeat, and on this host a live pid."""
    if not owner or heartbeat is None or time.time() - heartbeat > lease_seconds():
        return False
    host, _, pid = owner.rpartition(":")
    return not (host == platform.node() and pid.isdigit() and not pid_alive(int(pid)))


def _connect_read_only(path: Path) -> sqlite3.Connection:
    """Open without writing anything: ``mode=ro``; when the folder is read-only and the WAL
    side files cannot be made, as an immutable file."""
    uri = path.resolve().as_uri()
    db = sqlite3.connect(f"{uri}?mode=ro", uri=True, timeout=30, isolation_level=None)
    try:
        db.execute("SELECT 1 FROM sqlite_master LIMIT 1").fetchall()
        return db
    except sqlite3.OperationalError:
        db.close()
        return sqlite3.connect(f"{uri}?immutable=1", uri=True, isolation_level=None)


class StoreError(RuntimeError):
    """The database cannot be used (not SQLite, not a poolwise store, newer schema)."""


def _versions() -> dict[str, str]:
    import torch

    from .. import __version__

    return {"poolwise": __version__, "torch": torch.__version__, "python": platform.python_version()}


class ResultsStore:
    """Open (or create) a results database at ``path``; ``read_only`` opens an existing one
    for reading only (reports), leaving its file untouched."""

    def __init__(self, path: str | Path, create: bool = True, read_only: bool = False) -> None:
        self.path = Path(path)
        self.read_only = read_only
        if not self.path.exists():
            if not create:
                raise StoreError(f"no results database at {self.path}")
            self.path.parent.mkdir(parents=True, exist_ok=True)
        elif self.path.is_dir():
            raise StoreError(f"{self.path} is a directory, not a results database")
        else:
            with open(self.path, "rb") as fh:
                head = fh.read(16)
            if head and head != b"SQLite format 3\x00":
                raise StoreError(f"{self.path} is not a SQLite database")
        if read_only:
            self._db = _connect_read_only(self.path)
            try:
                self._check_schema()
            except sqlite3.DatabaseError as err:
                self._db.close()
                raise StoreError(f"{self.path} is not a usable SQLite database: {err}") from None
            return
        if self.path.exists() and not os.access(self.path, os.W_OK):
            raise StoreError(f"{self.path} is read-only; a sweep needs to write its results there "
                             "(poolwise report only reads)")
        self._db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        try:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._init_schema()
        except sqlite3.OperationalError as err:
            self._db.close()
            if "readonly" in str(err) or "read-only" in str(err):
                raise StoreError(f"{self.path} is read-only (or on a read-only file system); a sweep "
                                 "needs to write its results there") from None
            raise StoreError(f"{self.path} is not a usable SQLite database: {err}") from None
        except sqlite3.DatabaseError as err:
            self._db.close()
            raise StoreError(f"{self.path} is not a usable SQLite database: {err}") from None

    def _check_schema(self) -> None:
        """A read-only open: the file must already be a poolwise store of this schema."""
        tables = {r[0] for r in self._db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        if "meta" not in tables or "runs" not in tables:
            what = f"tables: {', '.join(sorted(tables))}" if tables else "an empty database"
            raise StoreError(f"{self.path} is not a poolwise results store ({what})")
        version = self._db.execute("SELECT value FROM meta WHERE key='schema'").fetchone()
        if version is None or version[0] not in READABLE_SCHEMAS:
            raise StoreError(f"{self.path} has schema {version and version[0]}; this poolwise reads "
                             f"{SCHEMA_VERSION}")

    def _init_schema(self) -> None:
        tables = {r[0] for r in self._db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        if tables and "meta" not in tables:
            raise StoreError(f"{self.path} is a SQLite database but not a poolwise results store "
                             f"(tables: {', '.join(sorted(tables))})")
        if not tables:  # idempotent DDL; executescript commits on its own
            self._db.executescript(_SCHEMA)
        with self._tx():
            self._db.execute("INSERT OR IGNORE INTO meta VALUES ('schema', ?)", (SCHEMA_VERSION,))
        version = self._db.execute("SELECT value FROM meta WHERE key='schema'").fetchone()[0]
        if version == "1":  # add the lease columns; old runs simply have no owner
            with self._tx():
                self._db.execute("ALTER TABLE runs ADD COLUMN owner TEXT")
                self._db.execute("ALTER TABLE runs ADD COLUMN heartbeat REAL")
                self._db.execute("UPDATE meta SET value=? WHERE key='schema'", (SCHEMA_VERSION,))
            version = SCHEMA_VERSION
        if version != SCHEMA_VERSION:
            raise StoreError(f"{self.path} has schema {version}; this poolwise reads {SCHEMA_VERSION}")

    @contextmanager
    def _tx(self) -> Iterator[None]:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> ResultsStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------ writes
    def claim(self, spec: RunSpec, retry_failed: bool = False) -> str:
        """Take the lease on ``spec`` for this process, in one transaction. Returns
        ``"claimed"``, or why not: ``"done"``, ``"failed"`` (without ``retry_failed``) or
        ``"busy"`` (another live owner runs it)."""
        with self._tx():
            row = self._db.execute("SELECT status, owner, heartbeat FROM runs WHERE key=?",
                                   (spec.key,)).fetchone()
            if row is not None:
                status, owner, heartbeat = row
                if status == "done" or (status == "failed" and not retry_failed):
                    return status
                if status == "running" and owner != owner_id() and owner_alive(owner, heartbeat):
                    return "busy"
            self._start(spec)
        return "claimed"

    def mark_running(self, spec: RunSpec) -> None:
        """Record ``spec`` as started by this process, whatever its state (see :meth:`claim`)."""
        with self._tx():
            self._start(spec)

    def _start(self, spec: RunSpec) -> None:
        now = time.time()
        self._db.execute(
            """INSERT INTO runs (key, task, config, status, seed, attempts, started_at, host, versions,
                                 owner, heartbeat)
               VALUES (?, ?, ?, 'running', ?, 1, ?, ?, ?, ?, ?)
               ON CONFLICT(key) DO UPDATE SET status='running', attempts=attempts+1,
                 started_at=excluded.started_at, error=NULL, owner=excluded.owner,
                 heartbeat=excluded.heartbeat""",
            (spec.key, spec.task, json.dumps(dict(spec.params)), spec.params.get("seed"),
             now, platform.node(), json.dumps(_versions()), owner_id(), now),
        )

    def mark_done(self, spec: RunSpec, result: dict[str, Any], wall_s: float) -> None:
        with self._tx():
            self._db.execute(
                """UPDATE runs SET status='done', metrics=?, history=?, wall_s=?, finished_at=?,
                   host=?, error=NULL WHERE key=?""",
                (json.dumps(result.get("metrics", {})), json.dumps(result.get("history", [])), wall_s,
                 time.time(), result.get("host", platform.node()), spec.key),
            )

    def mark_failed(self, spec: RunSpec, error: str, wall_s: float) -> None:
        with self._tx():
            self._db.execute(
                "UPDATE runs SET status='failed', error=?, wall_s=?, finished_at=? WHERE key=?",
                (error, wall_s, time.time(), spec.key),
            )

    # ------------------------------------------------------------- reads
    def status(self, key: str) -> str | None:
        row = self._db.execute("SELECT status FROM runs WHERE key=?", (key,)).fetchone()
        return row[0] if row else None

    def rows(self, task: str | None = None, status: str | None = None) -> list[dict[str, Any]]:
        query, args = "SELECT * FROM runs WHERE 1=1", []
        if task:
            query += " AND task=?"
            args.append(task)
        if status:
            query += " AND status=?"
            args.append(status)
        cur = self._db.execute(query + " ORDER BY started_at", args)
        names = [c[0] for c in cur.description]
        out = []
        for values in cur.fetchall():
            row = dict(zip(names, values))
            for field in ("config", "metrics", "history", "versions"):
                row[field] = json.loads(row[field]) if row[field] else None
            out.append(row)
        return out

    def beat(self) -> None:
        """Renew the leases of every run this process is running (from any thread: a
        connection of its own)."""
        db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        try:
            db.execute("UPDATE runs SET heartbeat=? WHERE owner=? AND status='running'",
                       (time.time(), owner_id()))
        finally:
            db.close()

    def counts(self) -> dict[str, int]:
        return dict(self._db.execute("SELECT status, COUNT(*) FROM runs GROUP BY status").fetchall())


class Heartbeat:
    """``with Heartbeat(store):`` renews this process's leases every quarter lease in a
    background thread, so a long run is never taken for abandoned."""

    def __init__(self, store: ResultsStore) -> None:
        self.store = store
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="poolwise-heartbeat", daemon=True)

    def _loop(self) -> None:
        while not self._stop.wait(lease_seconds() / 4):
            with contextlib.suppress(sqlite3.Error):
                self.store.beat()

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
