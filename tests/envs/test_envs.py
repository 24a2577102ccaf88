"""Environment rules on hand-built states, token layouts, determinism and automatic reset."""

import math

import numpy as np
import pytest

from poolwise.envs import BoxWorld, SimpleCentroid, SimpleTag, make_env
from poolwise.envs.boxworld import AGENT, FIRST_COLOUR, FLOOR, GEM, PALETTE, WALL


# -- Simple Centroid -----------------------------------------------------------------------
def test_centroid_reward_is_minus_sqrt_distance_to_signal_centroid():
    env = SimpleCentroid(2, num_signal=3, num_noise=2, seed=0)
    env.reset()
    env.pos[0] = [[1.0, 1.0], [0.0, 0.0], [3.0, 0.0], [0.0, 3.0]]  # centroid (1, 1): distance 0
    env.pos[1] = [[4.0, 5.0], [0.0, 0.0], [3.0, 0.0], [0.0, 3.0]]  # distance 5
    np.testing.assert_allclose(env.reward(), [0.0, -0.01 * math.sqrt(5.0)])


def test_centroid_noise_does_not_enter_the_reward_and_tokens_are_normalised():
    env = SimpleCentroid(1, num_signal=1, num_noise=30, seed=1)
    obs = env.reset()
    assert obs.shape == (1, 32, 5) and env.query_index == 0
    np.testing.assert_array_equal(obs[0, :, 4], [0] + [3] * 30 + [2])
    np.testing.assert_allclose(obs[0, -1, :2], (env.pos[0, 1] - env.pos[0, 0]) / 5.0, rtol=1e-6)
    before = env.reward()
    env.noise += 100.0
    np.testing.assert_array_equal(env.reward(), before)


def test_centroid_physics_damping_force_and_speed_cap():
    env = SimpleCentroid(1, num_signal=1, num_noise=0, seed=0)
    env.reset()
    env.pos[:] = 0.0
    env.vel[0] = [[1.0, 0.0], [0.0, 0.0]]
    env.physics(np.array([[1.0, 0.0]]), np.array([[0.0]]))  # learner +x, signal pushed along +y
    # mpe2 order: position with the old velocity, then damping and force
    np.testing.assert_allclose(env.pos[0, 0], [0.1, 0.0])
    np.testing.assert_allclose(env.vel[0, 0], [1.0 * 0.75 + 5.0 * 0.1, 0.0])
    np.testing.assert_allclose(env.vel[0, 1], [0.0, 0.1])
    env.vel[0, 0] = [10.0, 0.0]
    env.physics(np.array([[0.0, 0.0]]), np.array([[0.0]]))
    assert np.linalg.norm(env.vel[0, 0]) == pytest.approx(5.0)  # the learner's max speed


# -- Simple Tag ----------------------------------------------------------------------------
def test_tag_reward_counts_touching_prey():
    env = SimpleTag(1, 0, seed=0)
    env.reset()
    env.pos[0] = [[0.0, 0.0], [0.1, 0.0], [0.0, -0.12], [1.0, 1.0]]
    assert env.caught()[0] == 2  # two prey within 0.075 + 0.05


# -- BoxWorld ------------------------------------------------------------------------------
def _room(mode="entities"):
    env = BoxWorld(1, mode, seed=0)
    env.reset()
    g = np.full((9, 9), FLOOR)
    g[0, :] = g[-1, :] = g[:, 0] = g[:, -1] = WALL
    key, other = FIRST_COLOUR + 2, FIRST_COLOUR + 5
    g[2, 2] = key  # loose key
    g[4, 2], g[4, 3] = GEM, key  # goal box: gem | lock
    g[6, 4], g[6, 5] = other, key  # distractor box: useless key | lock
    g[2, 4] = AGENT
    env.grid[0] = g
    env.lock_kind[0] = 0
    env.lock_kind[0, 4, 3], env.lock_kind[0, 6, 5] = 1, -1
    env.agent[0] = (2, 4)
    env.held[0] = FLOOR
    return env, key


UP, DOWN, LEFT, RIGHT = 0, 1, 2, 3


def _go(env, *moves):
    out = []
    for m in moves:
        out.append(env.step(np.array([m])))
    return out


def test_boxworld_key_then_gem():
    env, key = _room()
    r = _go(env, LEFT, LEFT)  # walk onto the loose key: +1
    assert [float(s.reward[0]) for s in r] == [0.0, 1.0] and env.held[0] == key
    assert env.grid[0, 0, 0] == key  # the held key shows in the corner
    r = _go(env, RIGHT, DOWN, DOWN)  # from above into the goal lock, key in hand
    assert float(r[-1].reward[0]) == 10.0 and bool(r[-1].terminated[0])


