"""``poolwise reproduce adapool-rl`` and ``poolwise rl-play`` run as a user would: a tiny sweep
killed and resumed, the report rebuilt from the database, an episode rendered, bad input
refused before anything is written."""

from __future__ import annotations

import os
import re
import signal
import sqlite3
import subprocess
import sys
import time

import pandas as pd
import pytest

from .test_cli import _done, poolwise, poolwise_main

pytest.importorskip("stable_baselines3")

TINY = [
    "--set",
    "dim=4",
    "--set",
    "depth=1",
    "--set",
    "num_heads=2",
    "--set",
    "ffn_dim=8",
    "--set",
    "num_envs=4",
    "--set",
    "n_steps=128",
    "--set",
    "batch_size=128",
    "--set",
    "epochs=1",
    "--set",
    "eval_episodes=8",
    "--steps",
    "512",
    "--workers",
    "1",
    "--quiet",
]


def test_a_killed_rl_sweep_resumes_and_the_report_rebuilds(tmp_path):
    out = tmp_path / "out"
    db = out / "runs.sqlite"
    args = [
        "reproduce",
        "adapool-rl",
        "--env",
        "tag",
        "--configs",
        "1v3v0,1v3v4",
        "--poolers",
        "adapool,max",
        "--seeds",
        "0,1",
        "--out",
        str(out),
        *TINY,
    ]
    proc = subprocess.Popen(
        [sys.executable, "-m", "poolwise", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    deadline = time.time() + 180
    while _done(db) < 2 and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    assert proc.poll() is None, "the sweep finished before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    before = {
        row[0]: row[1:]
        for row in sqlite3.connect(db).execute(
            "SELECT key, finished_at, metrics FROM runs WHERE status='done'"
        )
    }
    assert 2 <= len(before) < 8

    r = poolwise(*args)
    assert r.returncode == 0, r.stderr
    assert f"{len(before)} already there" in r.stdout
    rows = (
        sqlite3.connect(db).execute("SELECT key, status, attempts, finished_at, metrics FROM runs").fetchall()
    )
    assert len(rows) == 8 and all(status == "done" for _, status, *_ in rows)
    for key, _, attempts, finished, metrics in rows:
        if key in before:
            assert (finished, metrics) == before[key] and attempts == 1

    df = pd.read_csv(out / "runs.csv")
    assert len(df) == 8 and set(df.config) == {"1v3v0", "1v3v4"} and set(df.snr.round(3)) == {1.0, 0.429}
    table = (out / "table.md").read_text()
    assert "| AdaPool |" in table and "| random policy |" in table and "relative drop" in table
    assert "50.9%" in table and "60.7%" in table  # the paper's drops beside ours
    findings = (out / "findings.md").read_text()
    assert re.search(r"AdaPool degrades least from 1v3v0 to 1v3v4 \(relative drop, per seed\): "
                     r"\*\*(holds|fails|inconclusive)\*\* \(adapool - ", findings)
    assert "Over the claims: **" in findings and "Holm" in findings
    assert (out / "returns_tag.png").stat().st_size > 10_000
    curves = pd.read_csv(out / "curves.csv")
    assert len(curves) == 8 and set(curves.env_steps) == {512}
    ckpts = sorted((out / "checkpoints").glob("*.safetensors"))
    assert len(ckpts) == 8 and ckpts[0].name == "tag-1v3v0-adapool-s0.safetensors"

    again = tmp_path / "again"
    r = poolwise("report", "--db", str(db), "--out", str(again))
    assert r.returncode == 0, r.stderr
    for name in ("runs.csv", "table.md", "findings.md", "curves.csv"):
        assert (again / name).read_text() == (out / name).read_text()

    gif = tmp_path / "play" / "episode.gif"
    r = poolwise("rl-play", str(ckpts[0]), "--out", str(gif), "--seed", "3")
    assert r.returncode == 0, r.stderr
    assert gif.read_bytes()[:6] in (b"GIF89a", b"GIF87a") and "129 frames" in r.stdout


def test_rl_play_renders_boxworld(tmp_path):
    out = tmp_path / "o"
    r = poolwise(
        "reproduce",
        "adapool-rl",
        "--env",
        "boxworld",
        "--configs",
        "pixels",
        "--poolers",
        "adapool",
        "--seeds",
        "0",
        "--out",
        str(out),
        *TINY,
    )
    assert r.returncode == 0, r.stderr
    gif = tmp_path / "box.gif"
    r = poolwise(
        "rl-play", str(out / "checkpoints" / "boxworld-pixels-adapool-s0.safetensors"), "--out", str(gif)
    )
    assert r.returncode == 0, r.stderr
    assert gif.stat().st_size > 1000


@pytest.mark.parametrize(
    "args,match",
    [
        (["--env", "pong"], "unknown env 'pong'"),
        (["--env", "tag", "--configs", "1v2v9"], "3 prey"),
        (["--env", "centroid", "--configs", "1v31"], "must read 1vKvM"),
        (["--env", "boxworld", "--configs", "rgb"], "entities or pixels"),
        (["--env", "all", "--configs", "1v3v0"], "give --env too"),
        (["--preset", "huge"], "unknown preset 'huge'"),
        (["--poolers", "adapool,median"], "unknown pooler 'median'"),
        (["--set", "gamma=2"], "gamma must be in [0, 1]"),
        (["--steps", "0"], "--steps must be >= 1"),
        (["--seeds", "a"], "--seeds"),
    ],
)
def test_bad_options_exit_2_in_one_line(tmp_path, args, match):
    r = poolwise_main("reproduce", "adapool-rl", *args, "--out", str(tmp_path / "o"))
    assert r.returncode == 2 and match in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert not (tmp_path / "o").exists()


def test_an_unreachable_ray_cluster_exits_2(tmp_path):
    r = poolwise(
        "reproduce",
        "adapool-rl",
        "--preset",
        "demo",
        "--executor",
        "ray",
        "--address",
        "127.0.0.1:1",
        "--out",
        str(tmp_path / "o"),
    )
    assert r.returncode == 2 and "cannot reach a Ray cluster at 127.0.0.1:1" in r.stderr
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize(
    "make,match",
    [
        (lambda p: p.write_bytes(b"nonsense"), "is not a safetensors file"),
        (None, "no checkpoint at"),
    ],
)
def test_rl_play_refuses_what_is_not_a_checkpoint(tmp_path, make, match):
    ckpt = tmp_path / "x.safetensors"
    if make:
        make(ckpt)
    r = poolwise_main("rl-play", str(ckpt), "--out", str(tmp_path / "x.gif"))
    assert r.returncode == 2 and match in r.stderr, r.stderr
    r = poolwise_main("rl-play", str(ckpt), "--out", str(tmp_path / "x.png"))
    assert r.returncode == 2


def test_rl_play_refuses_a_foreign_safetensors_file(tmp_path):
    import torch
    from safetensors.torch import save_file

    ckpt = tmp_path / "w.safetensors"
    save_file({"w": torch.zeros(2)}, str(ckpt))
    r = poolwise_main("rl-play", str(ckpt), "--out", str(tmp_path / "x.gif"))
    assert r.returncode == 2 and "not a poolwise RL checkpoint" in r.stderr
