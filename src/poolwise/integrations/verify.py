"""A report card for a sentence-transformers embedding pipeline's pooling.

    from poolwise.integrations.verify import verify
    report = verify(model)            # a SentenceTransformer (or `poolwise verify MODEL_DIR`)
    print(report.table()); report.passed

Each check compares the pipeline with an independent reference (the Hugging Face model's own
forward pass on each text alone, pooled by float64 code written apart from
:mod:`poolwise.pooling`; sentence-transformers' ``encode``), or runs the pipeline's pooling
module (or the whole model) twice in ways that must agree, and reports the deviation against
a tolerance:

* **equals the model's own forward**: the pipeline's batched ``encode``, under its tokenizer's
  padding side and the other one, against the model's own forward on each text alone (no
  padding, no ``position_ids``) pooled by the reference of the declared pooling (a learned
  pooler: the pooler in float64 on the unpadded row), normalised when the pipeline says so;
* **equals sentence-transformers' encode** (``poolwise verify`` on a sentence-transformers
  directory): poolwise's ``PooledEncoder`` of the directory against ``SentenceTransformer``;
* **padding side**: the same token vectors laid out right- and left-padded;
* **batch neighbours**: a row pooled alone and among longer and shorter rows; the whole model
  encoding each text alone and in one batch;
* **fp16, bf16**: the pooling of half-precision token vectors (and of an all-padding row) is
  finite and close to fp32;
* **empty input** and **truncation**: ``""`` and a text twice the model's maximum length
  encode to finite vectors;
* **declared vs actual pooling**: which reference pooling (first, last, mean, max, weighted
  mean, mean/sqrt(n)) of the model's own token vectors reproduces the pipeline's embeddings,
  against what its pooling config (or ``declared=``) says;
* **packed vs reference**: poolwise's operator for the declared pooling on packed token
  vectors equals the float64 reference;
* **normalisation**: whether the embeddings have unit norm, and whether that is what the
  pipeline declares (a ``Normalize`` module, or ``PooledEncoder.normalize``).

It accepts a ``SentenceTransformer`` or a :class:`~poolwise.integrations.transformers.PooledEncoder`
(any local Hugging Face model with a poolwise pooler).
"""

from __future__ import annotations

import copy
import json
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from ..pooling import get_pooler
from .reference import own_forward_tokens, reference_pool

TEXTS = (
    "a", "The cat sat on the mat.", "Pooling turns token vectors into one vector per text.",
    "Left padding moves the first real token away from position zero, and a CLS pooler that "
    "reads position zero then returns a padding vector instead of the text's embedding.",
    "short", "Embeddings should not depend on which other texts share the batch.",
)
#: the poolings a pipeline may really apply, by poolwise name
CANDIDATES = ("first", "last", "mean", "max", "weighted_mean", "mean_sqrt_len")


@dataclass
class Check:
    """One check: whether it passed, the measured deviation and the tolerance it was held to
    (None where the check is a yes/no), and what was compared."""

    name: str
    passed: bool
    deviation: float | None
    tolerance: float | None
    detail: str = ""


@dataclass
class Report:
    """Every check of one model; :attr:`passed` when all pass."""

    model: str
    checks: list[Check] = field(default_factory=list)
    #: wall time of the checks (model loading not included)
    seconds: float | None = None

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.checks)

    def table(self) -> str:
        """A plain-text table: check, result, deviation, tolerance, detail."""
        rows = [("check", "result", "deviation", "tolerance", "detail")]
        for c in self.checks:
            rows.append((c.name, "pass" if c.passed else "FAIL",
                         "-" if c.deviation is None else f"{c.deviation:.2e}",
                         "-" if c.tolerance is None else f"{c.tolerance:.0e}", c.detail))
        widths = [max(len(r[i]) for r in rows) for i in range(4)]
        lines = ["  ".join(cell.ljust(w) for cell, w in zip(r[:4], widths)) + "  " + r[4] for r in rows]
        failed = sum(not c.passed for c in self.checks)
        verdict = "all checks pass" if self.passed else f"{failed} check(s) FAIL"
        if self.seconds is not None:
            verdict += f" ({self.seconds:.1f} s)"
        return "\n".join([f"poolwise verify: {self.model}", *lines, verdict])

    def to_json(self) -> str:
        return json.dumps({"model": self.model, "passed": self.passed, "seconds": self.seconds,
                           "checks": [asdict(c) for c in self.checks]}, indent=1)


def _pooling_module(model: Any) -> tuple[int, Any]:
    for i, module in enumerate(model):
        if "pool" in type(module).__name__.lower():
            return i, module
    raise ValueError("the pipeline has no pooling module (a module whose class name contains 'Pool')")


