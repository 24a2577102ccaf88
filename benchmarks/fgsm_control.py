"""FGSM control: is Sum's fragility the theorem's sqrt(n) or an optimisation effect?

With a linear head, Sum and Avg differ by the factor n: for one length, a head W/n on Sum is
the same classifier as W on Avg, and whether an L-inf step flips the prediction does not
depend on that rescaling. So the pooling's Lipschitz constant (Pool Me Wisely, Theorem 4.2)
cannot by itself make Sum easier to attack. What differs is optimisation: Adam's steps have
the same size in weight units, so on n-times-larger features they move the logits n times
more. The 2x2 control separates the two: the function (sum or mean) crossed with the scale
of the features the head is trained on (natural, or multiplied by a fixed constant: Sum
divided by the mean training length, Avg multiplied by it). Same data, seeds, optimiser and
budget as the Pool Me Wisely study's attack; Welch tests over seeds, Holm over the table.

    python benchmarks/fgsm_control.py --tasks text-bbc,text-rt,vision-mnist,ts-japanesevowels \
        --seeds 0,1,2,3,4 --out docs/results/fgsm-control
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
from torch import nn

from poolwise import get_pooler
from poolwise.experiments.frozen import FrozenConfig, load_task_features, run_frozen
from poolwise.report.stats import summary
from poolwise.report.verdicts import RULE, better, holm

EPS = 0.03  # the study's middle budget
VARIANTS = ("mean", "sum", "sum / n_bar", "mean x n_bar")


class Scaled(nn.Module):
    """A parameter-free pooler times a fixed constant (the same function class under a
    linear head; only the scale the optimiser sees changes)."""

    def __init__(self, name: str, scale: float) -> None:
        super().__init__()
        self.inner, self.scale = get_pooler(name), float(scale)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.inner(x, mask) * self.scale

    def output_shape(self, dim: int) -> tuple[int, ...]:
        return self.inner.output_shape(dim)


def mean_length(task: str) -> float:
    feats = load_task_features(FrozenConfig(task=task, pooler="mean"))
    train = feats.splits["train"]
    _, mask, _ = train.batch(torch.arange(len(train)).numpy())
    return float(mask.sum(1).float().mean())


def run(task: str, variant: str, seed: int, nbar: float) -> dict[str, float]:
    name = "sum" if variant.startswith("sum") else "mean"
    pooler = None
    if variant == "sum / n_bar":
        pooler = Scaled("sum", 1 / nbar)
    elif variant == "mean x n_bar":
        pooler = Scaled("mean", nbar)
    cfg = FrozenConfig(task=task, pooler=name, seed=seed, attack_eps=(EPS,))
    m = run_frozen(cfg, pooler=pooler)["metrics"]
    return {"accuracy": m["value"], "fgsm": m[f"fgsm_{EPS:g}"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tasks", default="text-bbc,text-rt,vision-mnist,ts-japanesevowels")
    ap.add_argument("--seeds", default="0,1,2,3,4")
    ap.add_argument("--out", type=Path, help="folder for control.json and control.md")
    args = ap.parse_args()
    torch.set_num_threads(1)
    tasks, seeds = args.tasks.split(","), [int(s) for s in args.seeds.split(",")]
    rows, start = [], time.perf_counter()
    for task in tasks:
        nbar = mean_length(task)
        for variant in VARIANTS:
            for seed in seeds:
                r = run(task, variant, seed, nbar)
                rows.append({"task": task, "variant": variant, "seed": seed, "mean_length": nbar, **r})
                print(f"{task} {variant} seed {seed}: accuracy {r['accuracy']:.2f}, FGSM {r['fgsm']:.1f}%",
                      flush=True)
    md = ["# FGSM control: function or optimisation?", "",
          f"FGSM at eps {EPS:g} on the pooler's input (success %: correct test inputs the step makes "
          f"wrong, lower is more robust); {len(seeds)} seeds; mean ± sample std [95% interval]. "
          "n_bar: the task's mean training length (a fixed constant per task).", "",
          "| task | n_bar | " + " | ".join(f"{v}: FGSM %" for v in VARIANTS) + " | "
          + " | ".join(f"{v}: accuracy" for v in VARIANTS) + " |",
          "|---|---|" + "---|" * (2 * len(VARIANTS))]
    tests = []
    for task in tasks:
        part = [r for r in rows if r["task"] == task]
        fg = {v: [r["fgsm"] for r in part if r["variant"] == v] for v in VARIANTS}
        acc = {v: [r["accuracy"] for r in part if r["variant"] == v] for v in VARIANTS}
        md.append(f"| {task} | {part[0]['mean_length']:.1f} | "
                  + " | ".join(summary(fg[v]).text(1).replace(" [95% CI ±", " [±") for v in VARIANTS) + " | "
                  + " | ".join(summary(acc[v]).text(1).replace(" [95% CI ±", " [±") for v in VARIANTS) + " |")
        # lower success is better: "A beats B" = A attacked less
        for a, b, what in (("sum / n_bar", "sum", "rescaling Sum's features down makes it harder to attack"),
                           ("mean", "mean x n_bar", "rescaling Avg's features up makes it easier to attack"),
                           ("mean", "sum / n_bar", "Avg harder to attack than Sum at the same scale")):
            tests.append((task, what, better(fg, a, b, higher=False, unit=" points")))
    judged = holm([c for *_, c in tests])
    md += ["", "| task | claim | test (Holm over this table) |", "|---|---|---|"]
    md += [f"| {t} | {w} | {c.text()} |" for (t, w, _), c in zip(tests, judged)]
    md += ["", RULE, "", f"{len(rows)} runs in {time.perf_counter() - start:.0f} s (1 thread)."]
    text = "\n".join(md) + "\n"
    print(text)
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "control.json").write_text(json.dumps(rows, indent=1, ensure_ascii=False) + "\n")
        (args.out / "control.md").write_text(text)


if __name__ == "__main__":
    main()
