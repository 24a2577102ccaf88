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


def register_task(name: str, config: type, run: Callable[..., dict[str, Any]], description: str) -> None:
    TASKS[name] = Task(name, config, run, description)


def get_task(name: str) -> Task:
    if name not in TASKS:
        raise ValueError(f"unknown task {name!r}; known tasks: {', '.join(sorted(TASKS))}")
    return TASKS[name]
