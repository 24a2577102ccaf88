"""What every vectorised token environment offers: ``num_envs`` copies stepped by one call,
observations as token sets ``(num_envs, num_tokens, token_dim)``, automatic reset."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class StepResult:
    """One vectorised step. ``obs`` already holds the first observation of a new episode where
    an episode ended (``terminated | truncated``); ``final_obs`` holds the last observation of
    the ended episodes (rows of the other environments are copies of ``obs``)."""

    obs: np.ndarray
    reward: np.ndarray
    terminated: np.ndarray
    truncated: np.ndarray
    final_obs: np.ndarray
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def done(self) -> np.ndarray:
        return self.terminated | self.truncated


class VecTokenEnv:
    """Base of the vectorised environments.

    Subclasses set ``num_tokens``, ``token_dim``, ``query_index`` (the agent's own token, the
    AdaPool query), ``action_kind`` (``"discrete"`` with ``num_actions``, or ``"continuous"``
    with ``action_dim`` in [-1, 1]), ``max_steps``, ``roles`` (whether feature 4 is an integer
    role), and implement ``_reset_rows(rows)``, ``_advance(actions) -> (reward, terminated)``
    and ``observe() -> tokens``. Randomness comes from one ``numpy.random.Generator`` seeded
    at ``reset(seed)``, so a seed fixes every episode of every copy.
    """

    num_tokens: int
    token_dim: int = 5
    query_index: int = 0
    action_kind: str = "discrete"
    num_actions: int = 0
    action_dim: int = 0
    max_steps: int
    roles: bool = True
    #: names of the token roles (feature 4), for plots and docs
    role_names: tuple[str, ...] = ()
    render_mode: str | None = None  # read by stable-baselines3

    def __init__(self, num_envs: int, seed: int | None = None) -> None:
        if not isinstance(num_envs, int) or isinstance(num_envs, bool) or num_envs < 1:
            raise ValueError(f"num_envs must be a positive int; got {num_envs!r}")
        self.num_envs = num_envs
        self.rng = np.random.default_rng(seed)
        self.t = np.zeros(num_envs, dtype=np.int64)
        self._seeded = seed is not None

    # -- to implement -------------------------------------------------------------------
    def _reset_rows(self, rows: np.ndarray) -> None:
        raise NotImplementedError

    def _advance(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        raise NotImplementedError

    def observe(self) -> np.ndarray:
        raise NotImplementedError

    # -- shared -------------------------------------------------------------------------
    def reset(self, seed: int | None = None) -> np.ndarray:
        """Start a fresh episode in every copy; returns the tokens ``(num_envs, N, F)``."""
        if seed is not None:
            self.rng = np.random.default_rng(seed)
        self.t[:] = 0
        self._reset_rows(np.arange(self.num_envs))
        return self.observe()

    def check_actions(self, actions: Any) -> np.ndarray:
        a = np.asarray(actions)
        if self.action_kind == "discrete":
            if a.shape != (self.num_envs,) or not np.issubdtype(a.dtype, np.integer):
                raise ValueError(f"actions must be {self.num_envs} integers in [0, {self.num_actions}); "
                                 f"got shape {a.shape} dtype {a.dtype}")
            if a.size and (a.min() < 0 or a.max() >= self.num_actions):
                raise ValueError(f"actions must be in [0, {self.num_actions}); got {a.min()}..{a.max()}")
            return a.astype(np.int64, copy=False)
        if a.shape != (self.num_envs, self.action_dim):
            raise ValueError(f"actions must have shape ({self.num_envs}, {self.action_dim}); got {a.shape}")
        return np.clip(a.astype(np.float64, copy=False), -1.0, 1.0)

    def step(self, actions: Any) -> StepResult:
        """Advance every copy by one step; ended episodes restart at once (see
        :class:`StepResult`)."""
        a = self.check_actions(actions)
        reward, terminated = self._advance(a)
        self.t += 1
        truncated = (self.t >= self.max_steps) & ~terminated
        done = terminated | truncated
        obs = self.observe()
        final = obs
        if done.any():
            final = obs.copy()
            rows = np.flatnonzero(done)
            self.t[rows] = 0
            self._reset_rows(rows)
            obs = self.observe()
        return StepResult(obs, reward.astype(np.float32), terminated, truncated, final)

    def random_actions(self) -> np.ndarray:
        """Uniform random actions for every copy (the random-policy baseline)."""
        if self.action_kind == "discrete":
            return self.rng.integers(0, self.num_actions, self.num_envs)
        return self.rng.uniform(-1.0, 1.0, (self.num_envs, self.action_dim))