class _PoolerModule(torch.nn.Module):
    """A PooledEncoder's pooler behind the features interface of a sentence-transformers module."""

    def __init__(self, pool: Any) -> None:
        super().__init__()
        self.pool = pool

    def forward(self, features: dict[str, Tensor]) -> dict[str, Tensor]:
        return {"sentence_embedding": self.pool(features["token_embeddings"], features["attention_mask"])}


class _Pipeline:
    """What the checks need from a model: its Hugging Face backbone and tokenizer (for the
    model's own forward), its pooling, what follows it, and its encode."""

    def __init__(self, model: Any) -> None:
        self.model = model
        if hasattr(model, "pooler") and hasattr(model, "token_outputs"):  # a PooledEncoder
            self.after, self.declared, self.max_length = [], model.pooler.name, model.max_length
            self.pooler = model.pooler
            self.module = _PoolerModule(model.pooler)
            self.backbone, self.tokenizer = model.model, model.tokenizer
            self.normalize = bool(model.normalize) and model.head is None
            if model.head is not None:
                self.after = ["EmbeddingHead"]
        else:
            idx, self.module = _pooling_module(model)
            self.after = [type(m).__name__ for m in list(model)[idx + 1:]]
            self.declared = declared_pooling(self.module)
            self.pooler = getattr(self.module, "pool", None) or self.declared
            self.max_length = int(getattr(model, "max_seq_length", 512) or 512)
            first = model[0]
            self.backbone = getattr(first, "auto_model", None) if idx == 1 else None
            self.tokenizer = getattr(first, "tokenizer", None)
            self.normalize = "Normalize" in self.after

    @property
    def padding_side(self) -> str:
        return getattr(self.tokenizer, "padding_side", "right")

    @padding_side.setter
    def padding_side(self, side: str) -> None:
        if self.tokenizer is not None:
            self.tokenizer.padding_side = side

    def tokens(self, texts: list[str]) -> list[Tensor]:
        """Each text's token vectors, from the model's own forward when there is a backbone."""
        if self.backbone is not None:
            return own_forward_tokens(self.backbone, self.tokenizer, texts, self.max_length)
        out = self.model.encode(texts, output_value="token_embeddings", batch_size=len(texts))
        return [t.float().cpu() for t in out]

    def encode(self, texts: list[str], batch_size: int) -> Tensor:
        if hasattr(self.model, "token_outputs"):
            return self.model.encode(texts, batch_size=batch_size).float().cpu()
        return self.model.encode(texts, batch_size=batch_size, convert_to_tensor=True).float().cpu()


def declared_pooling(module: Any) -> str | None:
    """The poolwise name of what a pooling module says it does, when it says."""
    pool = getattr(module, "pool", None)
    if pool is not None and hasattr(pool, "name"):
        return pool.name
    if hasattr(module, "get_config_dict"):
        from .sentence_transformers import pooler_from_st_config

        try:
            spec, _, _ = pooler_from_st_config(module.get_config_dict())
        except (ValueError, KeyError):
            return None
        return get_pooler(spec).name if isinstance(spec, str) else None
    return None


def _layouts(tokens: list[Tensor], left: bool) -> tuple[Tensor, Tensor]:
    n = max(len(t) for t in tokens)
    x = torch.zeros(len(tokens), n, tokens[0].shape[-1])
    mask = torch.zeros(len(tokens), n, dtype=torch.long)
    for i, t in enumerate(tokens):
        span = slice(n - len(t), n) if left else slice(0, len(t))
        x[i, span], mask[i, span] = t, 1
        if left:  # padding holds garbage, as a model's outputs at padded positions do
            x[i, : n - len(t)] = 3.0
        else:
            x[i, len(t):] = 3.0
    return x, mask


def _in_dtype(module: Any, dtype: torch.dtype) -> Any:
    """A pooling module as a half-precision pipeline runs it: a learned one with its weights in
    ``dtype`` (a copy), a parameter-free one as it is."""
    if isinstance(module, torch.nn.Module) and any(True for _ in module.parameters()):
        return copy.deepcopy(module).to(dtype)
    return module


def _pool(module: Any, x: Tensor, mask: Tensor) -> Tensor:
    with torch.no_grad():
        return module({"token_embeddings": x, "attention_mask": mask})["sentence_embedding"].float()


def _dev(a: Tensor, b: Tensor) -> float:
    """Largest difference relative to the larger vector's size, per row."""
    scale = torch.maximum(a.norm(dim=-1), b.norm(dim=-1)).clamp_min(1e-12)
    return float(((a - b).norm(dim=-1) / scale).max())


