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
