"""The `poolwise` command, run as a subprocess like a user would."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import torch

TINY = ["--set", "num_samples=40", "--set", "num_vectors=16", "--set", "dim=4", "--set", "depth=1",
        "--set", "num_heads=2", "--set", "ffn_dim=8", "--set", "epochs=1", "--set", "batch_size=16"]


def poolwise(*args: str, env_extra: dict | None = None, **kw) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", **(env_extra or {})}
    return subprocess.run([sys.executable, "-m", "poolwise", *args], capture_output=True, text=True,
                          env=env, timeout=300, **kw)


def poolwise_main(*args: str, env_extra: dict | None = None) -> subprocess.CompletedProcess:
    """``poolwise.cli.main`` in this process (for errors raised before any work: the subprocess
    start-up, mostly importing torch, costs seconds a call). Same exit code and stderr."""
    import contextlib
    import io

    from poolwise.cli import main

    out, err = io.StringIO(), io.StringIO()
    saved = {k: os.environ.get(k) for k in env_extra or {}}
    os.environ.update(env_extra or {})
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            rc = main(list(args))
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    return subprocess.CompletedProcess(["poolwise", *args], rc, out.getvalue(), err.getvalue())


@pytest.fixture
def env(tmp_path):
    return {"POOLWISE_CACHE": str(tmp_path / "cache")}


def test_reproduce_writes_plot_table_and_csv_then_report_rebuilds_them(tmp_path, env):
    out = tmp_path / "out"
    r = poolwise("reproduce", "adapool-knn", "--preset", "demo", "--k", "2,8", "--poolers", "mean,adapool",
                 "--out", str(out), "--quiet", *TINY, env_extra=env)
    assert r.returncode == 0, r.stderr
    assert "4 runs done" in r.stdout and "signal_loss.png" in r.stdout
    df = pd.read_csv(out / "runs.csv")
    assert len(df) == 4
    assert {"pooler", "k", "snr", "seed", "test_signal_loss", "wall_s"} <= set(df.columns)
    assert (out / "signal_loss.png").stat().st_size > 10_000
    table = (out / "table.md").read_text()
    assert "AdaPool" in table and "centroid baseline" in table

    rebuilt = tmp_path / "rebuilt"
    r = poolwise("report", "--db", str(out / "runs.sqlite"), "--out", str(rebuilt))
    assert r.returncode == 0, r.stderr
    assert (rebuilt / "runs.csv").read_text() == (out / "runs.csv").read_text()
    assert (rebuilt / "table.md").read_text() == table
    assert not (rebuilt / "scaling.md").exists()  # one setting: no scaling report


def test_a_sweep_with_other_settings_is_reported_apart(tmp_path, env):
    out = tmp_path / "out"
    args = ["reproduce", "adapool-knn", "--preset", "demo", "--k", "2", "--poolers", "mean",
            "--out", str(out), "--quiet", *TINY]
    assert poolwise(*args, env_extra=env).returncode == 0
    r = poolwise(*args, "--set", "epochs=2", env_extra=env)
    assert r.returncode == 0, r.stderr
    assert "note:" in r.stderr and "(epochs: 1 there, 2 here)" in r.stderr
    table = (out / "table.md").read_text()
    assert "AvgPool [epochs=1]" in table and "AvgPool [epochs=2]" in table
    assert len(pd.read_csv(out / "runs.csv")) == 2
    rebuilt = tmp_path / "rebuilt"  # two settings: report also rebuilds the scaling report
    r = poolwise_main("report", "--db", str(out / "runs.sqlite"), "--out", str(rebuilt))
    assert r.returncode == 0, r.stderr
    scaling = (rebuilt / "scaling.md").read_text()
    assert "| epochs=1 |" in scaling and "| epochs=2 |" in scaling
    assert (rebuilt / "scaling.png").stat().st_size > 10_000
    from_csv = tmp_path / "from-csv"  # the same scaling report from runs.csv alone
    r = poolwise_main("report", "--runs", str(rebuilt / "runs.csv"), "--out", str(from_csv))
    assert r.returncode == 0, r.stderr
    assert (from_csv / "scaling.md").read_text() == scaling
    old = pd.read_csv(out / "runs.csv").drop(columns=["sample_gradients", "train_flops"])
    old.to_csv(tmp_path / "old.csv", index=False)  # a runs.csv from before the compute columns
    assert (from_csv / "table.md").read_text().split("\n")[3:] == \
        (rebuilt / "table.md").read_text().split("\n")[3:]  # the table too, only its source line differs
    old_out = tmp_path / "from-old"
    r = poolwise_main("report", "--runs", str(tmp_path / "old.csv"), "--out", str(old_out))
    assert r.returncode == 0 and (old_out / "table.md").exists() and not (old_out / "scaling.md").exists()
    one = pd.read_csv(out / "runs.csv")
    one[one.epochs == 1].to_csv(tmp_path / "one.csv", index=False)
    one_out = tmp_path / "from-one"
    r = poolwise_main("report", "--runs", str(tmp_path / "one.csv"), "--out", str(one_out))
    assert r.returncode == 0 and not (one_out / "scaling.md").exists()  # one setting: no scaling
    pd.DataFrame({"a": [1]}).to_csv(tmp_path / "alien.csv", index=False)
    r = poolwise_main("report", "--runs", str(tmp_path / "alien.csv"), "--out", str(one_out))
    assert r.returncode == 2 and "not the runs.csv of a poolwise report" in r.stderr
    r = poolwise_main("report", "--runs", str(tmp_path / "none.csv"), "--out", str(from_csv))
    assert r.returncode == 2 and "no runs.csv at" in r.stderr
    r = poolwise_main("report", "--runs", str(tmp_path / "one.csv"), "--db", str(out / "runs.sqlite"),
                      "--out", str(from_csv))
    assert r.returncode == 2 and "not allowed with argument" in r.stderr



def test_report_step_needs_no_import_after_the_runs(tmp_path, env, monkeypatch):
    """A sweep imports its report modules before the runs: a module edited (or broken) while a
    sweep of hours runs must not cost the sweep its report."""
    import poolwise.runner as runner

    real = runner.run_sweep

    def sweep_then_break_imports(*a, **kw):
        summary = real(*a, **kw)
        for name in [m for m in sys.modules if m.startswith("poolwise.report")]:
            monkeypatch.setitem(sys.modules, name, None)  # importing it now raises ImportError
        return summary

    monkeypatch.setattr(runner, "run_sweep", sweep_then_break_imports)
    out = tmp_path / "out"
    monkeypatch.setenv("POOLWISE_CACHE", env["POOLWISE_CACHE"])
    r = poolwise_main("reproduce", "adapool-knn", "--preset", "variants", "--k", "2", "--poolers", "mean",
                      "--out", str(out), "--quiet", "--set", "epochs=1", *TINY)
    assert r.returncode == 0, r.stderr
    assert (out / "table.md").exists() and (out / "scaling.md").exists()

def _done(db: Path) -> int:
    try:
        con = sqlite3.connect(db, timeout=5)
        n = con.execute("SELECT COUNT(*) FROM runs WHERE status='done'").fetchone()[0]
        con.close()
        return n
    except sqlite3.Error:
        return 0


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT], ids=["SIGKILL", "SIGINT"])
def test_resume_after_kill_runs_each_config_exactly_once(tmp_path, env, sig):
    out = tmp_path / "out"
    db = out / "runs.sqlite"
    args = ["reproduce", "adapool-knn", "--preset", "demo", "--k", "1,2,4,8", "--poolers", "mean,max",
            "--seeds", "0,1", "--out", str(out), "--quiet", *TINY, "--set", "epochs=3",
            "--set", "num_samples=400"]  # runs long enough (~0.3 s) that the signal lands mid-sweep
    # a shell's background job (e.g. `bash .ci/run &`) inherits SIGINT as ignored, and Python
    # then never raises KeyboardInterrupt: give the child the default disposition back
    proc = subprocess.Popen([sys.executable, "-m", "poolwise", *args], env={**os.environ, **env},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.time() + 120
    while _done(db) < 2 and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    assert proc.poll() is None, "the sweep finished before it could be interrupted"
    proc.send_signal(sig)
    proc.wait(timeout=60)
    before = {row[0]: row[1:] for row in sqlite3.connect(db).execute(
        "SELECT key, finished_at, metrics FROM runs WHERE status='done'")}
    assert 2 <= len(before) < 16

    r = poolwise(*args, env_extra=env)
    assert r.returncode == 0, r.stderr
    assert f"{len(before)} already there" in r.stdout
    con = sqlite3.connect(db)
    rows = con.execute("SELECT key, status, attempts, finished_at, metrics FROM runs").fetchall()
    assert len(rows) == 16 and all(status == "done" for _, status, *_ in rows)
    for key, _, attempts, finished, metrics in rows:
        if key in before:  # finished before the kill: untouched, not repeated
            assert (finished, metrics) == before[key] and attempts == 1


@pytest.mark.parametrize("args,match", [
    (["reproduce", "adapool-knn", "--preset", "huge"], "unknown preset 'huge'"),
    (["reproduce", "adapool-knn", "--poolers", "mean,nope"], "unknown pooler 'nope'"),
    (["reproduce", "adapool-knn", "--set", "epochs=-1"], "epochs must be a positive int"),
    (["reproduce", "adapool-knn", "--set", "num_samples=-5"], "num_samples must be a positive int"),
    (["reproduce", "adapool-knn", "--k", "0"], "k must be a positive int"),
    (["reproduce", "adapool-knn", "--executor", "ray", "--address", "127.0.0.1:1"],
     "cannot reach a Ray cluster at 127.0.0.1:1"),
    (["reproduce", "adapool-knn", "--address", "127.0.0.1:1"], "--address needs --executor ray"),
    (["reproduce", "adapool-knn", "--bogus"], "unrecognized arguments: --bogus"),
    pytest.param(["reproduce", "adapool-knn", "--preset", "paper-gpu"], "needs a CUDA device",
                 marks=pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is present")),
    (["report", "--db", "/nonexistent/x.sqlite", "--out", "/tmp/x"], "no results database"),
])
def test_bad_input_exits_2_with_one_line(tmp_path, env, args, match):
    run = poolwise if "ray" in args else poolwise_main  # Ray is started in a child process only
    r = run(*args, "--out", str(tmp_path / "o"), env_extra=env) if args[0] == "reproduce" \
        else run(*args, env_extra=env)
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("poolwise: error:") and match in lines[0], r.stderr
    assert not (tmp_path / "o").exists()  # nothing written


def test_a_database_that_is_not_sqlite_is_left_untouched(tmp_path, env):
    db = tmp_path / "precious.sqlite"
    db.write_bytes(b"not a database at all" * 10)
    r = poolwise("reproduce", "adapool-knn", "--db", str(db), "--out", str(tmp_path / "o"), "--k", "2", *TINY,
                 env_extra=env)
    assert r.returncode == 2 and "is not a SQLite database" in r.stderr
    assert db.read_bytes() == b"not a database at all" * 10
    r = poolwise("report", "--db", str(db), "--out", str(tmp_path / "o"))
    assert r.returncode == 2 and "is not a SQLite database" in r.stderr


def test_poolers_lists_registered_names():
    r = poolwise("poolers")
    assert r.returncode == 0 and "adapool" in r.stdout.split()


def test_probe_writes_plots_tables_and_json(tmp_path, tiny_bert_dir):
    texts = tmp_path / "texts.txt"
    texts.write_text("the cat sat on the mat .\n\na dog ran\nthe dogs sat\n")
    r = poolwise("probe", "--model", str(tiny_bert_dir), "--texts", str(texts), "--out", str(tmp_path / "p"),
                 "--poolers", "mean,max,last", "--samples", "1")
    assert r.returncode == 0, r.stderr
    for name in ("expressivity", "similarity", "agreement", "snr"):
        assert (tmp_path / "p" / f"{name}.png").stat().st_size > 5_000
        assert (tmp_path / "p" / f"{name}.json").exists()
    expr = pd.read_csv(tmp_path / "p" / "expressivity.csv")
    assert set(expr.pooler) == {"mean", "max", "last"} and (expr.n == 3).all()
    assert "## agreement" in (tmp_path / "p" / "summary.md").read_text()


@pytest.mark.parametrize("case,match", [
    ("missing", "no texts file"),
    ("empty", "holds no text"),
    ("probe", "unknown probe nope"),
    ("pooler", "unknown pooler meen"),
    ("model", "not a Hugging Face model directory"),
])
def test_probe_bad_input_exits_2(tmp_path, tiny_bert_dir, case, match):
    texts = tmp_path / "texts.txt"
    texts.write_text("" if case == "empty" else "a dog ran\n")
    args = ["probe", "--model", str(tmp_path if case == "model" else tiny_bert_dir),
            "--texts", str(tmp_path / "nope.txt" if case == "missing" else texts),
            "--out", str(tmp_path / "p")]
    if case == "probe":
        args += ["--probe", "nope"]
    if case == "pooler":
        args += ["--poolers", "mean,meen"]
    r = poolwise_main(*args)
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 2 and len(lines) == 1 and match in lines[0], r.stderr
    assert not (tmp_path / "p").exists()


def test_probe_runs_on_the_studys_word_encoder(tmp_path, monkeypatch):
    """--model mlm probes the study's shipped masked-word encoder; a length that the snr
    probe's distractors would push past its 128-word context is refused before any work."""
    monkeypatch.setenv("POOLWISE_CACHE", str(tmp_path / "cache"))
    texts = tmp_path / "texts.txt"
    texts.write_text("the market fell sharply today\nthe team won the match\n")
    r = poolwise_main("probe", "--model", "mlm", "--texts", str(texts), "--out", str(tmp_path / "p"))
    assert r.returncode == 2 and "use --max-length 96 or less" in r.stderr and not (tmp_path / "p").exists()
    r = poolwise_main("probe", "--model", "mlm", "--texts", str(texts), "--out", str(tmp_path / "p"),
                      "--probe", "expressivity", "--poolers", "mean,sum", "--samples", "1")
    assert r.returncode == 0, r.stderr
    expr = pd.read_csv(tmp_path / "p" / "expressivity.csv")
    assert set(expr.pooler) == {"mean", "sum"} and "relative_mean" in expr