def verify(model: Any, texts: Sequence[str] | None = None, declared: str | None = None,
           name: str = "model", st_model: Any = None) -> Report:
    """Check the pooling of a ``SentenceTransformer`` or a
    :class:`~poolwise.integrations.transformers.PooledEncoder`; see the module docstring.
    ``st_model`` (with a PooledEncoder): a ``SentenceTransformer`` of the same directory whose
    ``encode`` the PooledEncoder must equal."""
    texts = list(texts or TEXTS)
    if len(texts) < 2:
        raise ValueError("verify needs at least 2 texts")
    started = time.perf_counter()
    report = Report(name)
    add = report.checks.append
    pipe = _Pipeline(model)
    module = pipe.module
    with torch.no_grad():
        tokens = pipe.tokens(texts)
    right = _pool(module, *_layouts(tokens, left=False))
    left = _pool(module, *_layouts(tokens, left=True))
    dev = _dev(right, left)
    add(Check("padding side (pooling)", dev <= 1e-5, dev, 1e-5, "right- vs left-padded token vectors"))
    order = sorted(range(len(tokens)), key=lambda i: len(tokens[i]))
    alone = torch.cat([_pool(module, *_layouts([tokens[i]], left=False)) for i in order])
    dev = _dev(alone, right[order])
    add(Check("batch neighbours (pooling)", dev <= 1e-5, dev, 1e-5, "a row alone vs among others"))
    side = pipe.padding_side
    with torch.no_grad():
        batched = pipe.encode(texts, len(texts))
        single = torch.cat([pipe.encode([t], 1) for t in texts])
        pipe.padding_side = _other_side(side)
        try:
            flipped = pipe.encode(texts, len(texts))
        finally:
            pipe.padding_side = side
    dev = _dev(single, batched)
    add(Check("batch neighbours (model)", dev <= 1e-4, dev, 1e-4, "encode alone vs in one batch"))
    _own_forward_check(report, pipe, tokens, {side: batched, _other_side(side): flipped})
    if st_model is not None:
        add(agreement(model, st_model, texts, "equals sentence-transformers' encode",
                      "this pipeline vs SentenceTransformer(dir).encode, one batch"))
    x, mask = _layouts(tokens, left=False)
    for label, dtype, tol in (("fp16", torch.float16, 1e-2), ("bf16", torch.bfloat16, 3e-2)):
        try:  # plus an all-padding row: a clamp(count, 1e-9) is 0 in fp16, and 0 / 0 is NaN
            low = torch.cat([x, torch.zeros_like(x[:1])]).to(dtype)
            pooled = _pool(_in_dtype(module, dtype), low, torch.cat([mask, torch.zeros_like(mask[:1])]))
            finite = bool(torch.isfinite(pooled).all())
            dev = _dev(pooled[:-1], right) if finite else float("inf")
            detail = "finite (an empty row included), close to fp32" if finite else f"NaN or inf in {label}"
            add(Check(f"{label} pooling", finite and dev <= tol, dev, tol, detail))
        except RuntimeError as err:  # e.g. a module that cannot run in this dtype on this device
            add(Check(f"{label} pooling", True, None, None, f"not run: {str(err).splitlines()[0][:60]}"))
    long_text = " ".join(["word"] * (2 * pipe.max_length))
    for label, text in (("empty input", ""), ("truncation", long_text)):
        try:
            with torch.no_grad():
                emb = pipe.encode([text], 1)
            ok = bool(torch.isfinite(emb).all())
            add(Check(label, ok, None, None, "finite" if ok else "NaN or inf"))
        except Exception as err:  # any failure to encode is what this check reports
            add(Check(label, False, None, None, f"{type(err).__name__}: {str(err).splitlines()[0][:60]}"))
    said = declared or pipe.declared
    if any(a != "Normalize" for a in pipe.after):
        add(Check("declared vs actual pooling", True, None, None,
                  f"not comparable: {', '.join(pipe.after)} after pooling"))
    else:
        target = F.normalize(batched, dim=-1)
        scores = {}
        for cand in CANDIDATES:
            emb = reference_pool(cand, tokens)[0].float()
            scores[cand] = float(F.cosine_similarity(F.normalize(emb, dim=-1), target, dim=-1).min())
        best = max(scores, key=scores.get)
        if said in scores and scores[said] >= scores[best] - 1e-6:  # ties: mean and mean_sqrt_len
            best = said                                             # point the same way
        detail = (f"best match {best} (min cosine {scores[best]:.6f}) among reference poolings of the "
                  "model's own token vectors, against encode()'s output")
        if said is None:
            add(Check("declared vs actual pooling", True, None, None, detail + "; nothing declared"))
        elif said not in scores:  # a learned pooler: the own-forward row compares it with its twin
            add(Check("declared vs actual pooling", True, None, None,
                      f"declared {said}, a learned pooler (not a reference pooling; see the own-forward "
                      "row); "
                      + detail))
        else:
            said_score = scores.get(said, float("nan"))
            ok = said in scores and said_score >= 1 - 1e-4
            add(Check("declared vs actual pooling", ok, 1 - said_score if said in scores else None, 1e-4,
                      f"declared {said}; " + detail))
    if said in CANDIDATES:  # poolwise's own operator for it: packed and padded agree
        ours = get_pooler(said)
        lengths = torch.tensor([0] + [len(t) for t in tokens])
        packed = ours.packed(torch.cat(tokens), lengths.cumsum(0))
        dev = _dev(packed, reference_pool(said, tokens)[0].float())
        add(Check("packed vs reference (poolwise)", dev <= 1e-5, dev, 1e-5,
                  f"poolwise {said} on packed token vectors vs the float64 reference"))
    _normalisation_check(report, pipe, batched)
    report.seconds = time.perf_counter() - started
    return report


