"""Speed of the RL stack: vectorised Simple Tag against mpe2's ``simple_tag``, stepping alone
and end to end under stable-baselines3 PPO with the same token policy.

    python benchmarks/rl_speed.py [--obstacles 28] [--envs 256] [--iterations 3]
                                  [--ppo quick|paper|sb3-default] [--json out.json] [--md out.md]

1. Stepping alone, random actions: ``SimpleTag`` with ``--envs`` copies (one ``step`` call
   advances all of them) against mpe2's AEC ``simple_tag`` (1 predator, 3 prey, O obstacles made
   non-colliding, the paper's token observation), one world step per loop, interleaved rounds.
2. PPO end to end (rollouts and updates): SB3 ``PPO`` on our ``TokenVecEnv`` against SB3 ``PPO``
   on a ``DummyVecEnv`` of mpe2 environments with the same ``TokenPolicy`` (the paper's Simple
   Tag body: d=3, 6 layers, 3 heads, AdaPool) built two ways: op-by-op PyTorch layers
   (``mpe2``, the stack without poolwise) and poolwise's fused layer (``mpe2-fused``). Same PPO
   settings (``--ppo``), timed over ``--iterations`` rounds of one PPO iteration per side,
   interleaved (after one warm-up iteration each). Prints median env steps/s, the shares of
   time in the environment and in PPO updates, the median per-round ratio to ours, and for
   ``mpe2-fused`` its Amdahl bound: with the same policy updates on both sides, ours cannot
   beat 1 / (the baseline's update share).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch

from _machine import cpu_name  # benchmarks/ is on sys.path when run as a script
from poolwise.envs import SimpleTag
from poolwise.envs.mpe import tokens
from poolwise.envs.tag import OBSTACLE, PREY, SELF

PPO_SETTINGS = {
    "quick": {"num_envs": 32, "n_steps": 128, "batch_size": 1024, "epochs": 4},
    "paper": {"num_envs": 64, "n_steps": 128, "batch_size": 8192, "epochs": 16},
    "sb3-default": {"num_envs": 16, "n_steps": 128, "batch_size": 64, "epochs": 10},
}


class MPE2Tag(gym.Env):
    """mpe2 ``simple_tag`` as a single-agent gymnasium env for the predator: prey act at random,
    obstacles do not collide, the paper's spawning and token observation (as the AdaPool
    code's ``TokenizedMPE`` does it)."""

    def __init__(self, num_obstacles: int, seed: int = 0) -> None:
        from mpe2 import simple_tag_v3

        self.env = simple_tag_v3.env(
            num_good=3,
            num_adversaries=1,
            num_obstacles=num_obstacles,
            max_cycles=128,
            continuous_actions=False,
        )
        self.num_obstacles = num_obstacles
        n = 1 + num_obstacles + 3
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, (n, 5), np.float32)
        self.action_space = gym.spaces.Discrete(5)
        self.rng = np.random.default_rng(seed)
        self.roles = np.array([SELF] + [OBSTACLE] * num_obstacles + [PREY] * 3, dtype=np.float32)

    def _tokens(self) -> np.ndarray:
        w = self.env.unwrapped.world
        ents = [w.agents[0], *w.landmarks, *w.agents[1:]]
        pos = np.array([[e.state.p_pos for e in ents]])
        vel = np.array([[e.state.p_vel for e in ents]])
        return tokens(pos, vel, self.roles)[0]

    def reset(self, seed: int | None = None, options: dict | None = None):
        self.env.reset(seed=None if seed is None else int(seed))
        w = self.env.unwrapped.world
        spread = self.rng.uniform(0.1, 1.0)
        for agent in w.agents:
            agent.state.p_pos = spread * self.rng.uniform(-1, 1, 2)
            agent.state.p_vel = self.rng.uniform(-0.5, 0.5, 2)
        s = max(np.log(max(self.num_obstacles, 1)) / np.log(4), 2.0)
        for lm in w.landmarks:
            lm.collide = False
            lm.state.p_pos = s * self.rng.uniform(-1, 1, 2)
            lm.state.p_vel = np.zeros(2)
        return self._tokens(), {}

    def step(self, action):
        self.env.step(int(action))
        for _ in range(3):
            self.env.step(int(self.rng.integers(0, 5)))
        reward = self.env.unwrapped.rewards["adversary_0"]
        truncated = bool(self.env.truncations["adversary_0"])
        return self._tokens(), float(reward), False, truncated, {}


