"""Environment names and noise configurations: ``tag`` (obstacles O), ``centroid`` (signal K,
noise M; 32 entities), ``boxworld`` (entities or pixels), as in the paper's configs."""

from __future__ import annotations

from dataclasses import dataclass

from .base import VecTokenEnv
from .boxworld import BoxWorld
from .centroid import SimpleCentroid
from .tag import SimpleTag


@dataclass(frozen=True)
class EnvSpec:
    """An environment's name, its configurations and a one-line description."""

    name: str
    #: the paper's configurations, from noiseless to noisiest
    configs: tuple[str, ...]
    description: str


ENVS: dict[str, EnvSpec] = {
    "tag": EnvSpec("tag", ("1v3v0", "1v3v4", "1v3v12", "1v3v28"),
                   "MPE Simple Tag: 1 predator, 3 random prey (signal), O obstacles (noise); 1v3vO"),
    "centroid": EnvSpec("centroid", ("1v31v0", "1v15v16", "1v3v28", "1v1v30"),
                        "MPE Simple Centroid: 1 learner, K signal agents, M noise landmarks; 1vKvM"),
    "boxworld": EnvSpec("boxworld", ("entities", "pixels"),
                        "BoxWorld 7x7, goal length 2, up to 2 distractors; entity or pixel tokens"),
}
"""Every environment by name, with the paper's noise configurations from noiseless to noisiest."""


def env_spec(name: str) -> EnvSpec:
    """The :class:`EnvSpec` of ``name``; ``ValueError`` lists the known environments."""
    if name not in ENVS:
        raise ValueError(f"unknown environment {name!r}; choose from {', '.join(ENVS)}")
    return ENVS[name]


def _counts(config: str, env: str) -> tuple[int, int, int]:
    parts = config.split("v")
    if len(parts) != 3 or not all(p.isdigit() for p in parts) or parts[0] != "1":
        raise ValueError(f"config {config!r} of {env} must read 1vKvM (e.g. "
                         f"{ENVS[env].configs[-1]}); known: {', '.join(ENVS[env].configs)}")
    return tuple(int(p) for p in parts)  # type: ignore[return-value]


def signal_noise(env: str, config: str) -> tuple[int, int]:
    """(signal, noise) entity counts of a configuration (BoxWorld: tokens that are not floor
    at most, and the rest)."""
    if env == "boxworld":
        probe = make_env(env, config, 1)
        entities = 7
        return entities, probe.num_tokens - 1 - entities
    _, k, m = _counts(config, env)
    return k, m


def make_env(env: str, config: str, num_envs: int, seed: int | None = None, **kwargs: object) -> VecTokenEnv:
    """``num_envs`` copies of ``env`` in ``config`` (``tag``: ``1v3vO``; ``centroid``:
    ``1vKvM``; ``boxworld``: ``entities`` or ``pixels``)."""
    env_spec(env)
    if env == "boxworld":
        if config not in ENVS[env].configs:
            raise ValueError(f"config {config!r} of boxworld must be entities or pixels")
        return BoxWorld(num_envs, config, seed=seed, **kwargs)  # type: ignore[arg-type]
    _, k, m = _counts(config, env)
    if env == "tag":
        if k != 3:
            raise ValueError(f"Simple Tag has 3 prey: config must read 1v3vO; got {config!r}")
        return SimpleTag(num_envs, m, seed=seed, **kwargs)  # type: ignore[arg-type]
    return SimpleCentroid(num_envs, k, m, seed=seed, **kwargs)  # type: ignore[arg-type]
