import math

import pytest

from poolwise.runner import ResultsStore, RunSpec, grid, run_sweep
from poolwise.runner.executors import LocalExecutor, RayExecutor, check_ray_address

from .conftest import TINY


def _losses(store):
    return {r["key"]: r["metrics"]["test_signal_loss"] for r in store.rows(status="done")}


def test_local_sweep_records_everything_and_resumes(tmp_path):
    specs = grid("adapool-knn", TINY, k=[2, 4], pooler=["mean", "adapool"])
    with ResultsStore(tmp_path / "r.sqlite") as store:
        first = run_sweep(specs, store)
        assert (first.done, first.skipped, first.failed) == (4, 0, 0)
        rows = store.rows()
        assert len(rows) == 4 and all(r["status"] == "done" for r in rows)
        assert all(len(r["history"]) == 1 and r["wall_s"] > 0 for r in rows)
        again = run_sweep(specs, store)
        assert (again.done, again.skipped) == (0, 4)
        assert [r["attempts"] for r in store.rows()] == [1, 1, 1, 1]


def test_a_failed_run_does_not_stop_the_sweep_and_can_be_retried(tmp_path):
    specs = [RunSpec("test-fail", {"value": 1}), RunSpec("test-fail", {"value": 2, "fail": False})]
    with ResultsStore(tmp_path / "r.sqlite") as store:
        summary = run_sweep(specs, store)
        assert (summary.done, summary.failed) == (1, 1)
        (failed,) = store.rows(status="failed")
        assert "RuntimeError: boom 1" in failed["error"]
        assert run_sweep(specs, store).skipped == 2  # failed runs are not rerun by default
        retry = run_sweep(specs, store, retry_failed=True)
        assert (retry.failed, retry.skipped) == (1, 1)
        assert store.rows(status="failed")[0]["attempts"] == 2


def test_process_pool_gives_the_same_results(tmp_path):
    specs = grid("adapool-knn", TINY, k=[2], pooler=["mean", "adapool"])
    with ResultsStore(tmp_path / "a.sqlite") as a, ResultsStore(tmp_path / "b.sqlite") as b:
        run_sweep(specs, a)
        summary = run_sweep(specs, b, LocalExecutor(workers=2))
        assert summary.done == 2
        la, lb = _losses(a), _losses(b)
    assert la.keys() == lb.keys()
    for key in la:
        assert math.isclose(la[key], lb[key], rel_tol=1e-4)


@pytest.mark.usefixtures("one_ray_at_a_time")
def test_ray_executor_gives_the_same_results(tmp_path):
    pytest.importorskip("ray")
    specs = grid("adapool-knn", TINY, k=[2], pooler=["mean", "adapool"])
    with ResultsStore(tmp_path / "a.sqlite") as a, ResultsStore(tmp_path / "b.sqlite") as b:
        run_sweep(specs, a)
        executor = RayExecutor(num_cpus=2, object_store_bytes=256 * 1024**2)
        summary = run_sweep(specs, b, executor)
        assert summary.done == 2, summary.errors
        la, lb = _losses(a), _losses(b)
    for key in la:
        assert math.isclose(la[key], lb[key], rel_tol=1e-4)


def test_unreachable_ray_address_fails_fast():
    with pytest.raises(ConnectionError, match=r"cannot reach a Ray cluster at 127\.0\.0\.1:1"):
        check_ray_address("127.0.0.1:1", timeout=1.0)
    with pytest.raises(ValueError, match="HOST:PORT"):
        check_ray_address("not-an-address")


@pytest.mark.usefixtures("one_ray_at_a_time")
def test_joining_a_running_ray_cluster_by_address(tmp_path):
    """`--address` joins an existing cluster: start a head node, run through it, stop it."""
    import os
    import shutil
    import socket
    import subprocess
    import sys

    pytest.importorskip("ray")
    ray_bin = shutil.which("ray") or os.path.join(os.path.dirname(sys.executable), "ray")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "RAY_AUTH_MODE": "disabled"}
    start = subprocess.run([ray_bin, "start", "--head", f"--port={port}", "--num-cpus=2",
                            "--object-store-memory=200000000", "--include-dashboard=false",
                            "--disable-usage-stats"], capture_output=True, text=True, env=env, timeout=120)
    assert start.returncode == 0, start.stderr[-2000:]
    try:
        specs = grid("adapool-knn", TINY, k=[2], pooler=["mean"])
        with ResultsStore(tmp_path / "r.sqlite") as store:
            summary = run_sweep(specs, store, RayExecutor(address=f"127.0.0.1:{port}"))
            assert summary.done == 1, summary.errors
            assert math.isfinite(store.rows()[0]["metrics"]["test_signal_loss"])
    finally:
        subprocess.run([ray_bin, "stop", "--force"], capture_output=True, env=env, timeout=120)


@pytest.mark.usefixtures("one_ray_at_a_time")
@pytest.mark.skipif(not __import__("pathlib").Path("/proc/self/task").exists(), reason="needs Linux /proc")
def test_a_killed_driver_takes_its_local_ray_with_it(tmp_path):
    """ray.init() processes outlive a SIGKILLed driver unless something reaps them."""
    import os
    import signal
    import subprocess
    import sys
    import time
    from pathlib import Path

    pytest.importorskip("ray")
    script = tmp_path / "driver.py"
    script.write_text(
        "import sys\n"
        "from poolwise.runner import ResultsStore, grid, run_sweep\n"
        "from poolwise.runner.executors import RayExecutor\n"
        f"tiny = {dict(TINY, epochs=500, num_samples=400)!r}\n"
        "specs = grid('adapool-knn', tiny, k=[1, 2, 4], pooler=['mean'])\n"
        "with ResultsStore(sys.argv[1]) as store:\n"
        "    run_sweep(specs, store, RayExecutor(num_cpus=2, object_store_bytes=256 * 1024**2))\n")
    env = {**os.environ, "RAY_AUTH_MODE": "disabled"}
    driver = subprocess.Popen([sys.executable, str(script), str(tmp_path / "r.sqlite")], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def tree(pid):
        out = []
        for task in Path(f"/proc/{pid}/task").glob("*"):
            try:
                kids = [int(c) for c in (task / "children").read_text().split()]
            except OSError:
                continue
            for kid in kids:
                out += [kid, *tree(kid)]
        return out

    def cmdline(pid):
        try:
            return Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            return b""

    deadline, ray_procs = time.time() + 120, []
    while time.time() < deadline and driver.poll() is None:
        ray_procs = [p for p in tree(driver.pid) if b"ray::execute" in cmdline(p)]
        if ray_procs:
            break
        time.sleep(0.5)
    assert ray_procs, "no Ray task started"
    everything = tree(driver.pid)
    driver.send_signal(signal.SIGKILL)
    driver.wait(timeout=30)
    deadline = time.time() + 30
    alive = everything
    while time.time() < deadline and alive:
        time.sleep(0.5)
        alive = [p for p in everything if cmdline(p)]  # a zombie's cmdline is empty
    assert not alive, f"Ray processes outlived their driver: {alive}"
