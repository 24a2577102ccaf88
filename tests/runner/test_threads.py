"""The thread budget: torch threads follow the cores other processes leave free."""

import pytest
import torch

from poolwise.experiments import register_task
from poolwise.runner import executors, threads
from poolwise.runner.threads import ThreadBudget


class FakeMachine:
    """A machine whose clock, busy time and own CPU time the test moves by hand."""

    def __init__(self, monkeypatch):
        self.wall = self.busy = self.own = 0.0
        monkeypatch.setattr(threads.time, "monotonic", lambda: self.wall)
        monkeypatch.setattr(threads.time, "sleep", self.advance_idle)
        monkeypatch.setattr(threads, "machine_busy_seconds", lambda: self.busy)
        monkeypatch.setattr(threads, "own_busy_seconds", lambda: self.own)
        monkeypatch.delenv("POOLWISE_THREADS", raising=False)
        self.others = 0.0  # cores other processes keep busy
        self.mine = 0.0    # cores this process keeps busy

    def advance_idle(self, seconds):
        self.run(seconds)

    def run(self, seconds):
        self.wall += seconds
        self.busy += (self.others + self.mine) * seconds
        self.own += self.mine * seconds


def test_free_cores_set_the_thread_count(monkeypatch):
    m = FakeMachine(monkeypatch)
    budget = ThreadBudget(cores=4)
    assert budget.threads() == 4  # first call watches an idle machine for MIN_WINDOW_S
    assert m.wall == pytest.approx(threads.MIN_WINDOW_S)
    m.mine, m.others = 4.0, 0.0
    m.run(1.0)
    assert budget.threads() == 4  # our own busy threads are not "others"
    m.mine, m.others = 3.0, 1.0
    m.run(1.0)
    assert budget.threads() == 3 and budget.others == pytest.approx(1.0)
    m.mine, m.others = 2.0, 1.6  # 2.4 free cores round to 2
    m.run(1.0)
    assert budget.threads() == 2
    m.others = 3.0
    m.run(1.0)
    assert budget.threads() == 1
    m.others = 9.0  # more than the machine: still one thread
    m.run(1.0)
    assert budget.threads() == 1


def test_workers_split_the_free_cores_and_too_soon_keeps_the_last_estimate(monkeypatch):
    m = FakeMachine(monkeypatch)
    budget = ThreadBudget(workers=2, cores=8)
    assert budget.threads() == 4
    m.others = 4.0
    m.run(1.0)
    assert budget.threads() == 2
    m.others = 0.0
    m.run(threads.MIN_WINDOW_S / 4)  # too short a window to judge: the last estimate holds
    assert budget.threads() == 2
    m.run(1.0)
    assert budget.threads() == 4


def test_poolwise_threads_fixes_the_count_and_bad_values_are_refused(monkeypatch):
    FakeMachine(monkeypatch)
    monkeypatch.setenv("POOLWISE_THREADS", "3")
    assert ThreadBudget(cores=2).threads() == 3
    for bad in ("0", "two", "-1"):
        monkeypatch.setenv("POOLWISE_THREADS", bad)
        with pytest.raises(ValueError, match="POOLWISE_THREADS must be a positive integer"):
            ThreadBudget().threads()
    with pytest.raises(ValueError, match="workers must be >= 1"):
        ThreadBudget(workers=0)


def test_without_proc_stat_every_usable_core_is_used(monkeypatch):
    monkeypatch.setattr(threads, "machine_busy_seconds", lambda: None)
    monkeypatch.delenv("POOLWISE_THREADS", raising=False)
    assert ThreadBudget(cores=3).threads() == 3
    assert threads.usable_cores() >= 1


def test_the_real_machine_reading_is_sane():
    busy = threads.machine_busy_seconds()
    if busy is None:
        pytest.skip("no /proc/stat on this system")
    assert busy > 0 and threads.own_busy_seconds() >= 0


class _Recorder:
    def __init__(self):
        self.calls = 0

    def apply(self):
        self.calls += 1
        return 1


class _EpochsConfig:
    def __init__(self, epochs: int = 3) -> None:
        self.epochs = epochs

    def to_dict(self):
        return {"epochs": self.epochs}


def _run_epochs(cfg, progress=None):
    for e in range(1, cfg.epochs + 1):
        progress(e, cfg.epochs, {"loss": 1.0 / e})
    return {"metrics": {"threads": torch.get_num_threads()}, "history": []}


register_task("test-epochs", _EpochsConfig, _run_epochs, "reports epochs (tests)")


def test_a_run_applies_the_budget_at_its_start_and_after_every_epoch(monkeypatch):
    rec = _Recorder()
    monkeypatch.setattr(executors, "process_budget", lambda: rec)
    seen = []
    out = executors.execute("test-epochs", {"epochs": 3}, None, lambda e, t, r: seen.append(e))
    assert out["error"] is None and seen == [1, 2, 3]
    assert rec.calls == 1 + 3
    rec.calls = 0
    before = torch.get_num_threads()
    try:  # a pool worker's share is set first, then followed the same way
        out = executors.execute("test-epochs", {"epochs": 2}, 1)
        assert out["result"]["metrics"]["threads"] == 1 and rec.calls == 2
    finally:
        torch.set_num_threads(before)


def test_a_bad_poolwise_threads_is_the_run_error_not_an_exception(monkeypatch):
    monkeypatch.setenv("POOLWISE_THREADS", "many")
    out = executors.execute("test-epochs", {"epochs": 1})
    assert out["result"] is None and "POOLWISE_THREADS must be a positive integer" in out["error"]