def agreement(a: Any, b: Any, texts: Sequence[str], name: str, detail: str) -> Check:
    """A check that two pipelines (PooledEncoder or SentenceTransformer) encode ``texts`` alike."""
    outs = [_Pipeline(m).encode(list(texts), len(texts)) for m in (a, b)]
    dev = _dev(*outs) if outs[0].shape == outs[1].shape else float("inf")
    return Check(name, dev <= 1e-4, dev, 1e-4, detail)


def _other_side(side: str) -> str:
    return "left" if side == "right" else "right"


def _own_forward_check(report: Report, pipe: _Pipeline, tokens: list[Tensor],
                       outputs: dict[str, Tensor]) -> None:
    """The pipeline's batched encode under both padding sides against the model's own forward
    (each text alone) pooled by the reference, then normalised if the pipeline declares it."""
    label = "equals the model's own forward"
    if pipe.backbone is None:
        report.checks.append(Check(label, True, None, None, "not run: no Hugging Face backbone to call"))
        return
    if any(a != "Normalize" for a in pipe.after) or pipe.pooler is None:
        what = ", ".join(a for a in pipe.after if a != "Normalize") or "an undeclared pooling"
        report.checks.append(Check(label, True, None, None, f"not comparable: {what}"))
        return
    want, how = reference_pool(pipe.pooler, tokens)
    want = F.normalize(want, dim=-1) if pipe.normalize else want
    (side, out), (other, flipped) = outputs.items()
    dev = _dev(out.double(), want)
    report.checks.append(Check(
        label, dev <= 1e-4, dev, 1e-4, f"encode ({side} padding, one batch) vs {how} of each text "
        f"alone{', normalised' if pipe.normalize else ''}"))
    dev = _dev(flipped.double(), want)
    name = f"{other} padding (model)"
    if hasattr(pipe.model, "token_outputs"):  # PooledEncoder promises any padding side
        report.checks.append(Check(name, dev <= 1e-4, dev, 1e-4,
                                   f"encode with the tokenizer set to {other} padding vs the same reference"))
    else:  # sentence-transformers makes no such promise: reported, not failed
        detail = ("same as the model's own forward" if dev <= 1e-4 else
                  f"differs by {dev:.2g}: this pipeline must keep {side} padding (the model gets no "
                  "position_ids)")
        report.checks.append(Check(name, True, dev, None, f"informational: {detail}"))


def _normalisation_check(report: Report, pipe: _Pipeline, batched: Tensor) -> None:
    norms = batched.norm(dim=-1)
    unit = bool((norms - 1).abs().max() <= 1e-4)
    said = "a Normalize module" if "Normalize" in pipe.after else ("the pipeline's normalize setting"
                                                                    if pipe.normalize else None)
    shown = "unit norms" if unit else f"norms {float(norms.min()):.3g} to {float(norms.max()):.3g}"
    if pipe.after and pipe.after != ["Normalize"] and not pipe.normalize:
        report.checks.append(Check("normalisation", True, None, None,
                                   f"{shown}; set by {', '.join(pipe.after)}, nothing to compare with"))
        return
    ok = unit == pipe.normalize
    detail = f"{shown}; {'declared by ' + said if said else 'no normalisation declared'}"
    report.checks.append(Check("normalisation", ok, float((norms - 1).abs().max()), 1e-4, detail))
