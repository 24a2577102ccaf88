"""Loading a local Hugging Face model directory (offline), shared by probes and integrations."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def load_local_model(path: str | Path) -> tuple[Any, Any]:
    """``(tokenizer, AutoModel in eval mode)`` from a local directory; a ``ValueError`` that
    names the path when it is not a model directory or does not load."""
    from transformers import AutoModel, AutoTokenizer

    path = Path(path)
    if not (path / "config.json").is_file():
        raise ValueError(f"{path} is not a Hugging Face model directory (no config.json)")
    try:
        return AutoTokenizer.from_pretrained(str(path)), AutoModel.from_pretrained(str(path)).eval()
    except (OSError, ValueError, KeyError) as err:
        raise ValueError(f"cannot load a model from {path}: {str(err).splitlines()[0]}") from None
