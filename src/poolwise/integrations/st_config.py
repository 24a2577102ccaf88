"""Reading a sentence-transformers model directory's files without importing sentence-transformers.

    pipe = read_st_dir(path)     # None when path has no modules.json
    pipe.pooler, pipe.include_prompt, pipe.normalize, pipe.transformer_dir, pipe.others
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..pooling import ST_MODES

_LEGACY_KEYS = {"pooling_mode_cls_token": "cls", "pooling_mode_max_tokens": "max",
                "pooling_mode_mean_tokens": "mean",
                "pooling_mode_mean_sqrt_len_tokens": "mean_sqrt_len_tokens",
                "pooling_mode_weightedmean_tokens": "weightedmean", "pooling_mode_lasttoken": "lasttoken"}


def pooler_from_st_config(config: dict[str, Any]) -> tuple[str | dict, int, bool]:
    """Read a sentence-transformers ``1_Pooling/config.json`` (5.x boolean keys or 6.x
    ``pooling_mode``) as ``(poolwise spec, embedding dimension, include_prompt)``. Several
    modes become a ``multi`` pooler concatenating in sentence-transformers' order."""
    dim = config.get("embedding_dimension", config.get("word_embedding_dimension"))
    if dim is None:
        raise ValueError("not a sentence-transformers pooling config (no embedding dimension): "
                         f"{sorted(config)}")
    mode = config.get("pooling_mode")
    if mode is None:
        modes = [m for key, m in _LEGACY_KEYS.items() if config.get(key)] or ["mean"]
    else:
        modes = [mode] if isinstance(mode, str) else list(mode)
    unknown = [m for m in modes if m not in ST_MODES]
    if unknown:
        raise ValueError(f"unknown sentence-transformers pooling mode(s) {unknown}; "
                         f"known: {sorted(ST_MODES)}")
    names = [ST_MODES[m] for m in modes]
    spec: str | dict = names[0] if len(names) == 1 else {"name": "multi", "poolers": names}
    return spec, int(dim), bool(config.get("include_prompt", True))


@dataclass
class STPipeline:
    """What a sentence-transformers directory declares: the transformer's folder, its pooling
    (a poolwise spec), whether prompts are pooled, whether a ``Normalize`` follows, and the
    class names of any other modules (``Dense``, ...) that poolwise does not run."""

    transformer_dir: Path
    pooler: str | dict | None
    include_prompt: bool = True
    normalize: bool = False
    others: list[str] = field(default_factory=list)
    prompts: dict[str, str] = field(default_factory=dict)


def read_st_dir(path: str | Path) -> STPipeline | None:
    """The pipeline a sentence-transformers directory declares, or None when ``path`` has no
    ``modules.json``. ``ValueError`` names a file that cannot be read."""
    root = Path(path)
    spec_file = root / "modules.json"
    if not spec_file.is_file():
        return None
    try:
        modules = json.loads(spec_file.read_text())
        kinds = [(str(m["type"]).rsplit(".", 1)[-1], root / str(m.get("path", ""))) for m in modules]
    except (ValueError, KeyError, TypeError) as err:
        raise ValueError(f"{spec_file}: not a sentence-transformers module list ({err})") from None
    if not kinds or kinds[0][0] != "Transformer":
        raise ValueError(f"{spec_file}: the first module is {kinds[0][0] if kinds else 'missing'}, "
                         "not a Transformer")
    pipe = STPipeline(transformer_dir=kinds[0][1], pooler=None)
    for kind, where in kinds[1:]:
        if kind == "Pooling":
            try:
                cfg = json.loads((where / "config.json").read_text())
            except (OSError, ValueError) as err:
                raise ValueError(f"{where / 'config.json'}: {err}") from None
            pipe.pooler, _, pipe.include_prompt = pooler_from_st_config(cfg)
        elif kind == "Normalize":
            pipe.normalize = True
        else:
            pipe.others.append(kind)
    extra = root / "config_sentence_transformers.json"
    if extra.is_file():
        try:
            prompts = json.loads(extra.read_text()).get("prompts") or {}
        except ValueError:
            prompts = {}
        pipe.prompts = {str(k): str(v) for k, v in prompts.items() if isinstance(v, str)}
    return pipe