def test_boxworld_locked_box_and_wrong_lock_block_the_agent():
    env, _ = _room()
    env.agent[0] = (4, 1)
    env.grid[0, 2, 4], env.grid[0, 4, 1] = FLOOR, AGENT
    r = _go(env, RIGHT)  # the gem inside its box: cannot be taken
    assert float(r[0].reward[0]) == 0.0 and tuple(env.agent[0]) == (4, 1)
    env.agent[0] = (4, 4)
    env.grid[0, 4, 1], env.grid[0, 4, 4] = FLOOR, AGENT
    r = _go(env, LEFT)  # the lock without its key
    assert float(r[0].reward[0]) == 0.0 and tuple(env.agent[0]) == (4, 4)


def test_boxworld_distractor_ends_the_episode_with_minus_one():
    env, key = _room()
    env.held[0] = key
    env.agent[0] = (6, 6)
    env.grid[0, 2, 4], env.grid[0, 6, 6] = FLOOR, AGENT
    r = _go(env, LEFT)
    assert float(r[0].reward[0]) == -1.0 and bool(r[0].terminated[0])


def test_boxworld_tokens_padding_first_agent_last():
    env, key = _room("entities")
    obs = env.observe()[0]
    assert obs.shape == (8, 5) and env.query_index == -1
    # 5 items (loose key, two boxes) + 2 padding tokens [0, 0, 0, 1, 1] in front
    np.testing.assert_array_equal(obs[:2], [[0, 0, 0, 1, 1]] * 2)
    np.testing.assert_allclose(obs[-1], [*PALETTE[AGENT], 0, 0])
    np.testing.assert_allclose(obs[2, :3], PALETTE[key])  # row-major: (2, 2) first
    np.testing.assert_allclose(obs[2, 3:], np.array([2 - 2, 2 - 4]) / 8)  # relative to the agent
    pixels = BoxWorld(1, "pixels", seed=0)
    assert pixels.reset().shape == (1, 50, 5)
    assert not (pixels.observe()[0, :, :3] == 0).all(axis=1)[-1]


def test_boxworld_levels_follow_the_generator():
    env = BoxWorld(64, "entities", seed=3)
    env.reset()
    for b in range(64):
        g = env.grid[b]
        assert (g == GEM).sum() == 1 and (g == AGENT).sum() == 1
        assert (env.lock_kind[b] == 1).sum() >= 1 and (env.lock_kind[b] == -1).sum() <= 2
        r, c = np.argwhere(g == GEM)[0]
        lock = g[r, c + 1]
        assert env.lock_kind[b, r, c + 1] == 1
        assert ((g == lock).sum() - 1) == 1 + (env.lock_kind[b] == -1).sum()  # loose key + locks


# -- shared --------------------------------------------------------------------------------
@pytest.mark.parametrize("env,config", [("tag", "1v3v4"), ("centroid", "1v3v28"), ("boxworld", "pixels")])
def test_reset_and_step_are_deterministic_by_seed(env, config):
    def roll(seed):
        e = make_env(env, config, 8, seed=seed)
        obs = [e.reset()]
        act = np.random.default_rng(0)
        rewards = []
        for _ in range(40):
            a = (
                act.integers(0, e.num_actions, 8)
                if e.action_kind == "discrete"
                else act.uniform(-1, 1, (8, 2))
            )
            r = e.step(a)
            obs.append(r.obs)
            rewards.append(r.reward)
        return np.stack(obs), np.stack(rewards)

    a, b, c = roll(5), roll(5), roll(6)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    assert not np.array_equal(a[0], c[0])


def test_episodes_restart_by_themselves_with_the_final_observation_kept():
    env = make_env("tag", "1v3v0", 4, seed=0, max_steps=5)
    env.reset()
    for _ in range(5):
        r = env.step(np.zeros(4, dtype=np.int64))
    assert r.truncated.all() and not r.terminated.any()
    assert not np.array_equal(r.final_obs, r.obs)  # the new episode's first tokens
    assert (env.t == 0).all()


@pytest.mark.parametrize(
    "bad,match",
    [
        (("tag", "1v2v0"), "3 prey"),
        (("centroid", "2v3v4"), "1vKvM"),
        (("boxworld", "rgb"), "entities or pixels"),
        (("cartpole", "x"), "unknown environment"),
    ],
)
def test_bad_configurations_are_named(bad, match):
    with pytest.raises(ValueError, match=match):
        make_env(*bad, 1)


def test_bad_actions_are_named():
    env = make_env("tag", "1v3v0", 2, seed=0)
    env.reset()
    with pytest.raises(ValueError, match=r"in \[0, 5\)"):
        env.step(np.array([0, 7]))
    with pytest.raises(ValueError, match="2 integers"):
        env.step(np.array([0.5, 1.0]))
