"""Frozen-backbone protocol (Pool Me Wisely, App. D): the backbone's token outputs are
computed once and cached; each run trains only the pooler's parameters and a linear head
(Adam, lr 1e-3, batch 32), keeps the epoch with the best validation score, and evaluates
that checkpoint on the test split once."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..data.cache import content_digest
from ..pooling import Pooler, get_pooler, list_poolers, pooler_class
from .features import Features, FeatureSplit, PooledSplit, get_features, pool_split
from .fit import Progress, fit, iter_rows
from .frozen_tasks import (
    FROZEN_TASKS,
    HF_BACKBONES,
    FrozenTask,
    backbone_is_neutral,
    backbone_objective,
    is_causal_backbone,
)
from .registry import register_task

#: settings for learned poolers where the paper gives none (its Attn latent size is unknown).
#: latent_attention runs without NV-Embed's per-token MLP here: with it, the pooler alone
#: costs 100x the other poolers' training at D=384 (74 s against 0.7 s on text-bbc).
POOLER_DEFAULTS: dict[str, dict[str, Any]] = {
    "latent_attention": {"num_latents": 64, "num_heads": 4, "mlp_ratio": 0.0},
    "attention": {"num_heads": 4},
    "adapool": {"num_heads": 1, "query": "mean"},
    "multi": {"poolers": ["mean", "max"]},
}


#: FGSM budgets on the pooler's input: the backbones end in LayerNorm, so a feature is about
#: unit scale and eps is a fraction of it
ATTACK_EPS = (0.01, 0.03, 0.1)


def wavg_align(task: str) -> str:
    """W-Avg's alignment for ``task``: ``"end"`` on local tasks (next token, forecasting, the
    noisy canvas), where inputs of different lengths must agree on which weight "the last
    token" gets; ``"start"`` (the paper's) on global ones."""
    return "end" if FROZEN_TASKS[task].context == "local" else "start"


def planned_pooler_kwargs(task: str, poolers: list[str], given: Any) -> Any:
    """The ``pooler_kwargs`` a sweep of ``task`` plans: ``given`` (a run's own kwargs, or a
    dict keyed by pooler name), plus W-Avg's :func:`wavg_align` for every name of W-Avg in
    ``poolers`` whose alignment ``given`` leaves open. The alignment is then part of each
    run's key, so results of the other alignment are never reused for it."""
    given = dict(given or {})
    known = set(list_poolers(aliases=True))
    keyed = all(k in known and isinstance(v, dict) for k, v in given.items())
    if task not in FROZEN_TASKS or not keyed or wavg_align(task) == "start":
        return given
    for name in poolers:
        if name in known and pooler_class(name).name == "wavg" and "align" not in given.get(name, {}):
            given[name] = {**given.get(name, {}), "align": "end"}
    return given


def default_poolers(task: str, backbone: str = "", model: str = "") -> list[str]:
    """The paper's six (``token`` = CLS or last token, as the backbone dictates: the last real
    token of a causal decoder, the only one that has read the whole text) plus AdaPool."""
    t = FROZEN_TASKS[task]
    token = "last" if is_causal_backbone(backbone, model) else t.token_pooler
    return [token, "mean", "sum", "max", "wavg", "latent_attention", "adapool"]


