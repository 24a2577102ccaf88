"""How low can a single-query softmax pool go on kNN-Centroid? Closed-form reference points.

For every k, on the quick preset's data (20,000 samples, data seed 0, same test split):

* the two baselines of the protocol (predict the centroid of all vectors; predict the query);
* ``oracle-distance``: softmax over the exact negative squared distances to the query,
  :math:`a_i \\propto \\exp(-\\lVert x_i - x_0\\rVert^2 / \\tau)` (query excluded), with the best
  single temperature :math:`\\tau` chosen on the validation split. This is the best an
  AdaPool head can do when the encoder hands it perfect distances but no per-sample
  sharpening: a one-layer model cannot beat it;
* ``oracle-dot``: the same without the :math:`\\lVert x_i\\rVert^2` term (scores
  :math:`2\\,x_0^\\top x_i / \\tau`), which is what the bilinear score gives when the encoder
  does not supply token norms (pre-LN layers normalise them away).

    python benchmarks/knn_ceiling.py [--samples 20000] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from poolwise.data import KNN_VALUES, knn_baselines, knn_centroid
from poolwise.experiments.knn import KNNConfig, _splits

TAUS = torch.logspace(-3, 1.5, 91)


def _soft_pool_loss(x: torch.Tensor, y: torch.Tensor, scores: torch.Tensor) -> float:
    w = torch.softmax(scores, dim=1)
    return float(((w[..., None] * x).sum(1) - y).pow(2).mean())


def ceiling(k: int, samples: int, data_seed: int = 0) -> dict[str, float]:
    x, y = knn_centroid(samples, k, seed=data_seed)
    _, val, test = _splits(KNNConfig(k=k, num_samples=samples, data_seed=data_seed))
    out = {"k": k, "snr": k / x.shape[1]}
    out.update({f"baseline_{n}": v for n, v in knn_baselines(x[test], y[test]).items()})
    for name in ("distance", "dot"):
        def scores(part: slice, tau: float, name: str = name) -> torch.Tensor:
            xs = x[part]
            if name == "distance":
                s = -((xs - xs[:, :1]) ** 2).sum(-1) / tau
            else:
                s = 2 * (xs * xs[:, :1]).sum(-1) / tau
            s[:, 0] = float("-inf")  # the target excludes the query itself
            return s

        val_loss = [_soft_pool_loss(x[val], y[val], scores(val, float(t))) for t in TAUS]
        tau = float(TAUS[min(range(len(TAUS)), key=val_loss.__getitem__)])
        out[f"oracle_{name}"] = _soft_pool_loss(x[test], y[test], scores(test, tau))
        out[f"oracle_{name}_tau"] = tau
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--samples", type=int, default=20_000)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)
    rows = [ceiling(k, args.samples) for k in KNN_VALUES]
    print(f"{'k':>4}{'SNR':>7}{'centroid':>10}{'query':>9}{'oracle-dist':>13}{'oracle-dot':>12}")
    for r in rows:
        print(f"{r['k']:>4}{r['snr']:>7.3f}{r['baseline_centroid']:>10.4f}{r['baseline_query']:>9.4f}"
              f"{r['oracle_distance']:>13.5f}{r['oracle_dot']:>12.5f}")
    if args.json:
        args.json.write_text(json.dumps({"samples": args.samples, "rows": rows}, indent=1))
        print(f"JSON written to {args.json}")


if __name__ == "__main__":
    main()
