"""Sweep presets of the RL reproduction (AdaPool paper, section 3 of our notes).

Environments a preset does not list run with ``--env``, on the preset's settings for them
(``--env boxworld --preset quick``: entities and pixels, 262k steps per run).

``paper`` is the paper's protocol (PPO settings, model sizes, steps and seeds per environment;
cluster scale). ``quick`` and ``demo`` keep the paper's models and PPO loss settings but
train for far fewer steps with 4 PPO epochs over minibatches of 1024 instead of 16-32 epochs
over the whole batch, so that a 2-core machine can run them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..envs import ENVS

POOLERS = ("adapool", "mean", "max", "cls_token")


@dataclass(frozen=True)
class RLPreset:
    description: str
    #: env -> its noise configurations, from noiseless to noisiest
    configs: dict[str, tuple[str, ...]]
    #: env -> RLConfig overrides
    base: dict[str, dict[str, Any]] = field(default_factory=dict)
    poolers: tuple[str, ...] = POOLERS
    seeds: tuple[int, ...] = (0, 1, 2)
    #: env -> seeds, where an environment differs from ``seeds``
    env_seeds: dict[str, tuple[int, ...]] = field(default_factory=dict)

    def seeds_for(self, env: str) -> tuple[int, ...]:
        return self.env_seeds.get(env, self.seeds)


#: 32 copies x 128 steps per iteration, 4 epochs over minibatches of 1024, one torch thread per run
_LAPTOP = {"num_envs": 32, "n_steps": 128, "batch_size": 1024, "epochs": 4, "threads": 1}

PRESETS: dict[str, RLPreset] = {
    "paper": RLPreset(
        "the paper's protocol: every configuration of the three environments, the paper's PPO "
        "settings and steps (1M centroid, 4.1M tag, 43M boxworld per run), 10-20 seeds; cluster scale "
        "(see the docs for the estimate from measured steps/s)",
        {name: spec.configs for name, spec in ENVS.items()},
        {"tag": {}, "centroid": {}, "boxworld": {}},
        seeds=tuple(range(1, 11)), env_seeds={"tag": tuple(range(1, 21))}),
    "quick": RLPreset(
        "Simple Tag at 0 and 28 obstacles and Simple Centroid at 1v31v0 and 1v1v30, 4 poolers, "
        "3 seeds, 307k (tag) / 102k (centroid) steps: about 45 minutes on 2 cores",
        {"tag": ("1v3v0", "1v3v28"), "centroid": ("1v31v0", "1v1v30")},
        {"tag": {**_LAPTOP, "steps": 75 * 4096}, "centroid": {**_LAPTOP, "steps": 25 * 4096},
         "boxworld": {**_LAPTOP, "steps": 64 * 4096}}),
    "demo": RLPreset(
        "Simple Centroid at 1v31v0 and 1v1v30, AdaPool and AvgPool, 1 seed, 49k steps: about 3 minutes "
        "on 2 cores",
        {"centroid": ("1v31v0", "1v1v30")},
        {"centroid": {**_LAPTOP, "steps": 12 * 4096}, "tag": {**_LAPTOP, "steps": 12 * 4096},
         "boxworld": {**_LAPTOP, "steps": 12 * 4096}},
        poolers=("adapool", "mean"), seeds=(0,)),
}
