"""Simple Tag dynamics equal mpe2's ``simple_tag`` step for step (positions, velocities,
predator reward), from identical initial states and actions."""

import numpy as np
import pytest

from poolwise.envs import SimpleTag

mpe2_tag = pytest.importorskip("mpe2.simple_tag_v3")


def _mpe2_env(num_obstacles):
    env = mpe2_tag.env(num_good=3, num_adversaries=1, num_obstacles=num_obstacles, max_cycles=128,
                       continuous_actions=False)
    env.reset(seed=0)
    world = env.unwrapped.world
    for lm in world.landmarks:  # the paper's change: obstacles do not collide
        lm.collide = False
    return env, world


@pytest.mark.parametrize("num_obstacles", [0, 4, 28])
def test_simple_tag_matches_mpe2(num_obstacles):
    ours = SimpleTag(1, num_obstacles, seed=3)
    ours.reset()
    # start close together so that contacts and catches happen
    ours.pos[0] = np.array([[0.0, 0.0], [0.1, 0.02], [-0.12, 0.05], [0.3, -0.2]])
    env, world = _mpe2_env(num_obstacles)
    for i, agent in enumerate(world.agents):
        agent.state.p_pos = ours.pos[0, i].copy()
        agent.state.p_vel = ours.vel[0, i].copy()
    for j, lm in enumerate(world.landmarks):
        lm.state.p_pos = ours.obstacles[0, j].copy()
    rng = np.random.default_rng(7)
    rewards, caught = [], 0
    for step in range(100):
        acts = rng.integers(0, 5, 4)
        for a in acts:
            env.step(int(a))
        ours.physics(acts[:1], acts[None, 1:])
        for i, agent in enumerate(world.agents):
            np.testing.assert_allclose(ours.pos[0, i], agent.state.p_pos, atol=1e-5, err_msg=f"step {step}")
            np.testing.assert_allclose(ours.vel[0, i], agent.state.p_vel, atol=1e-5, err_msg=f"step {step}")
        theirs = env.unwrapped.rewards["adversary_0"]
        assert 10.0 * ours.caught()[0] == pytest.approx(theirs, abs=1e-5), f"step {step}"
        rewards.append(theirs)
        caught += theirs > 0
    assert caught > 0, "the replay never had a catch: the reward comparison tested nothing"


def test_tokens_follow_the_paper_layout():
    env = SimpleTag(2, 4, seed=0)
    obs = env.reset()
    assert obs.shape == (2, 8, 5) and env.query_index == 0
    np.testing.assert_array_equal(obs[:, :, 4], [[0, 1, 1, 1, 1, 3, 3, 3]] * 2)
    np.testing.assert_array_equal(obs[:, 0, :4], 0)                       # own token: zeros
    np.testing.assert_allclose(obs[0, 5, :2], env.pos[0, 1] - env.pos[0, 0], rtol=1e-6)  # prey 0 relative
    np.testing.assert_allclose(obs[0, 1, 2:4], -env.vel[0, 0], rtol=1e-6)  # obstacles are static
