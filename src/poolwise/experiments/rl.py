"""The AdaPool paper's RL protocol (reference notes section 3): PPO on a vectorised token
environment, one policy per pooler, the mean episode return logged per iteration."""

from __future__ import annotations

import base64
import dataclasses
import math
import time
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import torch

from ..envs import ENVS, make_env
from ..envs.registry import signal_noise
from ..models import CLS_TOKEN
from ..models.token_policy import PAPER_SIZES
from ..pooling import list_poolers
from .fit import Progress
from .registry import register_task

TASK = "adapool-rl"
#: the paper's PPO settings (RLlib, old API stack) per environment: parallel envs x fragment =
#: batch = minibatch; iterations x batch = env steps of one run
PAPER_PPO: dict[str, dict[str, Any]] = {
    "centroid": {"num_envs": 32, "n_steps": 128, "batch_size": 4096, "epochs": 16, "lr": 2.5e-3,
                 "vf_coef": 0.05, "ent_coef": 0.0, "steps": 250 * 4096},
    "tag": {"num_envs": 64, "n_steps": 128, "batch_size": 8192, "epochs": 16, "lr": 2.5e-3,
            "vf_coef": 5e-4, "ent_coef": 0.005, "steps": 500 * 8192},
    "boxworld": {"num_envs": 96, "n_steps": 150, "batch_size": 14400, "epochs": 32, "lr": 2.5e-3,
                 "vf_coef": 0.01, "ent_coef": 0.0, "steps": 3000 * 14400},
}
SHARED_ALIASES = ("pi_features_extractor.", "vf_features_extractor.")
MODEL_KEYS = ("dim", "depth", "num_heads", "ffn_dim", "init_std")
PPO_KEYS = ("num_envs", "n_steps", "batch_size", "epochs", "lr", "vf_coef", "ent_coef", "steps")


def known_pooler(name: str) -> bool:
    return name == CLS_TOKEN or name in list_poolers(aliases=True)


