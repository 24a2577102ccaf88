"""Task protocols. Each task registers a runner under a name the sweep runner can call."""

from .knn import KNNConfig, run_knn
from .registry import TASKS, get_task, register_task

__all__ = ["TASKS", "KNNConfig", "get_task", "register_task", "run_knn"]
