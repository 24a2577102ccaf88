"""The RL protocol: configuration checks, a PPO run that beats the random policy on a tiny
environment, the token policy's query, checkpoints that load back."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

pytest.importorskip("stable_baselines3")

from poolwise.experiments.rl import (
    PAPER_PPO,
    RLConfig,
    build_ppo,
    evaluate,
    load_policy_bytes,
    policy_bytes,
    run_rl,
)
from poolwise.models.token_policy import PAPER_SIZES

TINY = {
    "env": "centroid",
    "config": "1v3v0",
    "num_envs": 16,
    "n_steps": 64,
    "batch_size": 256,
    "epochs": 4,
    "dim": 8,
    "depth": 1,
    "num_heads": 2,
    "ffn_dim": 16,
    "eval_episodes": 64,
    "threads": 1,
}


def test_defaults_are_the_papers_per_environment():
    for env in ("tag", "centroid", "boxworld"):
        cfg = RLConfig(env=env, config={"tag": "1v3v28", "centroid": "1v1v30", "boxworld": "pixels"}[env])
        for key, value in {**PAPER_SIZES[env], **PAPER_PPO[env]}.items():
            assert getattr(cfg, key) == value, (env, key)
    assert RLConfig(env="tag", config="1v3v28").iterations == 500
    assert RLConfig(env="tag", config="1v3v28").snr == pytest.approx(3 / 31)
    assert RLConfig(env="centroid", config="1v15v16").snr == pytest.approx(15 / 31)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"env": "pong"}, "unknown env 'pong'"),
        ({"env": "tag", "config": "1v3"}, "must read 1vKvM"),
        ({"pooler": "median"}, "unknown pooler 'median'"),
        ({"num_heads": 2}, "must divide dim=3"),
        ({"batch_size": 10**6}, "exceeds the rollout"),
        ({"gamma": 1.5}, "gamma must be in"),
        ({"steps": 0}, "steps must be a positive int"),
    ],
)
def test_bad_configs_are_named(kwargs, match):
    with pytest.raises(ValueError, match=match):
        RLConfig(**kwargs)


def test_ppo_beats_the_random_policy_on_a_tiny_environment():
    """Two seeds of a tiny PPO run (16k steps): both finish above the random policy on average
    and the better one clearly (a single small PPO run can still stall at this budget)."""
    gains = []
    for seed in (0, 2):
        res = run_rl(RLConfig(**TINY, steps=16 * 1024, seed=seed))
        m = res["metrics"]
        assert m["env_steps"] == 16 * 1024 and m["iterations"] == 16 == len(res["history"])
        rows = res["history"]  # 64-step rollouts: episodes (128 steps) end every other iteration
        assert sum(r["episodes"] for r in rows) == 16 * 1024 // 128
        assert all(np.isfinite(r["return_mean"]) == (r["episodes"] > 0) for r in rows)
        gains.append(m["final_return"] - m["random_return"])
    assert max(gains) > 0.3 and sum(gains) > 0, gains


def test_checkpoint_round_trip_and_evaluation_is_seeded():
    cfg = RLConfig(**TINY, steps=1024, seed=1)
    model, _ = build_ppo(cfg)
    blob = policy_bytes(model.policy)
    other, _ = build_ppo(dataclasses.replace(cfg, seed=2))
    load_policy_bytes(other.policy, blob)
    for a, b in zip(model.policy.state_dict().values(), other.policy.state_dict().values()):
        torch.testing.assert_close(a, b)
    wrong, _ = build_ppo(dataclasses.replace(cfg, dim=4))
    with pytest.raises(Exception, match=r"size mismatch|does not fit"):
        load_policy_bytes(wrong.policy, blob)
    r1 = evaluate(None, cfg, 8, seed=3)
    np.testing.assert_array_equal(r1, evaluate(None, cfg, 8, seed=3))


@pytest.mark.usefixtures("one_ray_at_a_time")
def test_rl_runs_through_the_ray_executor_with_the_same_results(tmp_path):
    pytest.importorskip("ray")
    from poolwise.runner import ResultsStore, grid, run_sweep
    from poolwise.runner.executors import RayExecutor

    tiny = {**TINY, "steps": 1024, "eval_episodes": 8}
    specs = grid("adapool-rl", tiny, pooler=["adapool", "max"])
    with ResultsStore(tmp_path / "a.sqlite") as a, ResultsStore(tmp_path / "b.sqlite") as b:
        run_sweep(specs, a)
        summary = run_sweep(specs, b, RayExecutor(num_cpus=2, object_store_bytes=256 * 1024**2))
        assert summary.done == 2, summary.errors

        def finals(store):
            return {
                r["key"]: (r["metrics"]["final_return"], r["metrics"]["checkpoint"]) for r in store.rows()
            }

        assert finals(a) == finals(b)  # seeded PPO: the same policy wherever it runs


def test_the_demo_presets_training_already_beats_the_random_policy():
    """One run of ``--preset demo`` exactly as the command runs it (Simple Centroid 1v31v0,
    AdaPool, seed 0, 49k steps): the policy's return clearly exceeds the random policy's."""
    from poolwise.experiments.rl_presets import PRESETS

    demo = PRESETS["demo"]
    cfg = RLConfig(**demo.base["centroid"], env="centroid", config=demo.configs["centroid"][0],
                   pooler=demo.poolers[0], seed=demo.seeds[0])
    m = run_rl(cfg)["metrics"]
    assert m["final_return"] > m["random_return"] + 0.3, m   # random about -2.1 per episode
