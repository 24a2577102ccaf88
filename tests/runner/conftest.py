import pytest

from poolwise.experiments import register_task

TINY = {"num_samples": 40, "num_vectors": 16, "dim": 4, "depth": 1, "num_heads": 2, "ffn_dim": 8,
        "epochs": 1, "batch_size": 16, "lr": 1e-3}


class FailConfig:
    def __init__(self, value: int = 0, fail: bool = True) -> None:
        if value < 0:
            raise ValueError("value must be >= 0")
        self.value, self.fail = value, fail

    def to_dict(self):
        return {"value": self.value, "fail": self.fail}


def run_fail(cfg, progress=None):
    if cfg.fail:
        raise RuntimeError(f"boom {cfg.value}")
    return {"metrics": {"value": cfg.value}, "history": []}


register_task("test-fail", FailConfig, run_fail, "a task that fails on demand (tests)")


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("POOLWISE_CACHE", str(tmp_path / "cache"))
