"""Run specifications: a task name and validated parameters, keyed by a stable hash."""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from ..experiments import get_task


@dataclass(frozen=True)
class RunSpec:
    """One run: ``task`` and its parameters (validated by the task's config class)."""

    task: str
    params: Mapping[str, Any]

    def __post_init__(self) -> None:
        cfg = get_task(self.task).config(**self.params)  # raises ValueError / TypeError
        object.__setattr__(self, "params", cfg.to_dict())  # canonical: defaults filled in
        optional = getattr(cfg, "key_optional", ())  # only dataclass configs declare it
        fields = dataclasses.fields(cfg) if optional else ()
        object.__setattr__(self, "_key_defaults", {f.name: f.default for f in fields if f.name in optional})

    @property
    def key(self) -> str:
        """Hash of the canonical JSON of task and parameters: equal configs, equal keys. Fields
        a config class lists in ``key_optional`` count only when they differ from their default
        (fields added later leave the keys of older runs unchanged)."""
        defaults = self._key_defaults
        params = {k: v for k, v in self.params.items() if not (k in defaults and v == defaults[k])}
        blob = json.dumps({"task": self.task, "params": params}, sort_keys=True, default=str)
        return hashlib.sha256(blob.encode()).hexdigest()[:20]

    def config(self) -> Any:
        return get_task(self.task).config(**self.params)

    def label(self) -> str:
        p = self.params
        keys = ("task", "env", "config", "pooler", "k", "canvas", "placement", "seed")
        parts = [f"{k}={p[k]}" for k in keys if k in p]
        return " ".join(parts) or self.key


def grid(task: str, base: Mapping[str, Any], **axes: Iterable[Any]) -> list[RunSpec]:
    """Cartesian product of ``axes`` over ``base`` parameters, in axis order."""
    names = list(axes)
    values = [list(v) for v in axes.values()]
    return [RunSpec(task, {**base, **dict(zip(names, combo))}) for combo in itertools.product(*values)]
