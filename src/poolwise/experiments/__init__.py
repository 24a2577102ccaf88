"""Task protocols. Each task registers a runner under a name the sweep runner can call."""

from .frozen import FrozenConfig, run_frozen
from .frozen_tasks import FROZEN_TASKS
from .knn import KNNConfig, run_knn
from .registry import TASKS, get_task, register_task
from .rl import RLConfig, run_rl
from .vision_scratch import VisionConfig, run_vision

__all__ = [
    "FROZEN_TASKS",
    "TASKS",
    "FrozenConfig",
    "KNNConfig",
    "RLConfig",
    "VisionConfig",
    "get_task",
    "register_task",
    "run_frozen",
    "run_knn",
    "run_rl",
    "run_vision",
]
