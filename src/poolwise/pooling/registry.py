"""Name -> pooler class registry and the resolver behind :func:`get_pooler`."""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

from .base import Pooler

P = TypeVar("P", bound=type[Pooler])

_CLASSES: dict[str, type[Pooler]] = {}
_ALIASES: dict[str, str] = {}

ST_MODES: dict[str, str] = {"cls": "first", "max": "max", "mean": "mean",
                            "mean_sqrt_len_tokens": "mean_sqrt_len", "weightedmean": "weighted_mean",
                            "lasttoken": "last"}
"""sentence-transformers pooling modes -> the poolwise pooler that computes each; the resolver
accepts them as names (``cls``, ``mean`` and ``max`` are poolwise names already)."""


def _normalise(name: str) -> str:
    return name.strip().lower().replace("-", "_")


def register(name: str, *aliases: str) -> Callable[[P], P]:
    """Class decorator: register a :class:`Pooler` subclass under ``name`` and ``aliases``."""

    def wrap(cls: P) -> P:
        for key in (name, *aliases):
            if _normalise(key) in _ALIASES:
                raise ValueError(f"pooler name {key!r} is already registered")
        cls.name = name
        cls.aliases = tuple(aliases)
        _CLASSES[name] = cls
        for key in (name, *aliases):
            _ALIASES[_normalise(key)] = name
        return cls

    return wrap


def list_poolers(aliases: bool = False) -> list[str]:
    """Registered pooler names, sorted; with ``aliases=True`` every accepted spelling."""
    return sorted(_ALIASES) if aliases else sorted(_CLASSES)


def pooler_class(name: str) -> type[Pooler]:
    """The class registered under ``name`` (or one of its aliases)."""
    if not isinstance(name, str):
        raise TypeError(f"pooler name must be a str; got {type(name).__name__}")
    key = _ALIASES.get(_normalise(name)) or _ALIASES.get(ST_MODES.get(name.strip().lower(), ""))
    if key is None:
        close = difflib.get_close_matches(_normalise(name), list(_ALIASES), n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        known = ", ".join(list_poolers(aliases=True))
        raise ValueError(f"unknown pooler {name!r}.{hint} Known poolers: {known}")
    return _CLASSES[key]


def get_pooler(spec: str | dict[str, Any] | Pooler | Sequence[Any], *,
               defaults: Mapping[str, Any] | None = None, warm_start: str | None = None,
               **kwargs: Any) -> Pooler:
    """Resolve ``spec`` to a pooler: the one resolver of poolwise.

    ``spec`` may be a registered name (``"mean"``, ``"map"``) or a sentence-transformers mode
    name (``"lasttoken"``, ``"weightedmean"``, ...; see :data:`ST_MODES`), a config dict from
    :meth:`Pooler.config`, a list of specs (combined with ``"multi"``), or a pooler instance
    (returned as is). ``kwargs`` go to the constructor; unknown or missing arguments raise a
    ``TypeError`` that names them. ``defaults`` (e.g. ``{"dim": 384, "max_len": 512}``) fill
    in the constructor arguments that the pooler accepts and ``spec``/``kwargs`` leave unset,
    so callers build parameter-free and learned poolers alike from a name. ``warm_start``
    (``"mean"``, ``"first"``, ``"last"``) sets a learned pooler's weights so it equals that
    pooling exactly at initialisation (:func:`~poolwise.pooling.warm.warm_start`).
    """
    if warm_start is not None:
        from .warm import warm_start as _warm

        return _warm(get_pooler(spec, defaults=defaults, **kwargs), warm_start)
    if isinstance(spec, Pooler):
        if kwargs:
            raise TypeError(f"get_pooler got a ready pooler and extra arguments {sorted(kwargs)}")
        return spec
    if isinstance(spec, (list, tuple)):
        spec = {"name": "multi", "poolers": list(spec)}
    if isinstance(spec, dict):
        if "name" not in spec:
            raise ValueError(f"a pooler config dict needs a 'name' key; got keys {sorted(spec)}")
        cfg = {**spec, **kwargs}
    else:
        cfg = {"name": spec, **kwargs}
    cls = pooler_class(cfg.pop("name"))
    accepted = inspect.signature(cls.__init__).parameters
    for key, value in (defaults or {}).items():
        if value is not None and key in accepted and key not in cfg:
            cfg[key] = value
    _check_arguments(cls, cfg)
    return cls(**cfg)


def _from_config(cls: type[Pooler], config: dict[str, Any]) -> Pooler:
    """Build a pooler from :meth:`Pooler.config` output (on any subclass or on ``Pooler``)."""
    if not isinstance(config, dict) or "name" not in config:
        raise ValueError(f"config must be a dict with a 'name' key; got {config!r}")
    pooler = get_pooler(dict(config))
    if cls is not Pooler and not isinstance(pooler, cls):
        raise ValueError(f"config names pooler {config['name']!r}, not a {cls.__name__}")
    return pooler


# attached here, beside the resolver, so that base.py need not import this module
Pooler.from_config = classmethod(_from_config)  # type: ignore[assignment]


def _check_arguments(cls: type[Pooler], kwargs: dict[str, Any]) -> None:
    params = inspect.signature(cls.__init__).parameters
    accepted = [p for p in params if p != "self" and params[p].kind is not inspect.Parameter.VAR_KEYWORD]
    unknown = sorted(set(kwargs) - set(accepted))
    if unknown:
        raise TypeError(
            f"pooler {cls.name!r} got unexpected argument(s) {', '.join(unknown)}; "
            f"it accepts: {', '.join(accepted) or 'nothing'}"
        )
    missing = [p for p in accepted if params[p].default is inspect.Parameter.empty and p not in kwargs]
    if missing:
        what = {"dim": "dim (the token feature size D, e.g. dim=384)",
                "max_len": "max_len (the longest sequence it will see, e.g. max_len=512)"}
        need = ", ".join(what.get(p, p) for p in missing)
        raise TypeError(f"pooler {cls.name!r} is learned and needs {need}; got no value")
