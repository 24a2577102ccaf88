"""BoxWorld (Zambaldi et al. 2019) as the AdaPool paper ran it: a 7x7 room with a loose key,
a box holding the gem and up to two distractor boxes; one token per pixel."""

from __future__ import annotations

import numpy as np

from .base import VecTokenEnv

# cell codes; colours below
WALL, FLOOR, AGENT, GEM = 0, 1, 2, 3
FIRST_COLOUR = 4
AGENT_RGB, GEM_RGB, FLOOR_RGB, WALL_RGB = (128, 128, 128), (255, 255, 255), (220, 220, 220), (0, 0, 0)
#: the 19 key/lock colours of the paper's generator
COLOURS = ((0, 0, 117), (230, 190, 255), (170, 255, 195), (255, 250, 200), (255, 216, 177),
           (250, 190, 190), (240, 50, 230), (145, 30, 180), (67, 99, 216), (66, 212, 244),
           (60, 180, 75), (191, 239, 69), (255, 255, 25), (245, 130, 49), (230, 25, 75),
           (128, 0, 0), (154, 99, 36), (128, 128, 0), (70, 153, 144))
PALETTE = np.array([WALL_RGB, FLOOR_RGB, AGENT_RGB, GEM_RGB, *COLOURS], dtype=np.float32) / 255.0
#: actions: up, down, left, right (row, column)
MOVES = np.array([[-1, 0], [1, 0], [0, -1], [0, 1]])
MODES = ("entities", "pixels")


