"""Vectorised RL environments whose observations are token sets (AdaPool paper, section 3 of
our notes): MPE Simple Tag and Simple Centroid, BoxWorld. One ``step`` call advances every
copy; episodes restart by themselves."""

from .base import StepResult, VecTokenEnv
from .boxworld import BoxWorld
from .centroid import SimpleCentroid
from .registry import ENVS, EnvSpec, env_spec, make_env
from .tag import SimpleTag

__all__ = ["ENVS", "BoxWorld", "EnvSpec", "SimpleCentroid", "SimpleTag", "StepResult", "VecTokenEnv",
           "env_spec", "make_env"]