@dataclass(frozen=True)
class RLConfig:
    """One PPO run. Model sizes and PPO settings left at ``None`` take the paper's values for
    ``env`` (:data:`~poolwise.models.token_policy.PAPER_SIZES`, :data:`PAPER_PPO`); the
    resolved values are stored, so they are part of the run's key.

    ``config`` is the noise configuration: ``1v3vO`` (tag), ``1vKvM`` (centroid),
    ``entities`` / ``pixels`` (boxworld). ``steps`` is the number of environment steps, rounded
    up to whole iterations of ``num_envs x n_steps``."""

    env: str = "tag"
    config: str = "1v3v0"
    pooler: str = "adapool"
    seed: int = 0
    steps: int | None = None
    num_envs: int | None = None
    n_steps: int | None = None
    batch_size: int | None = None
    epochs: int | None = None
    lr: float | None = None
    vf_coef: float | None = None
    ent_coef: float | None = None
    gamma: float = 0.99
    gae_lambda: float = 0.95
    clip_range: float = 0.2
    max_grad_norm: float = 10.0
    dim: int | None = None
    depth: int | None = None
    num_heads: int | None = None
    ffn_dim: int | None = None
    init_std: float | None = None
    dropout: float = 0.1
    pooler_kwargs: dict[str, Any] = field(default_factory=dict)
    eval_episodes: int = 256
    threads: int = 0  # torch threads for this run; 0 leaves torch's setting
    key_optional: ClassVar[tuple[str, ...]] = ("threads",)

    def __post_init__(self) -> None:
        if self.env not in ENVS:
            raise ValueError(f"unknown env {self.env!r}; choose from {', '.join(ENVS)}")
        make_env(self.env, self.config, 1)  # validates the configuration
        if not known_pooler(self.pooler):
            raise ValueError(f"unknown pooler {self.pooler!r}; use {CLS_TOKEN} or one of: "
                             f"{', '.join(list_poolers())}")
        for key in MODEL_KEYS:
            if getattr(self, key) is None:
                object.__setattr__(self, key, PAPER_SIZES[self.env][key])
        for key in PPO_KEYS:
            if getattr(self, key) is None:
                object.__setattr__(self, key, PAPER_PPO[self.env][key])
        for key in ("steps", "num_envs", "n_steps", "batch_size", "epochs", "dim", "depth", "num_heads",
                    "ffn_dim", "eval_episodes"):
            value = getattr(self, key)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{key} must be a positive int; got {value!r}")
        if not isinstance(self.seed, int) or isinstance(self.seed, bool) or self.seed < 0:
            raise ValueError(f"seed must be an int >= 0; got {self.seed!r}")
        if self.dim % self.num_heads:
            raise ValueError(f"num_heads={self.num_heads} must divide dim={self.dim}")
        if self.batch_size > self.num_envs * self.n_steps:
            raise ValueError(f"batch_size={self.batch_size} exceeds the rollout num_envs x n_steps = "
                             f"{self.num_envs * self.n_steps}")
        for key in ("lr", "init_std", "clip_range", "max_grad_norm"):
            if not getattr(self, key) > 0:
                raise ValueError(f"{key} must be > 0; got {getattr(self, key)!r}")
        for key in ("gamma", "gae_lambda", "dropout"):
            if not 0 <= getattr(self, key) <= 1:
                raise ValueError(f"{key} must be in [0, 1]; got {getattr(self, key)!r}")
        if self.vf_coef < 0 or self.ent_coef < 0:
            raise ValueError("vf_coef and ent_coef must be >= 0")
        if not isinstance(self.threads, int) or self.threads < 0:
            raise ValueError(f"threads must be an int >= 0; got {self.threads!r}")

    @property
    def iterations(self) -> int:
        return math.ceil(self.steps / (self.num_envs * self.n_steps))

    @property
    def snr(self) -> float:
        """Signal entities over all the entities the agent sees but itself."""
        k, m = signal_noise(self.env, self.config)
        return k / (k + m)

    def encoder_kwargs(self, query_index: int, roles: bool) -> dict[str, Any]:
        return {"dim": self.dim, "depth": self.depth, "num_heads": self.num_heads, "ffn_dim": self.ffn_dim,
                "pooler": self.pooler, "pooler_kwargs": dict(self.pooler_kwargs),
                "query_index": query_index, "roles": roles, "dropout": self.dropout,
                "init_std": self.init_std}

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def build_ppo(cfg: RLConfig) -> tuple[Any, Any]:
    """The SB3 PPO learner and its :class:`~poolwise.experiments.rl_sb3.TokenVecEnv`."""
    from stable_baselines3 import PPO

    from .rl_sb3 import TokenFeatures, TokenPolicy, TokenVecEnv

    env = make_env(cfg.env, cfg.config, cfg.num_envs, seed=cfg.seed)
    venv = TokenVecEnv(env, seed=cfg.seed)
    policy_kwargs = {"features_extractor_class": TokenFeatures, "init_std": cfg.init_std,
                     "features_extractor_kwargs": cfg.encoder_kwargs(env.query_index, env.roles)}
    torch.manual_seed(cfg.seed)
    model = PPO(TokenPolicy, venv, learning_rate=cfg.lr, n_steps=cfg.n_steps, batch_size=cfg.batch_size,
                n_epochs=cfg.epochs, gamma=cfg.gamma, gae_lambda=cfg.gae_lambda, clip_range=cfg.clip_range,
                ent_coef=cfg.ent_coef, vf_coef=cfg.vf_coef, max_grad_norm=cfg.max_grad_norm,
                policy_kwargs=policy_kwargs, seed=cfg.seed, device="cpu", verbose=0)
    return model, venv


def evaluate(policy: Any, cfg: RLConfig, episodes: int, seed: int, deterministic: bool = False) -> np.ndarray:
    """Returns of ``episodes`` fresh episodes (copies stepped together) under ``policy``
    (``None``: uniform random actions)."""
    env = make_env(cfg.env, cfg.config, episodes, seed=seed)
    obs = env.reset()
    total = np.zeros(episodes)
    finished = np.zeros(episodes, dtype=bool)
    for _ in range(env.max_steps):
        if policy is None:
            act = env.random_actions()
        else:
            act, _ = policy.predict(obs, deterministic=deterministic)
        r = env.step(act)
        total += np.where(finished, 0.0, r.reward)
        finished |= r.done
        obs = r.obs
        if finished.all():
            break
    return total


def policy_bytes(policy: torch.nn.Module) -> str:
    """The policy's weights as safetensors bytes, base64 (stored with the run's metrics). SB3
    lists the shared body three times (``features_extractor``, ``pi_...``, ``vf_...``): it is
    saved once."""
    from safetensors.torch import save

    state = {k: v.detach().cpu().contiguous() for k, v in policy.state_dict().items()
             if not k.startswith(SHARED_ALIASES)}
    return base64.b64encode(save(state)).decode()