class BoxWorld(VecTokenEnv):
    """``num_envs`` BoxWorld levels (reference notes 3.3; the paper forks
    nathangrinsztajn/Box-World): side ``n = 7`` inside a wall, goal length 2 (loose key ->
    box with the gem), 0-2 distractor boxes (drawn uniformly per level) that open with the
    same key and hold a useless key. A box is two pixels: its content on the left, its lock on
    the right. Walking into a loose key takes it (+1); walking into a lock with the matching
    key opens it and takes the content: the gem gives +10 and ends the episode, a distractor's
    key gives -1 and ends it. Other moves into non-floor cells do nothing. 30 steps.

    Tokens, one per pixel: ``(r, g, b) / 255`` and the position ``(row, col) / (n + 1)``
    relative to the agent, in row-major order; walls and the agent's own pixel are dropped,
    the held key shows in the top-left wall pixel, padding tokens ``[0, 0, 0, 1, 1]`` are
    *prepended* to the fixed length and the agent's token comes *last* (the AdaPool query,
    index -1). ``mode="entities"`` also drops floor pixels (8 tokens); ``"pixels"`` keeps
    them (50 tokens, mostly noise). No mask is given, as in the paper.
    """

    num_actions = 4
    max_steps = 30
    query_index = -1
    roles = False
    role_names = ()

    def __init__(self, num_envs: int, mode: str = "entities", seed: int | None = None, n: int = 7,
                 num_distractor: int = 2, max_steps: int = 30, reward_gem: float = 10.0,
                 reward_key: float = 1.0, reward_distractor: float = -1.0) -> None:
        super().__init__(num_envs, seed)
        if mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}; got {mode!r}")
        if not isinstance(n, int) or n < 4:
            raise ValueError(f"n must be an int >= 4; got {n!r}")
        self.mode, self.n, self.max_steps = mode, n, max_steps
        self.num_distractor = num_distractor
        self.rewards = (reward_gem, reward_key, reward_distractor)
        pairs = 1 + num_distractor
        side = n + 2
        self.num_tokens = 2 * pairs + 2 if mode == "entities" else side * side - 4 * (n + 1) + 1
        self.grid = np.zeros((num_envs, side, side), dtype=np.int64)
        self.lock_kind = np.zeros((num_envs, side, side), dtype=np.int8)  # 1 goal lock, -1 distractor
        self.agent = np.zeros((num_envs, 2), dtype=np.int64)
        self.held = np.full(num_envs, FLOOR, dtype=np.int64)
        idx = np.arange(side)
        self._coords = np.stack(np.meshgrid(idx, idx, indexing="ij"), axis=-1).reshape(-1, 2) / (n + 1)

    def _level(self) -> tuple[np.ndarray, np.ndarray, tuple[int, int]]:
        """One level as the paper's generator makes it (``boxworld_gen.world_gen``)."""
        n, rng = self.n, self.rng
        grid = np.full((n + 2, n + 2), FLOOR, dtype=np.int64)
        grid[0, :] = grid[-1, :] = grid[:, 0] = grid[:, -1] = WALL
        kind = np.zeros_like(grid, dtype=np.int8)
        distractors = int(rng.integers(0, self.num_distractor + 1))
        colours = rng.permutation(len(COLOURS))
        goal_colour, others = colours[0], colours[1:]
        # box positions: key cell k encodes (k // (n-1), k % (n-1)); the lock sits to its right
        free = set(range(1, n * (n - 1)))
        boxes = []
        for _ in range(1 + distractors):
            k = int(rng.choice(sorted(free)))
            r, c = divmod(k, n - 1)
            boxes.append((r, c))
            free -= {k} | {r * (n - 1) + c + i for i in range(1, min(2, n - 2 - c) + 1)} \
                | {r * (n - 1) + c - i for i in range(1, min(2, c) + 1)}
        cells = rng.choice(sorted(free), 2, replace=False)
        (ar, ac), (kr, kc) = (divmod(int(x), n - 1) for x in cells)
        # the goal box: gem inside, lock of the loose key's colour
        r, c = boxes[0]
        grid[r + 1, c + 1], grid[r + 1, c + 2] = GEM, FIRST_COLOUR + goal_colour
        kind[r + 1, c + 2] = 1
        for (r, c) in boxes[1:]:  # each distractor's key colour is drawn independently
            j = int(rng.integers(0, len(others)))
            grid[r + 1, c + 1], grid[r + 1, c + 2] = FIRST_COLOUR + others[j], FIRST_COLOUR + goal_colour
            kind[r + 1, c + 2] = -1
        grid[kr + 1, kc + 1] = FIRST_COLOUR + goal_colour
        grid[ar + 1, ac + 1] = AGENT
        return grid, kind, (ar + 1, ac + 1)

    def _reset_rows(self, rows: np.ndarray) -> None:
        for row in rows:
            self.grid[row], self.lock_kind[row], self.agent[row] = self._level()
        self.held[rows] = FLOOR

    def _advance(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        b = np.arange(self.num_envs)
        gem_r, key_r, dis_r = self.rewards
        new = self.agent + MOVES[actions]
        inside = ((new >= 1) & (new <= self.n)).all(axis=1)
        nr, nc = np.clip(new[:, 0], 0, self.n + 1), np.clip(new[:, 1], 0, self.n + 1)
        target = self.grid[b, nr, nc]
        left = self.grid[b, nr, np.maximum(nc - 1, 0)]
        right = self.grid[b, nr, np.minimum(nc + 1, self.n + 1)]
        empty = (target == FLOOR) | (target == AGENT)
        left_empty = (left == FLOOR) | (left == AGENT)
        right_empty = (right == FLOOR) | (right == AGENT)
        item = inside & ~empty
        loose = item & ((nc == 1) | left_empty)
        take_key = loose & right_empty
        lock = item & ~loose
        opened = lock & (target == self.held)
        content = left
        reward = np.zeros(self.num_envs)
        gem = (take_key & (target == GEM)) | (opened & (content == GEM))
        reward[take_key & (target != GEM)] = key_r
        distractor = opened & (content != GEM) & (self.lock_kind[b, nr, nc] == -1)
        good_box = opened & (content != GEM) & ~distractor
        reward[good_box] = key_r
        reward[distractor] = dis_r
        reward[gem] = gem_r
        # what the agent holds now, shown in the top-left wall pixel
        self.held = np.where(take_key, target, np.where(opened, content, self.held))
        rows = np.flatnonzero(opened)
        self.grid[rows, nr[rows], nc[rows] - 1] = FLOOR  # the box's content is taken
        self.grid[:, 0, 0] = np.where(self.held == FLOOR, WALL, self.held)
        move = inside & (empty | take_key | opened)
        rows = np.flatnonzero(move)
        self.grid[rows, self.agent[rows, 0], self.agent[rows, 1]] = FLOOR
        self.grid[rows, nr[rows], nc[rows]] = AGENT
        self.agent[rows] = new[rows]
        return reward, gem | distractor

    def observe(self) -> np.ndarray:
        b, side = self.num_envs, self.n + 2
        cells = self.grid.reshape(b, -1)
        keep = (cells != WALL) & (cells != AGENT)
        if self.mode == "entities":
            keep &= cells != FLOOR
        slots = self.num_tokens - 1
        count = keep.sum(axis=1)
        out = np.zeros((b, self.num_tokens, 5), dtype=np.float32)
        out[:, :, 3:] = 1.0  # padding tokens [0, 0, 0, 1, 1]
        me = self.agent[:, 0] * side + self.agent[:, 1]
        rel = self._coords[None, :, :] - self._coords[me][:, None, :]
        rows, cols = np.nonzero(keep)
        dest = (slots - count)[rows] + (np.cumsum(keep, axis=1) - 1)[rows, cols]
        out[rows, dest, :3] = PALETTE[cells[rows, cols]]
        out[rows, dest, 3:] = rel[rows, cols]
        out[:, -1, :3] = PALETTE[AGENT]
        out[:, -1, 3:] = 0.0
        return out

    def rgb(self) -> np.ndarray:
        """The rooms as images ``(B, n + 2, n + 2, 3)`` in [0, 1] (for rendering)."""
        return PALETTE[self.grid]