def test_probe_weights_with_fresh_and_trained_poolers(tmp_path, tiny_bert_dir):
    import torch

    from poolwise.integrations.transformers import PooledEncoder

    enc = PooledEncoder.from_pretrained(tiny_bert_dir, "wavg", max_len=64)
    with torch.no_grad():
        enc.pooler.logits[0] = 4.0  # "trained": weight on the first token
    enc.save_pretrained(tmp_path / "trained")
    texts = tmp_path / "texts.txt"
    texts.write_text("the cat sat on the mat .\na dog ran\nthe dogs sat\n")
    r = poolwise("probe", "--model", str(tiny_bert_dir), "--texts", str(texts), "--out", str(tmp_path / "p"),
                 "--probe", "weights,expressivity", "--poolers", "mean,adapool,wavg", "--samples", "1",
                 "--trained", str(tmp_path / "trained"))
    assert r.returncode == 0, r.stderr
    w = pd.read_csv(tmp_path / "p" / "weights.csv")
    assert set(w.pooler) == {"adapool (untrained)", "wavg (untrained)", "wavg (trained)"}
    trained = w[w.pooler == "wavg (trained)"].set_index("position").weight
    assert trained.idxmax() == 0
    assert (tmp_path / "p" / "weights.png").stat().st_size > 5_000
    assert set(pd.read_csv(tmp_path / "p" / "expressivity.csv").pooler) == {"mean", "adapool", "wavg"}
    r = poolwise("probe", "--model", str(tiny_bert_dir), "--texts", str(texts), "--out", str(tmp_path / "q"),
                 "--probe", "weights", "--poolers", "mean")
    assert r.returncode == 2 and "weights probe needs a learned pooler" in r.stderr


