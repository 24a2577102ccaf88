"""``poolwise reproduce adapool-vision`` run as a user would: a tiny sweep killed and resumed,
the report rebuilt from the database, and bad data refused before anything is written."""

from __future__ import annotations

import os
import pickle
import signal
import sqlite3
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest

from poolwise.data.cifar import write_cifar_file

from .test_cli import _done, poolwise, poolwise_main

TINY = ["--dataset", "digits", "--set", "dim=16", "--set", "depth=1", "--set", "num_heads=2",
        "--set", "ffn_dim=16", "--set", "epochs=1", "--set", "warmup_epochs=0", "--set", "batch_size=256",
        "--workers", "1", "--quiet"]


def test_a_killed_sweep_resumes_each_run_once_and_report_rebuilds_everything(tmp_path):
    out = tmp_path / "out"
    db = out / "runs.sqlite"
    args = ["reproduce", "adapool-vision", "--preset", "demo", "--canvases", "28,42",
            "--poolers", "mean,adapool-focal,cls_token", "--seeds", "0,1", "--out", str(out), *TINY]
    proc = subprocess.Popen([sys.executable, "-m", "poolwise", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    deadline = time.time() + 180
    while _done(db) < 2 and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    assert proc.poll() is None, "the sweep finished before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    before = {row[0]: row[1:] for row in sqlite3.connect(db).execute(
        "SELECT key, finished_at, metrics FROM runs WHERE status='done'")}
    assert 2 <= len(before) < 12

    r = poolwise(*args)
    assert r.returncode == 0, r.stderr
    assert f"{len(before)} already there" in r.stdout
    rows = sqlite3.connect(db).execute(
        "SELECT key, status, attempts, finished_at, metrics FROM runs").fetchall()
    assert len(rows) == 12 and all(status == "done" for _, status, *_ in rows)
    for key, _, attempts, finished, metrics in rows:
        if key in before:
            assert (finished, metrics) == before[key] and attempts == 1

    df = pd.read_csv(out / "runs.csv")
    assert len(df) == 12 and set(df.snr.round(3)) == {1.0, 0.444}
    table = (out / "table.md").read_text()
    assert "| Ada-Focal |" in table and "paper cifar10" in table and "84.52 ± 0.21" in table
    findings = (out / "findings.md").read_text()
    assert "ClsToken below AvgPool: **" in findings and "accuracy lost" in findings
    assert (out / "accuracy_vs_snr.png").stat().st_size > 10_000

    again = tmp_path / "again"
    r = poolwise("report", "--db", str(db), "--out", str(again))
    assert r.returncode == 0, r.stderr
    for name in ("runs.csv", "table.md", "findings.md"):
        assert (again / name).read_text() == (out / name).read_text()


def _cifar(tmp_path, mangle=None):
    folder = tmp_path / "data" / "cifar-10-batches-bin"
    for f in [f"data_batch_{i}.bin" for i in range(1, 6)] + ["test_batch.bin"]:
        write_cifar_file(folder / f, np.zeros((10, 3, 32, 32), dtype=np.uint8), np.zeros(10, dtype=np.int64))
    if mangle:
        mangle(folder)
    return tmp_path / "data"


@pytest.mark.parametrize("mangle,match", [
    (lambda f: (f / "data_batch_2.bin").unlink(), "data_batch_2.bin: missing"),
    (lambda f: (f / "test_batch.bin").write_bytes(b"\x00" * 100), "100 bytes is not a whole number of 3073"),
    (lambda f: (f / "data_batch_1.bin").write_bytes(pickle.dumps({"data": 1}, protocol=2)), "Python pickle"),
    (None, "CIFAR needs --data-dir"),
], ids=["missing", "size", "pickle", "no-dir"])
def test_bad_cifar_data_exits_2_in_one_line_before_anything_is_written(tmp_path, mangle, match):
    data = _cifar(tmp_path, mangle)
    where = [] if match.startswith("CIFAR needs") else ["--data-dir", str(data)]
    r = poolwise_main("reproduce", "adapool-vision", "--preset", "paper", "--dataset", "cifar10", *where,
                 "--out", str(tmp_path / "o"))
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("poolwise: error:") and match in lines[0], r.stderr
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("args,match", [
    (["--poolers", "mean,adapool-edge"], "unknown pooler 'adapool-edge'"),
    (["--canvases", "50"], "must divide the image side 28 and the canvas 50"),
    (["--placements", "left"], "placement must be one of"),
    (["--preset", "huge"], "unknown preset 'huge'"),
    (["--device", "gpu"], "device must be"),
])
def test_bad_options_exit_2_in_one_line(tmp_path, args, match):
    r = poolwise_main("reproduce", "adapool-vision", *args, "--out", str(tmp_path / "o"))
    assert r.returncode == 2 and match in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert not (tmp_path / "o").exists()
