"""MPE Simple Centroid (the AdaPool paper's own scenario), vectorised: one learner must stay at
the centroid of K randomly walking signal agents among M static noise landmarks."""

from __future__ import annotations

import math

import numpy as np

from .base import VecTokenEnv
from .mpe import integrate, tokens

SELF, AGENT, SIGNAL, NOISE = 0, 1, 2, 3


class SimpleCentroid(VecTokenEnv):
    """``num_envs`` copies of the paper's ``mpe_centroid`` scenario (reference notes 3.1).

    Entities: the learner (accel 5, max speed 5), ``num_signal`` signal agents that push in a
    uniformly random direction with force 1 each step (max speed 2), ``num_noise`` static
    landmarks; nothing collides. Spawning: spread ``s = max(log E / log 4, 2)`` (E = all
    entities; 2.5 for 32); learner and signal at ``s * U(-1, 1)^2`` with velocities
    ``U(-2, 2)^2``; noise at ``c + s * U(-1, 1)^2`` around a centre ``c`` at distance ``U(0, 1)``
    in a random direction. Physics as mpe2 (damping 0.25, dt 0.1).

    Reward per step: ``-0.01 * sqrt(|learner - mean(signal positions)|)``; 128 steps.
    Observation: ``1 + M + K`` tokens ``[x, y, vx, vy, role]`` relative to the learner and
    divided by 5: itself (role 0), the noise (role 3), the signal (role 2). Action: a force
    direction in ``[-1, 1]^2`` (times accel 5; the MPE 5-d continuous action reaches the same
    set as ``(a_2 - a_1, a_4 - a_3)``).
    """

    action_kind = "continuous"
    action_dim = 2
    max_steps = 128
    role_names = ("self", "agent", "signal", "noise")
    norm_constant = 5.0
    reward_coeff = 0.01
    noise_offset = 1.0  # the configs' M

    def __init__(self, num_envs: int, num_signal: int = 31, num_noise: int = 0, seed: int | None = None,
                 max_steps: int = 128) -> None:
        super().__init__(num_envs, seed)
        if not isinstance(num_signal, int) or num_signal < 1:
            raise ValueError(f"num_signal must be an int >= 1; got {num_signal!r}")
        if not isinstance(num_noise, int) or num_noise < 0:
            raise ValueError(f"num_noise must be an int >= 0; got {num_noise!r}")
        self.max_steps = max_steps
        self.num_signal, self.num_noise = num_signal, num_noise
        self.num_tokens = 1 + num_signal + num_noise
        self.spread = max(math.log(self.num_tokens) / math.log(4), 2.0)
        self.pos = np.zeros((num_envs, 1 + num_signal, 2))   # learner, then signal
        self.vel = np.zeros_like(self.pos)
        self.noise = np.zeros((num_envs, num_noise, 2))
        self._roles = np.array([SELF] + [NOISE] * num_noise + [SIGNAL] * num_signal, dtype=np.float32)
        self._accel = np.array([5.0] + [1.0] * num_signal)
        self._max_speed = np.array([5.0] + [2.0] * num_signal)

    def _reset_rows(self, rows: np.ndarray) -> None:
        n, s = len(rows), self.spread
        self.pos[rows] = s * self.rng.uniform(-1.0, 1.0, (n, 1 + self.num_signal, 2))
        self.vel[rows] = self.rng.uniform(-2.0, 2.0, (n, 1 + self.num_signal, 2))
        if self.num_noise:
            dist = self.rng.random((n, 1)) * self.noise_offset
            theta = self.rng.random((n, 1)) * 2 * math.pi
            centre = np.stack([np.sin(theta), np.cos(theta)], axis=-1) * dist[..., None]
            self.noise[rows] = centre + s * self.rng.uniform(-1.0, 1.0, (n, self.num_noise, 2))

    def reward(self) -> np.ndarray:
        """``-0.01 sqrt(distance from the learner to the signal centroid)`` per copy."""
        centroid = self.pos[:, 1:].mean(axis=1)
        return -self.reward_coeff * np.sqrt(np.linalg.norm(self.pos[:, 0] - centroid, axis=-1))

    def physics(self, actions: np.ndarray, signal_theta: np.ndarray) -> None:
        """Learner force ``actions * 5``; signal force ``(sin t, cos t)`` for angles ``(B, K)``."""
        force = np.empty_like(self.pos)
        force[:, 0] = actions * self._accel[0]
        force[:, 1:, 0] = np.sin(signal_theta)
        force[:, 1:, 1] = np.cos(signal_theta)
        integrate(self.pos, self.vel, force, self._max_speed)

    def _advance(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        self.physics(actions, self.rng.random((self.num_envs, self.num_signal)) * 2 * math.pi)
        return self.reward(), np.zeros(self.num_envs, dtype=bool)

    def entity_positions(self) -> tuple[np.ndarray, np.ndarray]:
        pos = np.concatenate([self.pos[:, :1], self.noise, self.pos[:, 1:]], axis=1)
        return pos, self._roles.astype(np.int64)

    def observe(self) -> np.ndarray:
        pos = np.concatenate([self.pos[:, :1], self.noise, self.pos[:, 1:]], axis=1)
        vel = np.concatenate([self.vel[:, :1], np.zeros_like(self.noise), self.vel[:, 1:]], axis=1)
        return tokens(pos, vel, self._roles, self.norm_constant)