@pytest.mark.parametrize("command, where", [("reproduce", "file"), ("compare", "under_file"),
                                            ("probe", "file"), ("report", "under_file")])
def test_an_unusable_out_fails_first_in_one_line(tmp_path, env, tiny_bert_dir, command, where):
    blocker = tmp_path / "blocker"
    blocker.write_text("not a folder")
    out = blocker if where == "file" else blocker / "sub" / "out"
    texts = tmp_path / "texts.txt"
    texts.write_text("a dog ran\n")
    db = tmp_path / "x.sqlite"
    db.touch()
    args = {
        "reproduce": ["reproduce", "adapool-knn", "--preset", "demo", "--k", "2", *TINY],
        "compare": ["compare", "--task", "ts-gunpoint", "--seeds", "1"],
        "probe": ["probe", "--model", str(tiny_bert_dir), "--texts", str(texts)],
        "report": ["report", "--db", str(db)],
    }[command]
    r = poolwise_main(*args, "--out", str(out), env_extra=env)
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 2 and len(lines) == 1, r.stderr
    assert ("is a file, not a directory" if where == "file" else "which is a file") in lines[0]
    assert not (tmp_path / "cache").exists()  # failed before any work (no data, no features)


def test_report_never_writes_to_the_database(tmp_path):
    empty = tmp_path / "empty.sqlite"
    empty.touch()
    r = poolwise_main("report", "--db", str(empty), "--out", str(tmp_path / "o"))
    assert r.returncode == 2 and "not a poolwise results store (an empty database)" in r.stderr
    assert empty.stat().st_size == 0  # it used to become a poolwise database


