"""Runs of different settings are never averaged together: reports label each distinct
setting (every config key except the sweep's axes) and a sweep says when the store already
holds runs of other settings."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from typing import Any


def setting_text(value: Any) -> str:
    """A config value as the text labels show and compare (strings as they are, else JSON)."""
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)



def differing_keys(configs: Iterable[Mapping[str, Any]], axes: Iterable[str]) -> list[str]:
    """Config keys, other than ``axes`` (pooler, seed, ...), whose values differ between
    ``configs``, sorted. A key that some configs lack (runs stored before the field existed)
    is compared among the configs that have it."""
    configs = list(configs)
    keys = set().union(*configs) - set(axes) if configs else set()
    return sorted(k for k in keys if len({setting_text(cfg[k]) for cfg in configs if k in cfg}) > 1)


def setting_label(config: Mapping[str, Any], keys: Iterable[str]) -> str:
    """``"epochs=2, data=b.csv"``: the values of ``keys`` in ``config`` (empty without keys)."""
    parts = []
    for key in keys:
        text = setting_text(config.get(key))
        parts.append(f"{key}={text if len(text) <= 40 else text[:37] + '...'}")
    return ", ".join(parts)


def parse_setting(label: str) -> dict[str, Any]:
    """The config values a :func:`setting_label` names: JSON values come back typed, other
    text as strings; ``""`` gives ``{}``. Its inverse except where a value was cut short (over
    40 characters) or holds text like ``", name="``, which reads as the next key."""
    config: dict[str, Any] = {}
    for part in re.split(r", (?=[A-Za-z_][A-Za-z0-9_]*=)", label) if label else ():
        key, sep, text = part.partition("=")
        if not sep:
            raise ValueError(f"not a setting label: {label!r} (expected 'key=value, key=value')")
        try:
            config[key] = json.loads(text)
        except json.JSONDecodeError:
            config[key] = text
    return config


def labelled(name: str, setting: str) -> str:
    """A pooler's name with its setting, when the report holds more than one setting."""
    return f"{name} [{setting}]" if setting else name


def base_name(label: str) -> str:
    """The pooler name of a :func:`labelled` label."""
    return label.split(" [", 1)[0]


def other_settings(stored: Iterable[Mapping[str, Any]], planned: Iterable[Mapping[str, Any]],
                   axes: Iterable[str]) -> dict[str, tuple[list[str], list[str]]]:
    """Keys for which some finished run in ``stored`` has a value that none of the ``planned``
    runs has: ``{key: (values there, values here)}`` (empty when the settings agree)."""
    stored, planned = list(stored), list(planned)
    out = {}
    for key in sorted(set().union(*stored, *planned) - set(axes) if stored and planned else ()):
        there = {setting_text(c[key]) for c in stored if key in c}
        here = {setting_text(c[key]) for c in planned if key in c}
        if there and here and there - here:
            out[key] = (sorted(there), sorted(here))
    return out
