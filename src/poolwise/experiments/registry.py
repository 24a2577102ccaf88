"""Task name -> (config class, run function). The runner knows experiments only by name."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Task:
    name: str
    config: type
    run: Callable[..., dict[str, Any]]
    description: str


TASKS: dict[str, Task] = {}
"""Every registered task by name; the runner finds experiments here."""


def register_task(name: str, config: type, run: Callable[..., dict[str, Any]], description: str) -> None:
    """Make ``run(config(**params), progress)`` available to sweeps under ``name``."""
    TASKS[name] = Task(name, config, run, description)


def get_task(name: str) -> Task:
    """The task registered as ``name``; ``ValueError`` lists the known ones."""
    if name not in TASKS:
        raise ValueError(f"unknown task {name!r}; known tasks: {', '.join(sorted(TASKS))}")
    return TASKS[name]
