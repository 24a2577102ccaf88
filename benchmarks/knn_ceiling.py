"""How low can a single-query softmax pool go on kNN-Centroid? Closed-form reference points.

For every k, on the quick preset's data (20,000 samples, data seed 0, same splits), each line
pools the vectors with softmax weights over a closed-form score of their squared distance
:math:`d_i^2 = \\lVert x_i - x_0\\rVert^2` to the query (the query itself excluded), with its
free parameters chosen on the validation split and the loss reported on the test split:

* the two baselines of the protocol (predict the centroid of all vectors; predict the query);
* ``oracle-dot``: scores :math:`2\\,x_0^\\top x_i / \\tau` (no :math:`\\lVert x_i\\rVert^2`
  term), what the bilinear score gives when the encoder does not supply token norms;
* ``oracle-distance``: :math:`-d_i^2/\\tau` with one global temperature;
* ``median-temperature``: :math:`-d_i^2 / (c\\,m)` with :math:`m` the sample's median
  :math:`d_j^2`: a temperature that follows each sample's scale;
* ``power-normalised``: :math:`-b\\,(d_i^2/m)^p` with :math:`p \\in \\{1, \\dots, 6\\}`
  and :math:`b` chosen on the validation split (sharper than any softmax of distances alone);
* ``per-sample-best-temperature``: :math:`-d_i^2/\\tau_s` with each test sample's own best
  :math:`\\tau_s` (picked with its target, so optimistic: the best any single temperature per
  sample can do with exact distances).

None of these is a bound on a learned AdaPool head: its scores are learned functions of the
tokens, and its effective temperature :math:`\\lVert W_Q h_0\\rVert` varies per sample. They
are reference points that say how much a head gains from per-sample sharpening.

    python benchmarks/knn_ceiling.py [--samples 20000] [--json out.json] [--md out.md]
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path

import torch

from poolwise.data import KNN_VALUES, knn_baselines, knn_centroid
from poolwise.experiments.knn import KNNConfig, _splits

TAUS = torch.logspace(-3, 1.5, 91)
SCALES = torch.logspace(-2, 3, 51)
POWERS = (1, 2, 3, 4, 5, 6)
LINES = ("oracle_dot", "oracle_distance", "median_temperature", "power_normalised",
         "per_sample_best_temperature")


def _pool_loss(x: torch.Tensor, y: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
    """Per-sample squared error of the softmax(scores)-weighted mean of ``x`` against ``y``."""
    w = torch.softmax(scores, dim=1)
    return ((w[..., None] * x).sum(1) - y).pow(2).mean(-1)


def _fit(x: torch.Tensor, y: torch.Tensor, val: slice, test: slice,
         score: Callable[[torch.Tensor, float], torch.Tensor], grid: torch.Tensor) -> tuple[float, float]:
    """Test loss of ``score(part, param)`` with the parameter of the grid best on validation."""
    val_loss = [float(_pool_loss(x[val], y[val], score(x[val], float(g))).mean()) for g in grid]
    best = float(grid[min(range(len(grid)), key=val_loss.__getitem__)])
    return float(_pool_loss(x[test], y[test], score(x[test], best)).mean()), best


def _sq_dist(xs: torch.Tensor) -> torch.Tensor:
    d2 = ((xs - xs[:, :1]) ** 2).sum(-1)
    d2[:, 0] = float("inf")  # the target excludes the query itself
    return d2


def _median(d2: torch.Tensor) -> torch.Tensor:
    return d2[:, 1:].median(dim=1, keepdim=True).values


def ceiling(k: int, samples: int, data_seed: int = 0) -> dict[str, float]:
    x, y = knn_centroid(samples, k, seed=data_seed)
    x, y = x.double(), y.double()
    _, val, test = _splits(KNNConfig(k=k, num_samples=samples, data_seed=data_seed))
    out: dict[str, float] = {"k": k, "snr": k / x.shape[1]}
    out.update({f"baseline_{n}": v for n, v in knn_baselines(x[test].float(), y[test].float()).items()})

    def dot(xs: torch.Tensor, tau: float) -> torch.Tensor:
        s = 2 * (xs * xs[:, :1]).sum(-1) / tau
        s[:, 0] = float("-inf")
        return s

    def distance(xs: torch.Tensor, tau: float) -> torch.Tensor:
        return -_sq_dist(xs) / tau

    def median_temperature(xs: torch.Tensor, c: float) -> torch.Tensor:
        d2 = _sq_dist(xs)
        return -d2 / (c * _median(d2))

    out["oracle_dot"], out["oracle_dot_tau"] = _fit(x, y, val, test, dot, TAUS)
    out["oracle_distance"], out["oracle_distance_tau"] = _fit(x, y, val, test, distance, TAUS)
    out["median_temperature"], out["median_temperature_c"] = _fit(x, y, val, test, median_temperature, TAUS)
    best: tuple[float, float, int] | None = None
    for p in POWERS:
        def power(xs: torch.Tensor, b: float, p: int = p) -> torch.Tensor:
            d2 = _sq_dist(xs)
            return -b * (d2 / _median(d2)) ** p

        val_loss = [float(_pool_loss(x[val], y[val], power(x[val], float(b))).mean()) for b in SCALES]
        i = min(range(len(SCALES)), key=val_loss.__getitem__)
        if best is None or val_loss[i] < best[0]:
            best = (val_loss[i], float(SCALES[i]), p)
    assert best is not None
    _, b, p = best
    d2 = _sq_dist(x[test])
    out["power_normalised"] = float(_pool_loss(x[test], y[test], -b * (d2 / _median(d2)) ** p).mean())
    out["power_normalised_b"], out["power_normalised_p"] = b, p
    per_tau = torch.stack([_pool_loss(x[test], y[test], distance(x[test], float(t))) for t in TAUS])
    out["per_sample_best_temperature"] = float(per_tau.min(dim=0).values.mean())
    return out


def markdown(rows: list[dict[str, float]], samples: int) -> str:
    names = {
        "oracle_dot": "dot product only, best temperature",
        "oracle_distance": "exact distances, best global temperature",
        "median_temperature": "exact distances, temperature x sample's median distance",
        "power_normalised": "power-normalised distances (p, b chosen on validation)",
        "per_sample_best_temperature":
            "exact distances, each sample's best temperature (peeks at the target)",
    }
    head = " | ".join(f"{int(r['k'])} ({r['snr']:.3g})" for r in rows)
    title = f"kNN-Centroid closed-form reference points: test signal loss, {samples:,} samples, data seed 0."
    lines = [title, "", f"| line | {head} |", "|---" * (len(rows) + 1) + "|"]
    for key in ("baseline_centroid", "baseline_query", *LINES):
        label = names.get(key, key.replace("baseline_", "baseline: predict the "))
        cells = []
        for r in rows:
            v = r[key]
            num = f"{v:.4f}" if v >= 1e-3 or v == 0 else f"{v:.1e}"
            cells.append(num + (f" (p={int(r['power_normalised_p'])})" if key == "power_normalised" else ""))
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--samples", type=int, default=20_000)
    ap.add_argument("--k", default=",".join(map(str, KNN_VALUES)), help="comma-separated k values")
    ap.add_argument("--json", type=Path)
    ap.add_argument("--md", type=Path)
    args = ap.parse_args(argv)
    rows = [ceiling(int(k), args.samples) for k in args.k.split(",")]
    md = markdown(rows, args.samples)
    print(md)
    if args.json:
        args.json.write_text(json.dumps({"samples": args.samples, "rows": rows}, indent=1) + "\n")
    if args.md:
        args.md.write_text(md)


if __name__ == "__main__":
    main()