@dataclass(frozen=True)
class FrozenConfig:
    """One run: a task, a pooler and a seed; sizes default to the task's."""

    task: str
    pooler: str = "mean"
    pooler_kwargs: dict[str, Any] = field(default_factory=dict)
    seed: int = 0
    epochs: int = 0  # 0: the task's default (10; 100 for the small UCR sets)
    batch_size: int = 32
    lr: float = 1e-3
    max_samples: int = -1  # text/vision tasks: -1 the task's default cap, 0 all rows, n at most n
    max_length: int = 0  # text: tokens per input (0: the task's default)
    backbone_seed: int = 0
    #: the encoder (``poolwise compare --list-backbones``); "" is the task's default, a
    #: pooling-neutral one, and is filled in on construction so it is always in the run key
    backbone: str = ""
    model: str = ""  # text: a local Hugging Face model directory (backbone "hf")
    #: FGSM budgets (L-inf, in feature units) at which the test split's pooler inputs are
    #: attacked after training (classification and next-token tasks); () for none
    attack_eps: tuple[float, ...] = ATTACK_EPS
    data: str = ""  # text-csv: the CSV file
    text_column: str = "text"
    label_column: str = "label"
    encoding: str = "utf-8"  # text-csv: the CSV's text encoding
    drop_missing: bool = False  # text-csv: drop rows without a text or label (default: refuse them)
    #: content hash of the input files (data CSV, model directory), filled in on construction:
    #: a run is keyed by what it reads, not by where it was read from
    inputs: str = ""

    #: fields left out of the run key while they hold their default, so keys of runs made
    #: before these fields existed stay valid
    key_optional: ClassVar[tuple[str, ...]] = ("encoding", "drop_missing", "inputs", "attack_eps")

    def __post_init__(self) -> None:
        if self.task not in FROZEN_TASKS:
            raise ValueError(f"unknown task {self.task!r}; known: {', '.join(FROZEN_TASKS)}")
        known = set(list_poolers(aliases=True))
        if self.pooler not in known:
            raise ValueError(f"unknown pooler {self.pooler!r}; known: {', '.join(list_poolers())}")
        for name in ("seed", "epochs", "batch_size", "max_length", "backbone_seed"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ValueError(f"{name} must be a non-negative int; got {value!r}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1; got {self.batch_size}")
        if not isinstance(self.max_samples, int) or self.max_samples < -1:
            raise ValueError(
                f"max_samples must be -1 (task default), 0 (all) or a positive int; got {self.max_samples!r}"
            )
        if not (isinstance(self.lr, (int, float)) and self.lr > 0):
            raise ValueError(f"lr must be > 0; got {self.lr!r}")
        if not isinstance(self.pooler_kwargs, dict):
            raise TypeError(f"pooler_kwargs must be a dict; got {type(self.pooler_kwargs).__name__}")
        eps = self.attack_eps
        if not isinstance(eps, (list, tuple)) or not all(
                isinstance(e, (int, float)) and not isinstance(e, bool) and 0 < e < 10 for e in eps):
            raise ValueError(f"attack_eps must be a list of budgets in (0, 10); got {eps!r}")
        object.__setattr__(self, "attack_eps", tuple(float(e) for e in eps))
        if not isinstance(self.backbone, str):
            raise TypeError(f"backbone must be a str; got {type(self.backbone).__name__}")
        object.__setattr__(self, "backbone", self.spec.resolve_backbone(self.backbone, self.model))
        files = [f for f in (self.data, self.model) if f]
        if files:  # the identity of what the run reads; checked again where the run executes
            if self.data and not Path(self.data).is_file():
                raise ValueError(f"no CSV file at {self.data}")
            if self.model and not Path(self.model).is_dir():
                raise ValueError(f"--model {self.model}: no such directory")
            digest = hashlib.sha256("".join(content_digest(f) for f in files).encode()).hexdigest()[:16]
            if self.inputs and self.inputs != digest:
                raise ValueError(f"the input files changed since this run was planned ({', '.join(files)}); "
                                 "plan the sweep again")
            object.__setattr__(self, "inputs", digest)

    @property
    def spec(self) -> FrozenTask:
        return FROZEN_TASKS[self.task]

    def samples_or(self, total: int) -> int:
        cap = self.spec.samples if self.max_samples == -1 else self.max_samples
        return total if cap <= 0 else min(cap, total)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def load_task_features(cfg: FrozenConfig, log: Callable[[str], None] | None = None) -> Features:
    """The cached features of ``cfg``'s task (computing them on first use)."""
    parts, sources, meta = cfg.spec.prepare(cfg, log)
    meta = {**meta, "task": cfg.task, "kind": cfg.spec.kind, "metric": cfg.spec.metric}
    return get_features(parts, sources, meta, log=log)


def kwargs_for(pooler: str, pooler_kwargs: dict[str, Any]) -> dict[str, Any]:
    """``pooler_kwargs`` is either the keyword arguments of the run's pooler, or, for a sweep
    over several poolers, a dict keyed by pooler name (``{"latent_attention": {...}}``) from
    which each run takes its own entry (none for poolers not named)."""
    known = set(list_poolers(aliases=True))
    if pooler_kwargs and all(k in known and isinstance(v, dict) for k, v in pooler_kwargs.items()):
        return dict(pooler_kwargs.get(pooler, {}))
    return dict(pooler_kwargs)


def pooler_defaults(name: str, dim: int, max_len: int) -> dict[str, Any]:
    """Constructor defaults of pooler ``name`` in this protocol (for ``get_pooler(defaults=...)``,
    so a run's own ``pooler_kwargs`` win): :data:`POOLER_DEFAULTS`, the features' width and
    longest length."""
    defaults = {**POOLER_DEFAULTS.get(name, {}), "dim": dim, "max_len": max_len}
    if dim % defaults.get("num_heads", 1):
        defaults["num_heads"] = 1  # keep a default head count valid on any width; a user's stays as given
    return defaults


class PooledHead(nn.Module):
    """Pooler, then a linear head: the only trained parts."""

    def __init__(self, pooler: Pooler, dim: int, outputs: int) -> None:
        super().__init__()
        self.pooler = pooler
        self.head = nn.Linear(math.prod(pooler.output_shape(dim)), outputs)

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        return self.head(self.pooler(x, mask).reshape(len(x), -1))


def _loss(kind: str, out: Tensor, y: Tensor) -> Tensor:
    if kind != "regress":
        return F.cross_entropy(out, y.long())
    scored = ~torch.isnan(y)  # NaN targets are not scored (imputation: the observed steps)
    return F.mse_loss(out[scored], y[scored].float())


def _scores(model: PooledHead, x: Tensor, mask: Tensor | None) -> Tensor:
    """The model's outputs for token features ``(x, mask)``, or for pooled vectors (no mask)."""
    return model(x, mask) if mask is not None else model.head(x)


def evaluate(model: PooledHead, split: FeatureSplit | PooledSplit, metric: str, batch: int = 256,
             hits: list[bool] | None = None) -> float:
    """Accuracy (%), top-10 accuracy (%) or MSE of ``model`` on ``split`` (token features, or
    vectors already pooled: then only the head runs); ``hits``, when given, receives each
    item's hit in order (accuracy metrics), for paired tests between runs."""
    model.eval()
    total, count = 0.0, 0
    with torch.no_grad():
        for rows in iter_rows(len(split), batch):
            x, mask, y = split.batch(rows.numpy())
            out = _scores(model, x, mask)
            if metric == "mse":
                scored = ~torch.isnan(y)
                total += float(F.mse_loss(out[scored], y[scored].float(), reduction="sum"))
                count += int(scored.sum())
            else:
                k = 10 if metric == "top10" else 1
                hit = (out.topk(min(k, out.shape[1]), dim=1).indices == y[:, None]).any(dim=1)
                total += float(hit.sum()) * 100.0
                count += len(y)
                if hits is not None:
                    hits.extend(bool(h) for h in hit)
    return total / count


def pooler_state(pooler: Pooler) -> dict[str, str] | None:
    """A trained pooler as JSON-safe data for the results store: its config and its weights
    as base64 safetensors (never pickled); None for a pooler without parameters.
    :func:`pooler_from_state` rebuilds it."""
    from safetensors.torch import save

    state = {k: v.detach().cpu().contiguous() for k, v in pooler.state_dict().items()}
    if not state:
        return None
    return {"config": json.dumps(pooler.config()), "weights": base64.b64encode(save(state)).decode()}


def pooler_from_state(state: dict[str, str]) -> Pooler:
    """The pooler of :func:`pooler_state`, in eval mode."""
    from safetensors.torch import load

    pooler = get_pooler(json.loads(state["config"]))
    pooler.load_state_dict(load(base64.b64decode(state["weights"])))
    return pooler.eval()


def attack_success(
    model: PooledHead, split: FeatureSplit, metric: str, eps: float, batch: int = 256
) -> float:
    """FGSM (Goodfellow et al. 2015) on the pooler's input: each real token moves by
    ``eps * sign(grad)`` of the loss; the share (%) of the test inputs scored correct
    (top-1, or top-10 for next token) that the attack makes wrong. Pool Me Wisely's Table 10
    attacks the images of a whole ViT; with a frozen backbone the pooler's input is the
    place where the poolings' Lipschitz constants (Theorem 4.2) decide."""
    return attack_successes(model, split, metric, (eps,), batch)[eps]


def attack_successes(
    model: PooledHead, split: FeatureSplit, metric: str, budgets: Sequence[float], batch: int = 256
) -> dict[float, float]:
    """:func:`attack_success` for several budgets at once: the gradient, and so the attack's
    direction, does not depend on the budget, so each batch is gathered and differentiated
    once and only the attacked forward pass runs per budget."""
    model.eval()
    k = 10 if metric == "top10" else 1
    correct, broken = 0, dict.fromkeys(budgets, 0)
    for rows in iter_rows(len(split), batch):
        x, mask, y = split.batch(rows.numpy())
        x = x.requires_grad_(True)
        out = model(x, mask)
        F.cross_entropy(out, y.long(), reduction="sum").backward()
        with torch.no_grad():
            hit = (out.topk(min(k, out.shape[1]), dim=1).indices == y[:, None]).any(dim=1)
            step = x.grad.sign() * mask[..., None]
            for eps in budgets:
                adv = model(x + eps * step, mask)
                still = (adv.topk(min(k, adv.shape[1]), dim=1).indices == y[:, None]).any(dim=1)
                broken[eps] += int((hit & ~still).sum())
        correct += int(hit.sum())
    model.zero_grad(set_to_none=True)
    return {eps: 100.0 * n / max(correct, 1) for eps, n in broken.items()}


def run_frozen(cfg: FrozenConfig, progress: Progress | None = None,
               pooler: torch.nn.Module | None = None) -> dict[str, Any]:
    """Train ``cfg.pooler`` + a linear head on the task's cached features; returns the test
    metric of the best validation epoch (``metrics``) and a row per epoch (``history``).
    ``pooler`` replaces the configured one (controls such as a rescaled pooler; such a run's
    config no longer names what ran, so it is for scripts, not for the results store)."""
    task = cfg.spec
    feats = load_task_features(cfg)
    train, val, test = feats.splits["train"], feats.splits["val"], feats.splits["test"]
    start = time.perf_counter()
    torch.manual_seed(cfg.seed)
    if pooler is None:
        pooler = get_pooler({"name": cfg.pooler, **kwargs_for(cfg.pooler, cfg.pooler_kwargs)},
                            defaults=pooler_defaults(cfg.pooler, feats.dim, feats.max_len))
    model = PooledHead(pooler, feats.dim, int(feats.meta["num_outputs"]))
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=cfg.lr)
    gen = torch.Generator().manual_seed(cfg.seed)
    # a pooler without trainable weights gives the same vectors every epoch: pool each split once
    fixed = not any(p.requires_grad for p in pooler.parameters())
    fit_train, fit_val, fit_test = ((pool_split(pooler, s) for s in (train, val, test)) if fixed
                                    else (train, val, test))

    def loss_of(rows: Tensor) -> tuple[Tensor, int]:
        x, mask, y = fit_train.batch(rows.numpy())
        return _loss(task.kind, _scores(model, x, mask), y), len(rows)

    result = fit(model, opt, cfg.epochs or task.epochs, lambda: iter_rows(len(train), cfg.batch_size, gen),
                 loss_of, lambda: evaluate(model, fit_val, task.metric), val_name=f"val_{task.metric}",
                 higher_is_better=task.higher_is_better, progress=progress)
    test_hits: list[bool] = []
    value = evaluate(model, fit_test, task.metric, hits=test_hits)  # the one use of the test split
    attacks = {}
    if task.kind != "regress":
        attacks = {f"fgsm_{eps:g}": v for eps, v in attack_successes(model, test, task.metric,
                                                                       cfg.attack_eps).items()}
    return {
        "metrics": {
            "metric": task.metric,
            "value": value,
            f"test_{task.metric}": value,
            # one 0/1 per test item, in the split's order: paired tests between poolers and seeds
            "test_hits": "".join("1" if h else "0" for h in test_hits) or None,
            "val": result.best_score,
            "best_epoch": result.best_epoch,
            "train_s": time.perf_counter() - start,
            "features_s": feats.build_s,
            "trainable_params": sum(p.numel() for p in model.parameters() if p.requires_grad),
            "train_rows": len(train),
            "test_rows": len(test),
            # for reports, which read results without the task registry
            "backbone": cfg.backbone,
            "max_length": cfg.max_length or task.max_length,
            "objective": backbone_objective(cfg.backbone),
            "neutral": backbone_is_neutral(cfg.backbone),
            "default_backbone": cfg.backbone == task.backbones[0]
            or (cfg.backbone == "hf" and task.backbones[0] in HF_BACKBONES),
            **attacks,
            # seed 0's trained pooler, for the probes (poolwise probe --from-db); one seed keeps
            # the store small (a latent_attention on 384-d features is 3 MB)
            "trained_pooler": pooler_state(model.pooler) if cfg.seed == 0 else None,
        },
        "history": result.history,
    }


def _config_for(name: str) -> Callable[..., FrozenConfig]:
    def make(**params: Any) -> FrozenConfig:
        if params.setdefault("task", name) != name:
            raise ValueError(f"a {name} run cannot have task={params['task']!r}")
        return FrozenConfig(**params)

    return make


for _name, _task in FROZEN_TASKS.items():
    register_task(_name, _config_for(_name), run_frozen, _task.description)
