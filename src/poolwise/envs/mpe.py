"""Vectorised multi-agent particle physics, as in ``mpe2`` (``_mpe_utils/core.py``, 1.1.1):
semi-implicit Euler with the position advanced first, linear damping, a speed cap, and a soft
contact force between colliding entities. Arrays are ``(num_envs, num_entities, 2)``."""

from __future__ import annotations

import numpy as np

DT = 0.1
DAMPING = 0.25
CONTACT_FORCE = 1e2
CONTACT_MARGIN = 1e-3


def contact_forces(pos: np.ndarray, size: np.ndarray, collide: np.ndarray) -> np.ndarray:
    r"""Force on each entity from every other colliding one:
    :math:`f_{ab} = c\,\frac{p_a - p_b}{\lVert p_a - p_b\rVert}\,k\log(1 + e^{-(d - d_{min})/k})`
    with :math:`d_{min} = r_a + r_b`, contact force :math:`c = 100` and margin :math:`k = 10^{-3}`
    (applied at every distance, as mpe2 does); :math:`f_{ba} = -f_{ab}`. ``pos`` ``(B, E, 2)``,
    ``size`` and ``collide`` ``(E,)``; returns ``(B, E, 2)`` (zero for entities that do not
    collide)."""
    idx = np.flatnonzero(collide)
    force = np.zeros_like(pos)
    if len(idx) < 2:
        return force
    a, b = np.triu_indices(len(idx), 1)               # each colliding pair once
    a, b = idx[a], idx[b]
    delta = pos[:, a] - pos[:, b]                     # (B, P, 2)
    dist = np.sqrt(np.square(delta).sum(axis=-1))
    pen = np.logaddexp(0, -(dist - (size[a] + size[b])) / CONTACT_MARGIN) * CONTACT_MARGIN
    with np.errstate(invalid="ignore", divide="ignore"):
        f = delta * (CONTACT_FORCE * pen / dist)[..., None]
    sign = np.zeros((len(a), pos.shape[1]))
    sign[np.arange(len(a)), a] = 1.0
    sign[np.arange(len(a)), b] = -1.0
    return np.einsum("bpk,pe->bek", f, sign, optimize=False)


def integrate(pos: np.ndarray, vel: np.ndarray, force: np.ndarray, max_speed: np.ndarray,
              mass: float = 1.0) -> None:
    """One mpe2 step in place on the movable entities: ``pos += vel dt``; ``vel *= 1 - damping``;
    ``vel += force / mass dt``; speeds above ``max_speed`` ``(E,)`` are scaled down to it."""
    pos += vel * DT
    vel *= 1.0 - DAMPING
    vel += force / mass * DT
    speed = np.sqrt(np.square(vel[..., 0]) + np.square(vel[..., 1]))
    over = speed > max_speed
    if over.any():
        scale = np.where(over, max_speed / np.where(over, speed, 1.0), 1.0)
        vel *= scale[..., None]


#: mpe2 discrete actions: 0 no-op, 1 -x, 2 +x, 3 -y, 4 +y
DISCRETE_DIRECTIONS = np.array([[0, 0], [-1, 0], [1, 0], [0, -1], [0, 1]], dtype=np.float64)


def tokens(pos: np.ndarray, vel: np.ndarray, roles: np.ndarray, scale: float = 1.0) -> np.ndarray:
    """Tokens ``[x, y, vx, vy, role]`` relative to entity 0 (the observer; its own token is
    zeros but for the role), divided by ``scale``: ``(B, E, 5)`` float32."""
    b, e, _ = pos.shape
    out = np.empty((b, e, 5), dtype=np.float32)
    out[..., 0:2] = (pos - pos[:, :1]) / scale
    out[..., 2:4] = (vel - vel[:, :1]) / scale
    out[..., 4] = roles
    return out