def stepping(obstacles: int, envs: int, rounds: int = 5, seconds: float = 1.0) -> dict[str, float]:
    ours = SimpleTag(envs, obstacles, seed=0)
    ours.reset()
    theirs = MPE2Tag(obstacles)
    theirs.reset()
    rate = {"ours": [], "mpe2": []}
    for _ in range(rounds):
        t, n = time.perf_counter(), 0
        while time.perf_counter() - t < seconds:
            ours.step(ours.random_actions())
            n += envs
        rate["ours"].append(n / (time.perf_counter() - t))
        t, n = time.perf_counter(), 0
        while time.perf_counter() - t < seconds:
            _, _, _, trunc, _ = theirs.step(theirs.rng.integers(0, 5))
            if trunc:
                theirs.reset()
            n += 1
        rate["mpe2"].append(n / (time.perf_counter() - t))
    return {k: statistics.median(v) for k, v in rate.items()}


#: the sides of the PPO comparison: (environment, policy layers)
SIDES = {
    "ours": ("ours", "fused"),
    "mpe2": ("mpe2", "pytorch"),
    "mpe2-fused": ("mpe2", "fused"),
}


def ppo(obstacles: int, settings: dict[str, int], iterations: int,
        sides: tuple[str, ...] = tuple(SIDES)) -> dict[str, dict[str, float]]:
    """Env steps/s of one PPO iteration per side, interleaved rounds. ``mpe2`` is the stock
    stack a user has without poolwise (mpe2 environments, the token policy in PyTorch ops);
    ``mpe2-fused`` gives it poolwise's fused layer as well, so ours can only gain on the
    environment and rollout side there."""
    from stable_baselines3 import PPO
    from stable_baselines3.common.vec_env import DummyVecEnv

    from poolwise.experiments.rl import RLConfig
    from poolwise.experiments.rl_sb3 import TokenFeatures, TokenPolicy, TokenVecEnv
    from poolwise.models.encoder import PreLNLayer

    cfg = RLConfig(env="tag", config=f"1v3v{obstacles}", **settings)
    kwargs = {
        "features_extractor_class": TokenFeatures,
        "init_std": cfg.init_std,
        "features_extractor_kwargs": cfg.encoder_kwargs(0, True),
    }
    batch = cfg.num_envs * cfg.n_steps
    models, timers = {}, {}
    for name in sides:
        env_kind, layers = SIDES[name]
        if env_kind == "ours":
            venv = TokenVecEnv(SimpleTag(cfg.num_envs, obstacles, seed=0), seed=0)
        else:
            venv = DummyVecEnv([lambda i=i: MPE2Tag(obstacles, seed=i) for i in range(cfg.num_envs)])
        torch.manual_seed(0)
        model = PPO(
            TokenPolicy,
            venv,
            learning_rate=cfg.lr,
            n_steps=cfg.n_steps,
            batch_size=cfg.batch_size,
            n_epochs=cfg.epochs,
            ent_coef=cfg.ent_coef,
            vf_coef=cfg.vf_coef,
            max_grad_norm=10.0,
            policy_kwargs=kwargs,
            seed=0,
            device="cpu",
        )
        for m in model.policy.modules():
            if isinstance(m, PreLNLayer):
                m.use_fused = layers == "fused"
        model.learn(batch)  # warm-up iteration (kernel build, allocator)
        timer = {"env": 0.0, "update": 0.0}
        step_wait, train = venv.step_wait, model.train

        def timed_step_wait(step_wait=step_wait, timer=timer):
            t = time.perf_counter()
            res = step_wait()
            timer["env"] += time.perf_counter() - t
            return res

        def timed_train(train=train, timer=timer):
            t = time.perf_counter()
            train()
            timer["update"] += time.perf_counter() - t

        venv.step_wait, model.train = timed_step_wait, timed_train
        models[name], timers[name] = model, timer
    # one PPO iteration of each side per round, interleaved, so that load on the machine hits all
    rounds: dict[str, list[tuple[float, float, float]]] = {name: [] for name in sides}
    for _ in range(iterations):
        for name, model in models.items():
            before = dict(timers[name])
            t = time.perf_counter()
            model.learn(batch, reset_num_timesteps=False)
            wall = time.perf_counter() - t
            rounds[name].append(
                (wall, timers[name]["env"] - before["env"], timers[name]["update"] - before["update"])
            )
    out: dict[str, dict[str, float]] = {}
    for name, rs in rounds.items():
        wall = statistics.median(r[0] for r in rs)
        out[name] = {
            "env_steps_per_s": batch / wall,
            "env_share": statistics.median(r[1] / r[0] for r in rs),
            "update_share": statistics.median(r[2] / r[0] for r in rs),
            "wall_s": wall,
            # per-round ratio to ours (same round, so machine load hits both alike)
            "ratio": statistics.median(r[0] / o[0] for o, r in zip(rounds["ours"], rs)),
            # Amdahl: with ours' policy updates this side cannot be more than 1 / its update
            # share slower, whatever the environment and rollout loop do
            "bound": 1.0 / statistics.median(r[2] / r[0] for r in rs),
        }
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--obstacles", type=int, default=28)
    ap.add_argument("--envs", type=int, default=256, help="parallel copies for the stepping test")
    ap.add_argument("--iterations", type=int, default=3, help="timed PPO iterations per side")
    ap.add_argument(
        "--ppo",
        choices=sorted(PPO_SETTINGS),
        action="append",
        help="PPO settings (repeatable; default quick)",
    )
    ap.add_argument("--threads", type=int, default=0, help="torch threads (default: torch's)")
    ap.add_argument("--json", type=Path)
    ap.add_argument("--md", type=Path)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    modes = args.ppo or ["quick"]
    cpu = f"{cpu_name()}, {torch.get_num_threads()} torch threads"
    print(f"# RL speed: Simple Tag 1v3v{args.obstacles} ({cpu})")
    step = stepping(args.obstacles, args.envs)
    print(
        f"stepping, random actions: ours {args.envs} copies {step['ours']:,.0f} env steps/s; mpe2 "
        f"{step['mpe2']:,.0f} env steps/s; ratio {step['ours'] / step['mpe2']:.0f}x",
        flush=True,
    )
    rows = []
    for mode in modes:
        res = ppo(args.obstacles, PPO_SETTINGS[mode], args.iterations)
        rows.append({"ppo": mode, **PPO_SETTINGS[mode], **res})
        ours = res["ours"]
        parts = [f"ours {ours['env_steps_per_s']:,.0f} env steps/s (env {100 * ours['env_share']:.0f}%)"]
        for name in ("mpe2", "mpe2-fused"):
            r = res[name]
            parts.append(
                f"{name} {r['env_steps_per_s']:,.0f} (env {100 * r['env_share']:.0f}%, updates "
                f"{100 * r['update_share']:.0f}%): ours {r['ratio']:.2f}x"
                + (f" (bound {r['bound']:.2f}x)" if name == "mpe2-fused" else "")
            )
        print(f"PPO {mode} {PPO_SETTINGS[mode]}: " + "; ".join(parts), flush=True)
    result = {"cpu": cpu, "obstacles": args.obstacles, "envs": args.envs, "stepping": step, "ppo": rows}
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    if args.md:
        md = [
            f"Simple Tag 1v3v{args.obstacles}, {cpu}; measured side by side in one process "
            f"(median of {args.iterations} interleaved rounds).",
            "",
            "| measurement | ours | mpe2 + SB3 (PyTorch layers) | ratio | mpe2 + SB3 (fused layer) "
            "| ratio (Amdahl bound) |",
            "|---|---|---|---|---|---|",
            f"| stepping, random actions ({args.envs} copies vs 1 env), env steps/s | {step['ours']:,.0f} | "
            f"{step['mpe2']:,.0f} | {step['ours'] / step['mpe2']:.0f}x | | |",
        ]
        for r in rows:
            s = PPO_SETTINGS[r["ppo"]]
            cells = [f"{r['ours']['env_steps_per_s']:,.0f} ({100 * r['ours']['env_share']:.0f}%)"]
            for name in ("mpe2", "mpe2-fused"):
                o = r[name]
                cells.append(f"{o['env_steps_per_s']:,.0f} ({100 * o['env_share']:.0f}%)")
                bound = f" (bound {o['bound']:.2f}x)" if name == "mpe2-fused" else ""
                cells.append(f"{o['ratio']:.2f}x{bound}")
            md.append(
                f"| PPO end to end, {r['ppo']} ({s['num_envs']} envs x {s['n_steps']}, minibatch "
                f"{s['batch_size']}, {s['epochs']} epochs), env steps/s (env share) | "
                + " | ".join(cells) + " |"
            )
        args.md.write_text("\n".join(md) + "\n")


if __name__ == "__main__":
    main()
