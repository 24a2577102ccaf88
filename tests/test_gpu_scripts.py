"""The GPU benchmark scripts run end to end, here on CPU tensors (a lent GPU's minutes are too
few to spend on a script that breaks): CUDA events, graphs and streams are replaced by host
timers, and the Triton kernels run interpreted (TRITON_INTERPRET=1, set by conftest.py).
Skipped where a GPU is present (the scripts then run for real) or Triton is missing."""

from __future__ import annotations

import contextlib
import dataclasses
import importlib
import json
import sys
import time
from pathlib import Path

import pytest
import torch

tk = pytest.importorskip("poolwise.pooling.triton_kernels")
if tk.triton is None or torch.cuda.is_available() or not tk.interpreting():
    pytest.skip("needs Triton interpreted on a machine without a GPU", allow_module_level=True)
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")
BENCH = Path(__file__).resolve().parents[1] / "benchmarks"


class _Event:
    def __init__(self, **_: object) -> None:
        self.t = 0.0

    def record(self) -> None:
        self.t = time.perf_counter()

    def elapsed_time(self, other: _Event) -> float:
        return (other.t - self.t) * 1e3


class _Graph:
    def replay(self) -> None:
        pass


class _Stream:
    def wait_stream(self, other: object) -> None:
        pass


@pytest.fixture
def fake_cuda(monkeypatch):
    """CUDA's timing API on the host; the scripts' tensors stay on the CPU."""
    fakes = {"Event": _Event, "synchronize": lambda *a: None, "is_available": lambda: True,
             "get_device_name": lambda *a: "fake GPU", "CUDAGraph": _Graph,
             "graph": lambda g: contextlib.nullcontext(), "Stream": _Stream,
             "current_stream": lambda: _Stream(), "stream": lambda s: contextlib.nullcontext()}
    for name, value in fakes.items():
        monkeypatch.setattr(torch.cuda, name, value)
    monkeypatch.syspath_prepend(str(BENCH))
    with tk.on_cpu():
        yield


def script(name: str, monkeypatch, argv: list[str]):
    sys.modules.pop(name, None)
    module = importlib.import_module(name)
    monkeypatch.setattr(sys, "argv", [name, *argv])
    return module


def test_segment_reduce_and_tiles(fake_cuda, monkeypatch, tmp_path):
    sr = script("segment_reduce", monkeypatch, ["--shapes", "3,12,20", "--json", str(tmp_path / "s.json")])
    monkeypatch.setattr(sr, "DEV", "cpu")
    monkeypatch.setattr(sr, "CONFIGS", [(4, 8, 1)])
    real_timed, real_host, real_graph = sr.timed, sr.host_ms, sr.graph_timed
    monkeypatch.setattr(sr, "timed", lambda fn, reps=1, rounds=1: real_timed(fn, 1, 1))
    monkeypatch.setattr(sr, "host_ms", lambda fn, calls=1: real_host(fn, 1))
    monkeypatch.setattr(sr, "graph_timed", lambda fn, reps=1: real_graph(fn, 1))
    assert sr.main() == 0
    report = json.loads((tmp_path / "s.json").read_text())
    assert [r["dtype"] for r in report["runs"]] == ["float32", "bfloat16"]
    cases = {r["case"] for r in report["runs"][0]["rows"]}
    assert {"mean padded: triton", "mean packed: torch.segment_reduce", "max packed: pytorch path"} <= cases
    assert report["runs"][0]["max_abs_err_vs_fp32_mean"] < 1e-5 and len(report["runs"][0]["launch"]) == 5
    assert "Fastest launch configurations" in sr.markdown(report)

    tiles = script("triton_tiles", monkeypatch, ["--json", str(tmp_path / "t.json")])
    monkeypatch.setattr(tiles, "DEV", "cpu")
    monkeypatch.setattr(tiles, "SHAPES", [(2, 8, 16)])
    monkeypatch.setattr(tiles, "TILES", [(4, 8, 1)])
    assert tiles.main() == 0
    rows = json.loads((tmp_path / "t.json").read_text())["rows"]
    assert [r["acc2d"] for r in rows] == [False, True, False, True]
    assert all(r["max_abs_diff"] < 1e-2 for r in rows)


def test_knn_gpu(fake_cuda, monkeypatch, tmp_path):
    kg = script("knn_gpu", monkeypatch, ["--samples", "300", "--budget", "1",
                                         "--json", str(tmp_path / "k.json")])
    monkeypatch.setattr(kg, "DEVICE", "cpu")
    short = {**kg.AGREEMENT_RUN, "num_samples": 300, "epochs": 1, "depth": 1}
    monkeypatch.setattr(kg, "AGREEMENT_RUN", short)
    paper = kg.PRESETS["paper-gpu"]  # one layer instead of twelve: the script's logic, not its cost
    monkeypatch.setitem(kg.PRESETS, "paper-gpu", dataclasses.replace(paper, base={**paper.base, "depth": 1}))
    monkeypatch.setenv("POOLWISE_CACHE", str(tmp_path / "cache"))
    assert kg.main() == 0
    report = json.loads((tmp_path / "k.json").read_text())
    assert report["agreement"]["loss_rel_diff"] == 0.0  # CPU against CPU here
    assert report["throughput"]["paper_gpu_runs"] == 32 and [r["pooler"] for r in report["runs"]] == [
        "adapool", "max", "mean"]
    assert "paper-gpu" in kg.markdown(report)
