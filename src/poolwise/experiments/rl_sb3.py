"""stable-baselines3 glue for the token environments: a ``VecEnv`` over one vectorised
environment (one ``step`` call for all copies), the token policy as SB3's features extractor,
and a callback that logs the mean episode return of every PPO iteration."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.policies import ActorCriticPolicy
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor
from stable_baselines3.common.vec_env import VecEnv
from torch import nn

from ..envs import VecTokenEnv
from ..models.token_policy import TokenEncoder


def spaces(env: VecTokenEnv) -> tuple[gym.Space, gym.Space]:
    """Gymnasium observation and action spaces of one copy of ``env``."""
    obs = gym.spaces.Box(-np.inf, np.inf, (env.num_tokens, env.token_dim), np.float32)
    if env.action_kind == "discrete":
        return obs, gym.spaces.Discrete(env.num_actions)
    return obs, gym.spaces.Box(-1.0, 1.0, (env.action_dim,), np.float32)


class TokenVecEnv(VecEnv):
    """SB3 ``VecEnv`` view of a :class:`~poolwise.envs.VecTokenEnv`: SB3's rollout loop steps
    all copies in one call. Ended episodes report ``terminal_observation``,
    ``TimeLimit.truncated`` (so PPO bootstraps truncated ones) and ``episode`` (return,
    length); finished returns also collect in :attr:`returns` for the iteration log."""

    def __init__(self, env: VecTokenEnv, seed: int) -> None:
        obs_space, act_space = spaces(env)
        self.env = env  # before VecEnv.__init__, which reads render_mode through get_attr
        super().__init__(env.num_envs, obs_space, act_space)
        self._seed = seed
        self._actions: np.ndarray | None = None
        self._ret = np.zeros(env.num_envs)
        self._len = np.zeros(env.num_envs, dtype=np.int64)
        self.returns: list[float] = []
        self.env_steps = 0
        self.env_seconds = 0.0

    def reset(self) -> np.ndarray:
        self._ret[:] = 0
        self._len[:] = 0
        return self.env.reset(self._seed)

    def step_async(self, actions: np.ndarray) -> None:
        self._actions = actions

    def step_wait(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[dict[str, Any]]]:
        t = time.perf_counter()
        a = self._actions
        if self.env.action_kind == "discrete":
            a = np.asarray(a).reshape(-1).astype(np.int64)
        r = self.env.step(a)
        self.env_seconds += time.perf_counter() - t
        self.env_steps += self.num_envs
        self._ret += r.reward
        self._len += 1
        done = r.done
        infos: list[dict[str, Any]] = [{} for _ in range(self.num_envs)]
        for i in np.flatnonzero(done):
            infos[i] = {"terminal_observation": r.final_obs[i], "TimeLimit.truncated": bool(r.truncated[i]),
                        "episode": {"r": float(self._ret[i]), "l": int(self._len[i])}}
            self.returns.append(float(self._ret[i]))
        self._ret[done] = 0
        self._len[done] = 0
        return r.obs, r.reward, done, infos

    def close(self) -> None:
        pass

    def get_attr(self, attr_name: str, indices: Any = None) -> list[Any]:
        return [getattr(self.env, attr_name)] * len(list(self._get_indices(indices)))

    def set_attr(self, attr_name: str, value: Any, indices: Any = None) -> None:
        setattr(self.env, attr_name, value)

    def env_method(self, method_name: str, *args: Any, indices: Any = None, **kwargs: Any) -> list[Any]:
        return [getattr(self.env, method_name)(*args, **kwargs)]

    def env_is_wrapped(self, wrapper_class: type, indices: Any = None) -> list[bool]:
        return [False] * len(list(self._get_indices(indices)))

    def seed(self, seed: int | None = None) -> list[int | None]:
        if seed is not None:
            self._seed = seed
        return [seed] * self.num_envs


class TokenFeatures(BaseFeaturesExtractor):
    """SB3 features extractor: the :class:`~poolwise.models.token_policy.TokenEncoder`."""

    def __init__(self, observation_space: gym.Space, **encoder: Any) -> None:
        body = TokenEncoder(token_dim=observation_space.shape[-1], **encoder)
        super().__init__(observation_space, body.dim)
        self.body = body

    def forward(self, observations: torch.Tensor) -> torch.Tensor:
        return self.body(observations)


class TokenPolicy(ActorCriticPolicy):
    """Actor-critic sharing the token body (RLlib's ``vf_share_layers``); action and value
    heads are 3-layer GELU MLPs of width 32 as in the paper. Every Linear of the heads is
    drawn from N(0, ``init_std``) like the body (the paper's ``weight_scale``)."""

    def __init__(self, *args: Any, init_std: float = 0.2, **kwargs: Any) -> None:
        self._init_std = init_std
        kwargs.setdefault("net_arch", {"pi": [32, 32], "vf": [32, 32]})
        kwargs.setdefault("activation_fn", nn.GELU)
        kwargs.setdefault("ortho_init", False)
        kwargs.setdefault("share_features_extractor", True)
        super().__init__(*args, **kwargs)

    def _build(self, lr_schedule: Callable[[float], float]) -> None:
        super()._build(lr_schedule)
        for module in (self.mlp_extractor, self.action_net, self.value_net):
            for m in module.modules():
                if isinstance(m, nn.Linear):
                    nn.init.normal_(m.weight, std=self._init_std)
                    nn.init.zeros_(m.bias)


class IterationLog(BaseCallback):
    """After every rollout: mean return of the episodes that ended in it, env steps so far,
    wall time; ``progress(iteration, iterations, row)`` is called with the row."""

    def __init__(self, env: TokenVecEnv, iterations: int,
                 progress: Callable[[int, int, dict[str, float]], None] | None = None) -> None:
        super().__init__()
        self.env = env
        self.iterations = iterations
        self.progress = progress
        self.rows: list[dict[str, float]] = []
        self._start = time.perf_counter()

    def _on_step(self) -> bool:
        return True

    def _on_rollout_end(self) -> None:
        returns = self.env.returns
        self.env.returns = []
        row = {"iteration": len(self.rows) + 1, "env_steps": int(self.num_timesteps),
               "return_mean": float(np.mean(returns)) if returns else float("nan"),
               "episodes": len(returns), "wall_s": time.perf_counter() - self._start}
        self.rows.append(row)
        if self.progress is not None:
            self.progress(row["iteration"], self.iterations, {"return": row["return_mean"]})