def load_policy_bytes(policy: torch.nn.Module, blob: str) -> None:
    """Load :func:`policy_bytes` into an SB3 policy of the same configuration."""
    from safetensors.torch import load

    missing, unexpected = policy.load_state_dict(load(base64.b64decode(blob)), strict=False)
    missing = [k for k in missing if not k.startswith(SHARED_ALIASES)]
    if missing or unexpected:
        raise ValueError(f"checkpoint does not fit this policy: missing {missing[:3]}, "
                         f"unexpected {unexpected[:3]}")


def run_rl(cfg: RLConfig, progress: Progress | None = None) -> dict[str, Any]:
    """Train with PPO for ``cfg.steps`` environment steps; log the mean return per iteration;
    score the final policy (sampled actions) and a random policy on ``eval_episodes`` fresh
    episodes of the same seed."""
    from .rl_sb3 import IterationLog

    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    start = time.perf_counter()
    model, venv = build_ppo(cfg)
    log = IterationLog(venv, cfg.iterations, progress)
    model.learn(total_timesteps=cfg.iterations * cfg.num_envs * cfg.n_steps, callback=log)
    train_s = time.perf_counter() - start
    model.policy.set_training_mode(False)
    final = evaluate(model.policy, cfg, cfg.eval_episodes, seed=10_000 + cfg.seed)
    rand = evaluate(None, cfg, cfg.eval_episodes, seed=10_000 + cfg.seed)
    rows = log.rows
    tail = [r["return_mean"] for r in rows[-max(1, len(rows) // 10):] if not math.isnan(r["return_mean"])]
    return {
        "metrics": {
            "final_return": float(final.mean()), "final_return_std": float(final.std()),
            "random_return": float(rand.mean()), "last10pct_return": float(np.mean(tail)) if tail else None,
            "env_steps": int(model.num_timesteps), "iterations": len(rows), "snr": cfg.snr,
            "tokens": make_env(cfg.env, cfg.config, 1).num_tokens,
            "env_steps_per_s": model.num_timesteps / max(train_s, 1e-9),
            "env_share": venv.env_seconds / max(train_s, 1e-9),
            "parameters": sum(p.numel() for p in model.policy.parameters()),
            "checkpoint": policy_bytes(model.policy),
        },
        "history": rows,
    }


register_task(TASK, RLConfig, run_rl,
              "PPO with a token transformer + pooler on MPE Simple Tag / Simple Centroid / BoxWorld")


def load_checkpoint(path: str) -> tuple[RLConfig, str]:
    """``(config, weights)`` of a checkpoint written by the RL report (safetensors with the
    run's config in its metadata); a clear ``ValueError`` for anything else."""
    import json

    from safetensors import safe_open
    from safetensors.torch import load_file, save

    try:
        with safe_open(path, framework="pt") as f:
            meta = f.metadata() or {}
    except Exception as err:  # safetensors raises its own error types for foreign files
        raise ValueError(f"{path} is not a safetensors file ({type(err).__name__}: {err})") from None
    if meta.get("poolwise_task") != TASK or "config" not in meta:
        raise ValueError(f"{path} is not a poolwise RL checkpoint (no {TASK} config in its metadata)")
    cfg = RLConfig(**json.loads(meta["config"]))
    return cfg, base64.b64encode(save(load_file(path))).decode()


def play_episode(cfg: RLConfig, weights: str, seed: int = 0,
                 deterministic: bool = False) -> tuple[list[dict[str, Any]], float]:
    """One episode of the trained policy: a frame per step (``pos``/``roles`` for MPE,
    ``rgb`` for BoxWorld, and the return so far) and the episode's return."""
    one = dataclasses.replace(cfg, num_envs=1, batch_size=min(cfg.batch_size, cfg.n_steps))
    model, _ = build_ppo(one)
    load_policy_bytes(model.policy, weights)
    model.policy.set_training_mode(False)
    env = make_env(cfg.env, cfg.config, 1, seed=seed)
    obs = env.reset()
    frames, total = [], 0.0

    def frame() -> dict[str, Any]:
        if hasattr(env, "rgb"):
            return {"rgb": env.rgb()[0].copy(), "return": total}
        pos, roles = env.entity_positions()
        return {"pos": pos[0].copy(), "roles": roles, "return": total}

    frames.append(frame())
    for _ in range(env.max_steps):
        act, _ = model.policy.predict(obs, deterministic=deterministic)
        r = env.step(act)
        total += float(r.reward[0])
        if r.done[0]:
            frames.append({**frames[-1], "return": total, "final": True})
            break
        obs = r.obs
        frames.append(frame())
    return frames, total
