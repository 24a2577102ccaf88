"""benchmarks/ab_knn_train.py: its table, its refusal of a wrong --old, and one real
alternating round at a tiny size (this checkout against itself: the ratio is near 1)."""

from __future__ import annotations

from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"


@pytest.fixture()
def ab(benchmark_script):
    return benchmark_script("ab_knn_train")


def test_a_wrong_old_tree_is_refused_in_one_line(ab, tmp_path, capsys):
    with pytest.raises(SystemExit) as err:
        ab.main(["--old", str(tmp_path)])
    assert err.value.code == 2
    assert "is not a src directory holding a poolwise package" in capsys.readouterr().err


def test_markdown_names_the_cpu_and_both_ratios(ab):
    md = ab.markdown({"cpu": "Some CPU (avx2)", "threads": 1, "rounds": 3, "old": "/x/src",
                      "rows": [{"depth": 12, "batch": 750, "old": 123.4, "new": 185.2, "ratio": 1.5008,
                                "reference_ratio": 1.07}]})
    assert "Some CPU (avx2)" in md and "| 12 | 750 | 123 | 185 | **1.50x** | 1.07 |" in md


def test_one_round_against_this_checkout(ab, monkeypatch, tmp_path):
    monkeypatch.setattr(ab, "CONFIGS", ((1, 4),))
    out = tmp_path / "r.json"
    assert ab.main(["--old", str(SRC), "--rounds", "1", "--json", str(out)]) == 0
    row = __import__("json").loads(out.read_text())["rows"][0]
    assert row["old"] > 0 and row["new"] > 0 and 0.2 < row["ratio"] < 5
