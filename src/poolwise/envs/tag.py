"""MPE Simple Tag as the AdaPool paper ran it, vectorised: one learning predator, 3 prey acting
at random (the signal) and ``num_obstacles`` static, non-colliding obstacles (the noise)."""

from __future__ import annotations

import math

import numpy as np

from .base import VecTokenEnv
from .mpe import DISCRETE_DIRECTIONS, contact_forces, integrate

#: token roles of the paper's Simple Tag tokenizer
SELF, OBSTACLE, PREDATOR, PREY = 0, 1, 2, 3


class SimpleTag(VecTokenEnv):
    """``num_envs`` copies of PettingZoo/mpe2 ``simple_tag`` (1 adversary, 3 good agents),
    with the paper's changes (reference notes section 3.2): obstacles do not collide,
    predator reward +10 per prey it touches (distance < 0.125), prey take uniform random
    discrete actions, episodes of 128 steps.

    Physics are mpe2's (:mod:`poolwise.envs.mpe`): predator accel 3 / max speed 1.0 / size
    0.075, prey accel 4 / 1.3 / 0.05, damping 0.25, dt 0.1, contact forces among the 4 agents.
    Spawning is the paper's: all agents at ``u * U(-1, 1)^2`` with one ``u ~ U(0.1, 1)`` per
    episode and velocities ``U(-0.5, 0.5)^2``; obstacles at ``max(log O / log 4, 2) * U(-1, 1)^2``.

    Observation: the predator's ``1 + O + 3`` tokens ``[x, y, vx, vy, role]`` relative to
    itself (not normalised): itself (role 0, zeros), the obstacles (role 1), the prey (role 3).
    Action: 0 stay, 1 -x, 2 +x, 3 -y, 4 +y.
    """

    num_actions = 5
    max_steps = 128
    role_names = ("self", "obstacle", "predator", "prey")
    num_prey = 3
    SIZES = np.array([0.075, 0.05, 0.05, 0.05])
    ACCEL = np.array([3.0, 4.0, 4.0, 4.0])
    MAX_SPEED = np.array([1.0, 1.3, 1.3, 1.3])

    def __init__(self, num_envs: int, num_obstacles: int = 0, seed: int | None = None,
                 max_steps: int = 128) -> None:
        super().__init__(num_envs, seed)
        if not isinstance(num_obstacles, int) or num_obstacles < 0:
            raise ValueError(f"num_obstacles must be an int >= 0; got {num_obstacles!r}")
        self.max_steps = max_steps
        self.num_obstacles = num_obstacles
        self.num_tokens = 1 + num_obstacles + self.num_prey
        self.pos = np.zeros((num_envs, 4, 2))
        self.vel = np.zeros((num_envs, 4, 2))
        self.obstacles = np.zeros((num_envs, num_obstacles, 2))
        self._roles = np.array([SELF] + [OBSTACLE] * num_obstacles + [PREY] * self.num_prey, dtype=np.float32)
        self._collide = np.ones(4, dtype=bool)

    def _reset_rows(self, rows: np.ndarray) -> None:
        n = len(rows)
        spread = self.rng.uniform(0.1, math.log(4) / math.log(4), (n, 1, 1))
        self.pos[rows] = spread * self.rng.uniform(-1.0, 1.0, (n, 4, 2))
        self.vel[rows] = self.rng.uniform(-0.5, 0.5, (n, 4, 2))
        if self.num_obstacles:
            s = max(math.log(self.num_obstacles) / math.log(4), 2.0)
            self.obstacles[rows] = s * self.rng.uniform(-1.0, 1.0, (n, self.num_obstacles, 2))

    def physics(self, predator_actions: np.ndarray, prey_actions: np.ndarray) -> None:
        """Apply the discrete actions of the predator ``(B,)`` and the prey ``(B, 3)``."""
        acts = np.concatenate([predator_actions[:, None], prey_actions], axis=1)
        force = DISCRETE_DIRECTIONS[acts] * self.ACCEL[None, :, None]
        force += contact_forces(self.pos, self.SIZES, self._collide)
        integrate(self.pos, self.vel, force, self.MAX_SPEED)

    def caught(self) -> np.ndarray:
        """How many prey touch the predator, per copy."""
        d = np.sqrt(np.sum(np.square(self.pos[:, 1:] - self.pos[:, :1]), axis=-1))
        return (d < self.SIZES[0] + self.SIZES[1]).sum(axis=1)

    def _advance(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        prey = self.rng.integers(0, 5, (self.num_envs, self.num_prey))
        self.physics(actions, prey)
        return 10.0 * self.caught(), np.zeros(self.num_envs, dtype=bool)

    def entity_positions(self) -> tuple[np.ndarray, np.ndarray]:
        """Positions ``(B, E, 2)`` and roles ``(E,)`` of the predator, obstacles and prey, in
        token order (for rendering)."""
        pos = np.concatenate([self.pos[:, :1], self.obstacles, self.pos[:, 1:]], axis=1)
        return pos, self._roles.astype(np.int64)

    def observe(self) -> np.ndarray:
        # written slice by slice: the same values as tokens(*entity arrays), without the copies
        o = self.num_obstacles
        out = np.empty((self.num_envs, self.num_tokens, 5), dtype=np.float32)
        me_p, me_v = self.pos[:, :1], self.vel[:, :1]
        out[:, :1, :4] = 0.0
        out[:, 1:1 + o, 0:2] = self.obstacles - me_p
        out[:, 1:1 + o, 2:4] = -me_v
        out[:, 1 + o:, 0:2] = self.pos[:, 1:] - me_p
        out[:, 1 + o:, 2:4] = self.vel[:, 1:] - me_v
        out[:, :, 4] = self._roles
        return out