def test_probe_refuses_binary_and_non_utf8_texts(tmp_path, tiny_bert_dir):
    binary, latin = tmp_path / "b.bin", tmp_path / "l.txt"
    binary.write_bytes(b"\x00\x01\x02abc\n")
    latin.write_bytes("caf\xe9 au lait\nna\xefve\n".encode("latin-1"))
    for path, message in ((binary, "is a binary file"), (latin, "not valid UTF-8 (2 undecodable")):
        r = poolwise_main("probe", "--model", str(tiny_bert_dir), "--texts", str(path),
                          "--out", str(tmp_path / "o"))
        assert r.returncode == 2 and message in r.stderr, r.stderr


def test_trained_pooler_errors_name_the_file(tmp_path, tiny_bert_dir):
    import json

    from poolwise.integrations.transformers import PooledEncoder, load_pooler

    enc = PooledEncoder.from_pretrained(tiny_bert_dir, "wavg", max_len=64)
    enc.save_pretrained(tmp_path / "trained")
    cfg_path = tmp_path / "trained" / "poolwise_pooler.json"
    cfg = json.loads(cfg_path.read_text())
    cfg_path.write_text(json.dumps({**cfg, "max_len": 32}))  # weights saved for 64 positions
    with pytest.raises(ValueError, match=r"does not fit the pooler .*logits: \(64,\) for \(32,\)"):
        load_pooler(tmp_path / "trained")
    cfg_path.write_text(json.dumps({**cfg, "name": ["wavg"]}))
    with pytest.raises(ValueError, match=r"poolwise_pooler.json: pooler name must be a str; got list"):
        load_pooler(tmp_path / "trained")


