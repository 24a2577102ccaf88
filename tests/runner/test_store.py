import sqlite3

import pytest

from poolwise.runner import ResultsStore, RunSpec, StoreError, grid

from .conftest import TINY


def test_spec_key_is_stable_and_fills_defaults():
    a = RunSpec("adapool-knn", {"k": 4, **TINY})
    b = RunSpec("adapool-knn", {**TINY, "k": 4, "pooler": "adapool"})  # pooler default spelled out
    c = RunSpec("adapool-knn", {"k": 8, **TINY})
    assert a.key == b.key != c.key
    assert a.params["seed"] == 0 and a.label() == "pooler=adapool k=4 seed=0"


def test_spec_validation_errors():
    with pytest.raises(ValueError, match="unknown task"):
        RunSpec("nope", {})
    with pytest.raises(ValueError, match="epochs must be a positive int"):
        RunSpec("adapool-knn", {"k": 4, "epochs": -2})
    with pytest.raises(TypeError, match="unexpected keyword"):
        RunSpec("adapool-knn", {"k": 4, "bogus": 1})


def test_grid_is_the_cartesian_product():
    specs = grid("adapool-knn", TINY, k=[2, 4], pooler=["mean", "max"], seed=[0, 1, 2])
    assert len(specs) == 12 and len({s.key for s in specs}) == 12
    assert [s.params["k"] for s in specs[:6]] == [2] * 6


def test_store_round_trip(tmp_path):
    spec = RunSpec("adapool-knn", {"k": 4, **TINY})
    with ResultsStore(tmp_path / "r.sqlite") as store:
        assert store.status(spec.key) is None
        store.mark_running(spec)
        assert store.status(spec.key) == "running"
        store.mark_done(spec, {"metrics": {"a": 1.5}, "history": [{"epoch": 1}]}, 2.0)
    with ResultsStore(tmp_path / "r.sqlite", create=False) as store:
        (row,) = store.rows()
    assert row["status"] == "done" and row["metrics"] == {"a": 1.5} and row["wall_s"] == 2.0
    assert row["config"]["k"] == 4 and row["seed"] == 0 and row["attempts"] == 1
    assert row["versions"]["poolwise"] and row["host"]


def test_not_sqlite_is_refused_and_left_alone(tmp_path):
    path = tmp_path / "notes.sqlite"
    path.write_text("hello, I am a text file")
    with pytest.raises(StoreError, match="not a SQLite database"):
        ResultsStore(path)
    assert path.read_text() == "hello, I am a text file"


def test_foreign_sqlite_is_refused(tmp_path):
    path = tmp_path / "other.db"
    con = sqlite3.connect(path)
    con.execute("CREATE TABLE users (name TEXT)")
    con.commit()
    con.close()
    with pytest.raises(StoreError, match="not a poolwise results store"):
        ResultsStore(path)


def test_missing_database_without_create(tmp_path):
    with pytest.raises(StoreError, match="no results database"):
        ResultsStore(tmp_path / "missing.sqlite", create=False)


def test_claims_are_leases_that_dead_or_silent_owners_lose(tmp_path, monkeypatch):
    """Two sweeps on one store split the work: a run whose owner is alive (fresh heartbeat,
    and on this host a live pid) is busy; a dead pid or a stale heartbeat frees it."""
    import os
    import platform
    import sqlite3
    import time

    spec = RunSpec("adapool-knn", {"k": 2})
    with ResultsStore(tmp_path / "r.sqlite") as store:
        assert store.claim(spec) == "claimed"
        db = sqlite3.connect(tmp_path / "r.sqlite", isolation_level=None)

        def owned_by(owner, age):
            db.execute("UPDATE runs SET owner=?, heartbeat=? WHERE key=?",
                       (owner, time.time() - age, spec.key))

        owned_by(f"{platform.node()}:{os.getppid()}", 0)  # another live process here (our parent)
        assert store.claim(spec) == "busy"
        owned_by("elsewhere:12345", 10)  # another machine, heartbeat 10 s ago
        assert store.claim(spec) == "busy"
        monkeypatch.setenv("POOLWISE_LEASE_S", "5")  # ... which is stale under a 5 s lease
        assert store.claim(spec) == "claimed"
        owned_by(f"{platform.node()}:99999999", 0)  # a dead pid on this host, fresh heartbeat
        assert store.claim(spec) == "claimed"
        assert store.rows()[0]["attempts"] == 3
        store.mark_done(spec, {"metrics": {}}, 1.0)
        assert store.claim(spec) == "done"
        db.close()


def test_a_version_1_store_is_upgraded_in_place(tmp_path):
    import sqlite3

    path = tmp_path / "old.sqlite"
    con = sqlite3.connect(path)
    con.executescript("""CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
        INSERT INTO meta VALUES ('schema', '1');
        CREATE TABLE runs (key TEXT PRIMARY KEY, task TEXT NOT NULL, config TEXT NOT NULL,
          status TEXT NOT NULL, seed INTEGER, metrics TEXT, history TEXT, error TEXT, wall_s REAL,
          versions TEXT, host TEXT, attempts INTEGER NOT NULL DEFAULT 0, started_at REAL, finished_at REAL);
        INSERT INTO runs (key, task, config, status, attempts)
          VALUES ('k1', 'adapool-knn', '{}', 'done', 1);""")
    con.close()
    with ResultsStore(path, create=False, read_only=True) as store:  # reports read it as it is
        assert store.rows()[0]["key"] == "k1"
    with ResultsStore(path) as store:
        assert store.rows()[0]["status"] == "done" and "owner" in store.rows()[0]
        assert store.claim(RunSpec("adapool-knn", {"k": 2})) == "claimed"


def test_scratch_of_dead_processes_is_removed(tmp_path):
    import os
    import socket

    from poolwise.data.cache import remove_dead_scratch, scratch_path

    final = tmp_path / "feat"
    host = socket.gethostname().replace(".", "_")
    dead = tmp_path / f".feat.{host}-99999999.tmp"
    alive = tmp_path / f".feat.{host}-{os.getpid()}.tmp"
    other = tmp_path / ".feat.another_machine-1.tmp"
    for p in (dead, alive, other):
        p.mkdir()
    (tmp_path / ".feat.npz.x.tmp").write_text("not ours: another artefact's name")
    assert remove_dead_scratch(final) == [dead]
    assert alive.exists() and other.exists() and not dead.exists()
    assert scratch_path(final) == alive


def test_a_read_only_store_is_called_read_only(tmp_path, monkeypatch):
    import os

    path = tmp_path / "r.sqlite"
    ResultsStore(path).close()
    real = os.access
    monkeypatch.setattr(os, "access", lambda p, mode, **kw: False if str(p) == str(path) else real(p, mode))
    with pytest.raises(StoreError, match="is read-only; a sweep needs to write"):
        ResultsStore(path)
    with ResultsStore(path, create=False, read_only=True) as store:  # reports still read it
        assert store.rows() == []
