"""Any poolwise pooler as a sentence-transformers module.

    from sentence_transformers import SentenceTransformer
    from poolwise.integrations.sentence_transformers import use_pooler
    model = use_pooler(SentenceTransformer(path), "adapool", num_heads=8)   # learned: trains with the model
    model.save(out_dir); SentenceTransformer(out_dir)                         # same embeddings back

    model = use_pooler(model, "mean", head=EmbeddingHead(384, truncate_dim=128))  # truncate, then normalise

Learned weights are stored as ``model.safetensors`` beside the module's ``config.json``.
"""

from __future__ import annotations

import types
import warnings
from typing import Any, ClassVar

import torch

from ..pooling import ST_MODES, EmbeddingHead, Pooler, get_pooler
from ..pooling import warm_start as poolwise_warm_start
from ..pooling.functional import pad_packed
from ._common import pool_like_st
from .st_config import _LEGACY_KEYS, pooler_from_st_config

try:  # sentence-transformers >= 6
    from sentence_transformers.base.modules.module import Module
except ImportError:  # 5.x
    from sentence_transformers.models.Module import Module



class PoolwisePooling(Module):
    """A sentence-transformers module that pools ``token_embeddings`` with a poolwise pooler
    into ``sentence_embedding``. ``pooler`` is a poolwise name, a sentence-transformers mode
    name (``"cls"``, ``"lasttoken"``, ...), a poolwise config dict or a :class:`Pooler`."""

    config_keys: ClassVar[list[str]] = ["embedding_dimension", "pooler", "include_prompt"]

    def __init__(self, embedding_dimension: int, pooler: str | dict | Pooler = "mean",
                 include_prompt: bool = True, **pooler_kwargs: Any) -> None:
        super().__init__()
        self.embedding_dimension = int(embedding_dimension)
        self.include_prompt = include_prompt
        self.pool = get_pooler(pooler, defaults={"dim": self.embedding_dimension}, **pooler_kwargs)

    @property
    def pooler(self) -> dict[str, Any]:
        return self.pool.config()

    def forward(self, features: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        """Pool ``token_embeddings`` as sentence-transformers' ``Pooling`` reads its features:
        a padded batch with ``attention_mask``, or the packed ``(1, T, D)`` tokens and
        ``cu_seq_lens_q`` offsets of its flash-attention path; ``prompt_length`` when
        ``include_prompt`` is False; ``token_weights_sum`` of a ``WordWeights`` module."""
        x = features["token_embeddings"]
        prompt = None if self.include_prompt else features.get("prompt_length")
        if isinstance(prompt, torch.Tensor) and prompt.numel() == 1:
            prompt = int(prompt.reshape(-1)[0])
        if isinstance(prompt, int) and prompt == 0:
            prompt = None
        weights = features.get("token_weights_sum")
        if "cu_seq_lens_q" in features:  # unpadded (flash-attention varlen) batch
            packed, cu = x.reshape(-1, x.shape[-1]), features["cu_seq_lens_q"]
            if prompt is None and weights is None:
                features["sentence_embedding"] = self.pool.packed(packed, cu)
                return features
            x, mask = pad_packed(packed, cu)
        else:
            mask = features.get("attention_mask")
            if mask is None or mask.shape[-1] != x.shape[1]:  # as sentence-transformers: all real
                mask = torch.ones(x.shape[:2], dtype=torch.bool, device=x.device)
        features["sentence_embedding"] = pool_like_st(self.pool, x, mask.bool(), prompt, weights)
        return features

    def get_embedding_dimension(self) -> int:
        return self.pool.output_dim(self.embedding_dimension)

    get_sentence_embedding_dimension = get_embedding_dimension

    def save(self, output_path: str, *args: Any, safe_serialization: bool = True, **kwargs: Any) -> None:
        self.save_config(output_path)
        if any(True for _ in self.parameters()):
            self.save_torch_weights(output_path, safe_serialization=safe_serialization)

    @classmethod
    def load(cls, model_name_or_path: str, subfolder: str = "", token: bool | str | None = None,
             cache_folder: str | None = None, revision: str | None = None,
             local_files_only: bool = False, **kwargs: Any) -> PoolwisePooling:
        hub = {"subfolder": subfolder, "token": token, "cache_folder": cache_folder,
               "revision": revision, "local_files_only": local_files_only}
        model = cls(**cls.load_config(model_name_or_path=model_name_or_path, **hub))
        if any(True for _ in model.parameters()):
            model = cls.load_torch_weights(model_name_or_path=model_name_or_path, model=model, **hub)
        return model


class PoolwiseHead(Module):
    """A sentence-transformers module applying an :class:`~poolwise.pooling.EmbeddingHead` to
    ``sentence_embedding``: projection, truncation, normalisation *after* truncation and
    quantisation (the head's config in ``config.json``, its projection and int8 range in
    ``model.safetensors``)."""

    config_keys: ClassVar[list[str]] = ["head"]

    def __init__(self, head: dict | EmbeddingHead) -> None:
        super().__init__()
        self.embedding_head = head if isinstance(head, EmbeddingHead) else EmbeddingHead.from_config(head)

    @property
    def head(self) -> dict[str, Any]:
        return self.embedding_head.config()

    def forward(self, features: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        features["sentence_embedding"] = self.embedding_head(features["sentence_embedding"])
        return features

    def get_embedding_dimension(self) -> int:
        return self.embedding_head.width

    get_sentence_embedding_dimension = get_embedding_dimension

    def save(self, output_path: str, *args: Any, safe_serialization: bool = True, **kwargs: Any) -> None:
        self.save_config(output_path)
        self.save_torch_weights(output_path, safe_serialization=safe_serialization)

    @classmethod
    def load(cls, model_name_or_path: str, subfolder: str = "", token: bool | str | None = None,
             cache_folder: str | None = None, revision: str | None = None,
             local_files_only: bool = False, **kwargs: Any) -> PoolwiseHead:
        hub = {"subfolder": subfolder, "token": token, "cache_folder": cache_folder,
               "revision": revision, "local_files_only": local_files_only}
        model = cls(**cls.load_config(model_name_or_path=model_name_or_path, **hub))
        return cls.load_torch_weights(model_name_or_path=model_name_or_path, model=model, **hub)


def use_pooler(model: Any, pooler: str | dict | Pooler = "mean", include_prompt: bool | None = None,
               head: EmbeddingHead | None = None, warm_start: bool | str = False,
               **pooler_kwargs: Any) -> Any:
    """Replace the ``Pooling`` module of a ``SentenceTransformer`` in place (and return it).
    ``include_prompt`` defaults to the replaced module's setting. ``head`` puts an
    :class:`~poolwise.pooling.EmbeddingHead` right after the pooler, in place of any
    ``Normalize``/``PoolwisePooling`` modules there (the head normalises after truncating).
    ``warm_start=True`` initialises a learned pooler to compute exactly what the replaced
    module computed (its mean, CLS or last token; see :mod:`~poolwise.pooling.warm`),
    so the model's embeddings are unchanged until training moves them; a string names the
    pooling to start from."""
    modules = list(model._modules.items())
    for i, (name, module) in enumerate(modules):
        if type(module).__name__ in ("Pooling", "PoolwisePooling"):
            dim = getattr(module, "embedding_dimension", None) or module.get_embedding_dimension()
            keep = getattr(module, "include_prompt", True) if include_prompt is None else include_prompt
            new = PoolwisePooling(dim, pooler, keep, **pooler_kwargs)
            if warm_start:
                target = warm_start if isinstance(warm_start, str) else _current_pooling(module)
                poolwise_warm_start(new.pool, target)
            device = next((p.device for p in model.parameters()), torch.device("cpu"))
            model._modules[name] = new.to(device)
            reach_include_prompt(model)
            if head is not None:
                if head.dim != new.get_embedding_dimension():
                    raise ValueError(f"head dim={head.dim} does not match the pooler's output "
                                     f"({new.get_embedding_dimension()})")
                replaced = ("Normalize", "PoolwiseHead")
                rest = [m for _, m in modules[i + 1:] if type(m).__name__ not in replaced]
                order = [m for _, m in modules[:i]] + [new, PoolwiseHead(head).to(device)] + rest
                model._modules.clear()
                for j, m in enumerate(order):
                    model._modules[str(j)] = m
            return model
    raise ValueError("the model has no Pooling module to replace")


def _current_pooling(module: Any) -> str:
    """The poolwise name of what a ``Pooling``/``PoolwisePooling`` module computes."""
    if hasattr(module, "pool"):
        return module.pool.name
    spec, _, _ = pooler_from_st_config(module.get_config_dict())
    if not isinstance(spec, str):
        raise ValueError(f"warm_start=True: the replaced module combines several poolings "
                         f"({spec['poolers']}); name the one to start from, e.g. warm_start='mean'")
    return spec


def _set_pooling_include_prompt(model: Any, include_prompt: bool) -> None:
    """sentence-transformers' ``set_pooling_include_prompt``, for its ``Pooling`` module and
    poolwise's :class:`PoolwisePooling` alike (the first of them in the pipeline)."""
    for module in model:
        if type(module).__name__ in ("Pooling", "PoolwisePooling"):
            module.include_prompt = bool(include_prompt)
            return
    warnings.warn("set_pooling_include_prompt: the pipeline has no pooling module; nothing changed",
                  stacklevel=2)


def reach_include_prompt(model: Any) -> Any:
    """Make ``model.set_pooling_include_prompt`` reach a :class:`PoolwisePooling` module
    (sentence-transformers' own method looks for its ``Pooling`` class only and would do
    nothing). Called by :func:`use_pooler` and :func:`load_model`; returns ``model``."""
    model.set_pooling_include_prompt = types.MethodType(_set_pooling_include_prompt, model)
    return model


def load_model(path: str, **kwargs: Any) -> Any:
    """Load a saved ``SentenceTransformer`` directory that uses :class:`PoolwisePooling`.

    sentence-transformers refuses module classes outside its own package unless
    ``trust_remote_code=True``. This helper grants it only after checking that every module
    in ``modules.json`` is a sentence-transformers or poolwise class and that the directory
    ships no Python files, so no code from the directory itself can run."""
    import json
    from pathlib import Path

    from sentence_transformers import SentenceTransformer

    root = Path(path)
    modules = json.loads((root / "modules.json").read_text()) if (root / "modules.json").is_file() else []
    foreign = [m["type"] for m in modules
               if not m["type"].startswith(("sentence_transformers.", "poolwise."))]
    if foreign:
        raise ValueError(f"{path} uses module classes outside sentence-transformers and poolwise: "
                         f"{', '.join(foreign)}; load it with SentenceTransformer(..., "
                         "trust_remote_code=True) only if you trust that code")
    scripts = sorted(str(p.relative_to(root)) for p in root.rglob("*.py"))
    if scripts:
        raise ValueError(f"{path} contains Python files ({', '.join(scripts[:3])}); refusing to trust it")
    from ..models.hf import check_safetensors

    for folder in [root, *(root / str(m.get("path", "")) for m in modules)]:
        if (folder / "config.json").is_file() and folder.is_dir():
            check_safetensors(folder)  # a module's weights too: never unpickled
    remote = _remote_code_entries(root)
    if remote:  # an auto_map can name code in another repository, fetched when online
        raise ValueError(f"{path} asks for remote code ({'; '.join(remote[:3])}); refusing to trust it")
    return reach_include_prompt(SentenceTransformer(str(root), trust_remote_code=True, **kwargs))


def _remote_code_entries(root: Any) -> list[str]:
    """``file: key`` for every ``auto_map`` or ``trust_remote_code`` entry in the JSON files
    below ``root`` (configs of the model, the tokenizer and each module)."""
    import json

    found = []

    def walk(node: Any, where: str) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key in ("auto_map", "trust_remote_code") and value:
                    found.append(f"{where}: {key}")
                walk(value, where)
        elif isinstance(node, list):
            for item in node:
                walk(item, where)

    for file in sorted(root.rglob("*.json")):
        try:
            walk(json.loads(file.read_text()), str(file.relative_to(root)))
        except (OSError, ValueError):
            continue  # not a config we can read: sentence-transformers will not use it either
    return found


_TO_ST = {v: k for k, v in ST_MODES.items()}


def pooler_to_st_config(pooler: Pooler, embedding_dimension: int, include_prompt: bool = True,
                        legacy: bool = False) -> dict[str, Any]:
    """The sentence-transformers pooling config of a parameter-free pooler (6.x form, or the
    5.x boolean keys with ``legacy=True``); ``ValueError`` when there is no equivalent."""
    names = [m.name for m in pooler.members] if pooler.name == "multi" else [pooler.name]
    if pooler.name == "multi" and pooler.combine != "cat":
        raise ValueError("only multi poolers that concatenate have a sentence-transformers equivalent")
    missing = [n for n in names if n not in _TO_ST]
    if missing:
        raise ValueError(f"pooler(s) {missing} have no sentence-transformers equivalent; "
                         f"equivalents exist for {sorted(_TO_ST)}")
    modes = [_TO_ST[n] for n in names]
    if legacy:
        if len(set(modes)) != len(modes) or modes != [m for m in _LEGACY_KEYS.values() if m in modes]:
            raise ValueError("the 5.x config can only express each mode once, in its fixed order")
        return {"word_embedding_dimension": embedding_dimension,
                **{key: m in modes for key, m in _LEGACY_KEYS.items()}, "include_prompt": include_prompt}
    return {"embedding_dimension": embedding_dimension,
            "pooling_mode": modes[0] if len(modes) == 1 else modes, "include_prompt": include_prompt}


def from_st_pooling_dir(path: str) -> PoolwisePooling:
    """A :class:`PoolwisePooling` equivalent to the ``Pooling`` module saved in ``path``
    (a model's ``1_Pooling`` folder)."""
    import json
    from pathlib import Path

    spec, dim, include_prompt = pooler_from_st_config(json.loads((Path(path) / "config.json").read_text()))
    return PoolwisePooling(dim, spec, include_prompt)


def to_st_pooling(module: PoolwisePooling) -> Any:
    """The plain sentence-transformers ``Pooling`` module equivalent to ``module``, so a model
    saved with it loads in sentence-transformers alone (parameter-free poolers only)."""
    try:
        from sentence_transformers.sentence_transformer.modules import Pooling
    except ImportError:
        from sentence_transformers.models import Pooling
    cfg = pooler_to_st_config(module.pool, module.embedding_dimension, module.include_prompt)
    return Pooling(cfg["embedding_dimension"], cfg["pooling_mode"], include_prompt=cfg["include_prompt"])