def test_two_sweeps_on_one_store_split_the_work(tmp_path, env):
    """Started together on the same --out, two sweeps run each config once between them."""
    out = tmp_path / "out"
    args = ["reproduce", "adapool-knn", "--preset", "demo", "--k", "1,2,4", "--poolers", "mean,max",
            "--seeds", "0,1", "--out", str(out), "--quiet", *TINY, "--set", "num_samples=200"]
    procs = [subprocess.Popen([sys.executable, "-m", "poolwise", *args], env={**os.environ, **env},
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outs = [p.communicate(timeout=300) for p in procs]
    assert all(p.returncode == 0 for p in procs), outs
    rows = sqlite3.connect(out / "runs.sqlite").execute("SELECT status, attempts FROM runs").fetchall()
    assert len(rows) == 12 and all(status == "done" and attempts == 1 for status, attempts in rows)
    done = [int(o.split(" runs done")[0].split()[-1]) for o, _ in outs]
    assert sum(done) == 12


def _children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        children = (task / "children").read_text().split()
        found += [int(c) for c in children]
    return found


@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="needs Linux /proc")
def test_a_killed_pool_sweep_leaves_no_process_behind(tmp_path, env):
    out = tmp_path / "out"
    args = ["reproduce", "adapool-knn", "--preset", "demo", "--k", "1,2,4,8", "--poolers", "mean,max",
            "--out", str(out), "--quiet", "--workers", "2", *TINY, "--set", "epochs=50",
            "--set", "num_samples=400"]
    proc = subprocess.Popen([sys.executable, "-m", "poolwise", *args], env={**os.environ, **env},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    workers: list[int] = []
    while time.time() < deadline and len(workers) < 2 and proc.poll() is None:
        time.sleep(0.2)
        workers = _children(proc.pid)
    assert len(workers) >= 2, "the pool never started"
    time.sleep(3)  # the runs are under way
    proc.kill()
    proc.wait(timeout=30)
    deadline = time.time() + 20
    while time.time() < deadline and any(Path(f"/proc/{w}").exists() for w in workers):
        time.sleep(0.25)
    left = [w for w in workers if Path(f"/proc/{w}").exists()
            and Path(f"/proc/{w}/stat").read_text().split()[2] != "Z"]
    assert not left, f"processes outlived the killed sweep: {left}"


def test_a_read_only_out_is_refused_before_any_work(tmp_path, monkeypatch):
    """Root ignores permission bits, so the read-only file system is simulated."""
    from poolwise.cli._common import UsageError, check_writable_dir

    real = os.access
    monkeypatch.setattr(os, "access",
                        lambda p, mode, **kw: False if str(p) == str(tmp_path) else real(p, mode))
    with pytest.raises(UsageError, match=r"is not writable \(read-only file system or permissions\)"):
        check_writable_dir(tmp_path / "new" / "out")


def test_probe_reads_the_poolers_a_compare_run_trained(tmp_path, tiny_bert_dir):
    """`--from-db` takes seed 0's trained poolers of one task label from a results store into
    the agreement and weights probes (Figure 3 from the study's own poolers)."""
    import torch

    from poolwise.experiments.frozen import pooler_state
    from poolwise.pooling import get_pooler
    from poolwise.runner import ResultsStore, RunSpec

    csv = tmp_path / "d.csv"
    csv.write_text("text,label\n" + "a,x\nb,y\n" * 3)
    store = ResultsStore(tmp_path / "runs.sqlite")
    wavg = get_pooler("wavg", max_len=64)
    with torch.no_grad():
        wavg.logits[2] = 5.0  # as if trained to read the third token
    for name, pooler in (("wavg", wavg), ("mean", get_pooler("mean"))):
        spec = RunSpec("text-csv", {"pooler": name, "seed": 0, "data": str(csv), "model": str(tiny_bert_dir)})
        store.mark_running(spec)
        store.mark_done(spec, {"metrics": {"metric": "accuracy", "value": 50, "val": 0, "best_epoch": 1,
                                           "train_s": 0, "features_s": 0, "backbone": "hf", "objective": "",
                                           "neutral": False, "default_backbone": True,
                                           "trained_pooler": pooler_state(pooler)}}, 1.0)
    store.close()
    texts = tmp_path / "texts.txt"
    texts.write_text("the cat sat on the mat .\na dog ran on the mat\nthe dogs sat\n")
    r = poolwise("probe", "--model", str(tiny_bert_dir), "--texts", str(texts), "--out", str(tmp_path / "p"),
                 "--probe", "agreement,weights", "--poolers", "mean,max",
                 "--from-db", str(tmp_path / "runs.sqlite"), "--task", "text-csv")
    assert r.returncode == 0, r.stderr
    w = pd.read_csv(tmp_path / "p" / "weights.csv")
    assert set(w.pooler) == {"wavg (trained on text-csv)"}
    assert w.set_index("position").weight.idxmax() == 2
    agreement = pd.read_csv(tmp_path / "p" / "agreement.csv", index_col=0)
    assert "wavg (trained on text-csv)" in agreement.index and "max" in agreement.index
    r = poolwise("probe", "--model", str(tiny_bert_dir), "--texts", str(texts), "--out", str(tmp_path / "q"),
                 "--probe", "agreement", "--from-db", str(tmp_path / "runs.sqlite"), "--task", "text-bbc")
    assert r.returncode == 2 and "holds no finished runs of text-bbc; its tasks: text-csv" in r.stderr
