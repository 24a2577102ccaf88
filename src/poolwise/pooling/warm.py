r"""Warm starts: set a learned pooler's weights so that, at step 0, it computes exactly what a
parameter-free pooling computes, so swapping it into a pretrained model loses nothing before
training (the learned part starts as a residual that training grows).

    pooler = warm_start(get_pooler("adapool", dim=384), "mean")     # == mean pooling, exactly
    get_pooler("adapool", dim=384, query=0, warm_start="first")     # == the CLS token

=================== ===================== ==================================================
pooler              targets               weights set
=================== ===================== ==================================================
``adapool``         ``mean`` (query mean) :math:`W_Q = 0` (uniform attention),
                                          :math:`W_V = W_O = I`, biases 0
``adapool``         ``first`` / ``last``  query ``0`` / ``-1``: :math:`W_O = 0`, so the
                                          residual :math:`y = q` is that token
``attention``       ``mean`` (1 query)    :math:`W_Q = 0`, :math:`W_V = W_O = I`, biases 0,
                                          the MLP's last layer 0
``gated``           ``mean``              score layer 0 (uniform weights)
``latent_attention`` ``mean``             output projection 0 and the MLP's last layer 0,
                                          so :math:`h_i = x_i`
``wavg``            ``mean``              position logits 0
``softmax``         ``mean``              temperature 0
=================== ===================== ==================================================

The key projection (and the gates) keep their random values so gradients reach the scores
from the first step. ``gem`` is the mean only for positive inputs and is refused.
"""

from __future__ import annotations

import torch
from torch import nn

from .base import Pooler


def _identity(lin: nn.Linear) -> None:
    nn.init.eye_(lin.weight)
    if lin.bias is not None:
        nn.init.zeros_(lin.bias)


def _zero(lin: nn.Module | None) -> None:
    if lin is None:
        return
    for p in lin.parameters():
        nn.init.zeros_(p)


def _last_linear(mlp: nn.Module | None) -> nn.Module | None:
    return None if mlp is None else mlp[-1]


def _adapool(p: Pooler, target: str) -> None:
    if target == "mean":
        if p.query != "mean":
            raise ValueError(f"adapool warm-starts as mean with query='mean'; this one has query={p.query!r}")
        _zero(p.q_proj)
        _identity(p.v_proj)
        _identity(p.out_proj)
    else:
        index = 0 if target == "first" else -1
        if p.query != index:
            raise ValueError(f"adapool warm-starts as {target} with query={index} (its residual is that "
                             f"token); this one has query={p.query!r}")
        _zero(p.out_proj)


def _attention(p: Pooler, target: str) -> None:
    if target != "mean" or p.num_queries != 1:
        raise ValueError("attention warm-starts as mean only, with one query "
                         f"(got target {target!r}, num_queries={p.num_queries})")
    _zero(p.q_proj)
    _identity(p.v_proj)
    _identity(p.out_proj)
    _zero(_last_linear(p.mlp))


def _mean_only(setter):
    def apply(p: Pooler, target: str) -> None:
        if target != "mean":
            raise ValueError(f"{p.name} warm-starts as mean only; got {target!r}")
        setter(p)
    return apply


_RULES = {
    "adapool": _adapool,
    "attention": _attention,
    "gated": _mean_only(lambda p: _zero(p.score)),
    "latent_attention": _mean_only(lambda p: (_zero(p.out_proj), _zero(_last_linear(p.mlp)))),
    "wavg": _mean_only(lambda p: nn.init.zeros_(p.logits)),
    "softmax": _mean_only(lambda p: p.temperature.data.zero_()),
}
#: target names accepted, with aliases
_TARGETS = {"mean": "mean", "avg": "mean", "first": "first", "cls": "first", "last": "last",
            "lasttoken": "last"}


def warm_start(pooler: Pooler, target: str) -> Pooler:
    """Set ``pooler``'s weights in place so it equals the parameter-free ``target`` pooling
    (``"mean"``, ``"first"``/``"cls"``, ``"last"``) exactly; returns ``pooler``. A parameter-free
    pooler is accepted when it already is ``target``. ``ValueError`` names what cannot be done."""
    if not isinstance(target, str) or target not in _TARGETS:
        raise ValueError(f"warm_start target must be one of {sorted(_TARGETS)}; got {target!r}")
    target = _TARGETS[target]
    if pooler.name == target:
        return pooler
    rule = _RULES.get(pooler.name)
    if rule is None:
        raise ValueError(f"{pooler.name} has no warm start to {target}; poolers that have one: "
                         f"{', '.join(sorted(_RULES))}")
    with torch.no_grad():
        rule(pooler, target)
    pooler.__dict__.pop("_folded_cache", None)  # AdaPool's folded weights follow the new ones
    return pooler
