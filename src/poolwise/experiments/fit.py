"""One training loop for every protocol: epochs of mini-batches, a validation score after each
epoch, the best-validation weights kept in memory and restored at the end, a history row per
epoch and a progress callback. The kNN-Centroid and frozen-backbone protocols use it.

With a ``checkpoint`` path the loop saves everything it needs to continue after each epoch
(model, optimiser, scheduler, the shuffling generator, the best weights so far, the history)
and resumes from it when it exists, so a run of hours survives a killed process: the resumed
run takes the same steps as one that was never stopped."""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import torch
from torch import Tensor, nn

_B = TypeVar("_B")
#: ``progress(epoch, epochs, history_row)`` after every epoch
Progress = Callable[[int, int, dict[str, float]], None]


def iter_rows(n: int, batch: int, generator: torch.Generator | None = None) -> Iterator[Tensor]:
    """Row indices in batches of ``batch``: shuffled by ``generator``, in order without one."""
    order = torch.randperm(n, generator=generator) if generator is not None else torch.arange(n)
    for i in range(0, n, batch):
        yield order[i : i + batch]


def pick_device(name: str) -> torch.device:
    """``"auto"``: the first CUDA device when there is one, else the CPU; otherwise ``name``,
    with a clear error when it asks for CUDA on a machine without it."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(name)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"device {name!r} requested but CUDA is not available here")
    return dev


def snapshot(model: nn.Module) -> dict[str, Tensor]:
    """A detached copy of ``model``'s state, to restore the best epoch with ``load_state_dict``."""
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


@dataclass
class FitResult:
    """What :func:`fit` measured; the model holds the best epoch's weights."""

    best_score: float
    best_epoch: int
    history: list[dict[str, float]]
    train_s: float  # seconds in training steps (validation excluded)


def fit(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    epochs: int,
    batches: Callable[[], Iterable[_B]],
    loss_of: Callable[[_B], tuple[Tensor, int]],
    validate: Callable[[], float],
    *,
    val_name: str = "val_loss",
    higher_is_better: bool = False,
    progress: Progress | None = None,
    clip_grad_norm: float | None = None,
    scheduler: Any | None = None,
    timed: bool = False,
    extra: Callable[[], dict[str, float]] | None = None,
    checkpoint: Path | None = None,
    generator: torch.Generator | None = None,
    on_resume: Callable[[int], None] | None = None,
) -> FitResult:
    """Train ``model`` for ``epochs`` and restore the weights of its best validation epoch.

    Args:
        batches: a fresh iterable of training batches for each epoch.
        loss_of: a batch's mean loss (with its graph) and the number of samples in it.
        validate: the validation score of the current weights (the model is put in train
            mode again afterwards).
        val_name: the score's key in the history rows.
        higher_is_better: whether a larger score is better (accuracy) or worse (a loss).
        clip_grad_norm: clip the gradients' global norm to this value before each step.
        scheduler: a learning-rate scheduler stepped after every optimiser step.
        timed: add ``wall_s`` (seconds since the start) to the history rows; off by default
            so that a rerun's history is identical.
        extra: more columns for each epoch's history row (e.g. the test loss of a learning
            curve), measured after validation.
        checkpoint: save the loop's state here after every epoch and resume from it when the
            file exists (``torch.load(weights_only=True)``: tensors and numbers only).
        generator: the batches' shuffling generator, saved and restored with the checkpoint.
        on_resume: called with the last finished epoch when a checkpoint is resumed (for state
            the caller keeps, such as fresh training sets per epoch).

    Raises ``FloatingPointError`` when an epoch's training loss is not finite.
    """
    start = time.perf_counter()
    best_score, best_epoch, best_state = math.nan, 0, None
    history: list[dict[str, float]] = []
    train_s, done, wall0 = 0.0, 0, 0.0
    if checkpoint is not None and Path(checkpoint).is_file():
        state = torch.load(checkpoint, weights_only=True)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        if scheduler is not None and state.get("scheduler") is not None:
            scheduler.load_state_dict(state["scheduler"])
        if generator is not None and state.get("generator") is not None:
            generator.set_state(state["generator"])
        best_score, best_epoch, best_state = state["best_score"], state["best_epoch"], state["best_state"]
        history, train_s, done = state["history"], state["train_s"], state["epoch"]
        wall0 = history[-1].get("wall_s", 0.0) if history else 0.0
        if on_resume is not None:
            on_resume(done)
    for epoch in range(done + 1, epochs + 1):
        model.train()
        tick = time.perf_counter()
        running, seen = 0.0, 0
        for batch in batches():
            loss, size = loss_of(batch)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if clip_grad_norm is not None:
                nn.utils.clip_grad_norm_(model.parameters(), clip_grad_norm)
            optimizer.step()
            if scheduler is not None:
                scheduler.step()
            running += float(loss.detach()) * size
            seen += size
        train_s += time.perf_counter() - tick
        train_loss = running / max(seen, 1)
        if not math.isfinite(train_loss):
            raise FloatingPointError(f"training diverged at epoch {epoch} (loss {train_loss}); lower lr")
        score = validate()
        better = score > best_score if higher_is_better else score < best_score
        if best_state is None or better:
            best_score, best_epoch, best_state = score, epoch, snapshot(model)
        row = {"epoch": epoch, "train_loss": train_loss, val_name: score}
        if extra is not None:
            row.update(extra())
            model.train()
        if timed:
            row["wall_s"] = wall0 + time.perf_counter() - start
        history.append(row)
        if checkpoint is not None:
            _save(Path(checkpoint), {
                "epoch": epoch, "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict() if scheduler is not None else None,
                "generator": generator.get_state() if generator is not None else None,
                "best_score": best_score, "best_epoch": best_epoch, "best_state": best_state,
                "history": history, "train_s": train_s})
        if progress is not None:
            progress(epoch, epochs, row)
    if best_state is not None:
        model.load_state_dict(best_state)
    return FitResult(best_score, best_epoch, history, train_s)


def _save(path: Path, state: dict[str, Any]) -> None:
    """Write ``state`` atomically: a crash mid-write leaves the previous checkpoint."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)
