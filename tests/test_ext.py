"""Building the compiled kernels: a build killed midway never blocks the next one."""

import subprocess
import sys
import threading

import pytest

from poolwise import _ext

fcntl = pytest.importorskip("fcntl")


def test_a_killed_build_leaves_no_lock_that_blocks_the_next(tmp_path):
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import sys, time; from pathlib import Path; from poolwise import _ext\n"
         f"with _ext._build_lock(Path({str(tmp_path)!r})):\n"
         "    print('held', flush=True); time.sleep(600)"],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"  # another process is building here
        (tmp_path / "lock").touch()  # with torch's plain lock file, which its death leaves behind
        entered = threading.Event()

        def build():
            with _ext._build_lock(tmp_path):
                entered.set()

        t = threading.Thread(target=build, daemon=True)
        t.start()
        assert not entered.wait(0.5)  # waits while the other build holds the lock
        holder.kill()                 # ... which dies midway, as on Ctrl-C
        holder.wait()
        assert entered.wait(10)       # the OS released its lock: this build goes ahead
    finally:
        holder.kill()
    assert not (tmp_path / "lock").exists()  # and the stale torch lock is gone
