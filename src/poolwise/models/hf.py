"""Local Hugging Face models (offline): loading, and token outputs equal to the model's own forward.

poolwise never passes ``position_ids`` to a Hugging Face model. Every architecture builds its
own positions correctly for a *right*-padded batch (BERT counts from 0, the RoBERTa family from
``padding_idx + 1``, rotary and relative models need none), and a causal model's real tokens
never see padding that follows them. So :func:`token_outputs` moves the padding of any batch
to the right (a per-row permutation of ids and mask), runs the model's own forward without
``position_ids``, and moves the outputs back. Left padding, holes in the mask and right padding
all give the model's right-padded result; nothing depends on knowing the architecture.
"""

from __future__ import annotations

import inspect
import json
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

#: tokenizers report this (or larger) when they do not know their model's length
_UNKNOWN_LENGTH = 10**6


def gguf_file(path: Path) -> str | None:
    """The one ``*.gguf`` file of a directory without ``config.json`` (a quantised model as
    llama.cpp ships it), else None; several are an error naming them."""
    if (path / "config.json").is_file():
        return None
    found = sorted(p.name for p in path.glob("*.gguf"))
    if len(found) > 1:
        raise ValueError(f"{path} holds several GGUF files ({', '.join(found)}); name one with gguf_file=")
    return found[0] if found else None


def load_local_model(path: str | Path, gguf: str | None = None) -> tuple[Any, Any]:
    """``(tokenizer, model in eval mode)`` from a local directory: ``AutoModel``, or the encoder
    alone of an encoder-decoder (T5's, through ``AutoModelForTextEncoding``). A directory
    holding one GGUF file (or ``gguf=`` naming it) is dequantised by transformers (needs
    ``pip install gguf accelerate``). A ``ValueError`` names the path when it is not a model
    directory or does not load."""
    from transformers import AutoConfig, AutoModel, AutoModelForTextEncoding, AutoTokenizer

    path = Path(path)
    if not path.is_dir():
        raise ValueError(f"{path} is not a directory")
    gguf = gguf or gguf_file(path)
    if gguf is None and not (path / "config.json").is_file():
        raise ValueError(f"{path} is not a Hugging Face model directory (no config.json, no .gguf file)")
    if gguf is None:
        check_safetensors(path)
    kwargs = {"gguf_file": gguf} if gguf else {"use_safetensors": True}
    try:
        config = AutoConfig.from_pretrained(str(path), **kwargs)
        auto = AutoModelForTextEncoding if _encoder_of(config) else AutoModel
        tokenizer = AutoTokenizer.from_pretrained(str(path), **kwargs)
        model = auto.from_pretrained(str(path), **kwargs).eval()
    except ImportError as err:
        raise ValueError(f"cannot load {path}: {str(err).splitlines()[0]}") from None
    except (OSError, ValueError, KeyError) as err:
        raise ValueError(f"cannot load a model from {path}: {str(err).splitlines()[0]}") from None
    check_backbone(model, path)
    check_tokenizer(tokenizer, model, path)
    if getattr(tokenizer, "pad_token", None) is None and getattr(tokenizer, "eos_token", None) is not None:
        tokenizer.pad_token = tokenizer.eos_token  # decoders often ship none; padding is masked anyway
    return tokenizer, model


#: weight files that are Python pickles: loading one can run code
PICKLED = ("*.bin", "*.pt", "*.pth", "*.ckpt", "*.pkl")


def check_safetensors(path: Path) -> None:
    """Refuse a model directory whose weights are only pickles (``pytorch_model.bin``, ...),
    naming the file and how to convert it: poolwise never unpickles weights."""
    if any(path.glob("*.safetensors")):
        return
    pickled = sorted(p.name for pattern in PICKLED for p in path.glob(pattern))
    if pickled:
        raise ValueError(
            f"{path}: weights only in {', '.join(pickled[:3])} (a Python pickle, which can run code when "
            "loaded); poolwise loads safetensors only. If you trust the file, convert it once: python -c "
            f"\"from transformers import AutoModel; m = AutoModel.from_pretrained('{path}'); "
            f"m.save_pretrained('{path}')\"")


def _encoder_of(config: Any) -> bool:
    """True when ``AutoModel`` would build an encoder-decoder (T5, mT5, UMT5) whose encoder
    alone has a text-encoding class: sentence-transformers runs the encoder too."""
    from transformers.models.auto.modeling_auto import MODEL_FOR_TEXT_ENCODING_MAPPING_NAMES as ENC
    from transformers.models.auto.modeling_auto import MODEL_MAPPING_NAMES as BASE

    kind = getattr(config, "model_type", None)
    return kind in ENC and ENC[kind] != BASE.get(kind) and ENC[kind].endswith("EncoderModel")


def check_tokenizer(tokenizer: Any, model: nn.Module, where: Any = "the model") -> None:
    """Refuse a tokenizer that cannot be the model's: transformers builds one with only its
    special tokens when a directory lacks the tokenizer files, and every word then maps to the
    unknown token (plausible-looking embeddings, chance accuracy)."""
    size = getattr(model.config, "vocab_size", None)
    have = len(tokenizer)
    if isinstance(size, int) and size >= 1000 and have < size // 10:
        raise ValueError(f"{where}: the tokenizer has {have} tokens for a model with a {size}-word "
                         "vocabulary; the tokenizer files (tokenizer.json, vocab.txt, ...) are missing or "
                         "belong to another model")


def check_backbone(model: nn.Module, where: Any = "the model") -> None:
    """Refuse, by name, a model poolwise cannot run the way its own forward runs: one that
    takes no ``attention_mask`` (its real tokens would attend to padding)."""
    params = inspect.signature(model.forward).parameters
    if "attention_mask" not in params:
        raise ValueError(f"{where}: {type(model).__name__}.forward takes no attention_mask, so padding "
                         "would change its outputs; poolwise supports models that take one")


def position_offset(model: nn.Module) -> int:
    """Where the model's learned position table starts counting: ``padding_idx + 1`` for the
    RoBERTa family (RoBERTa, XLM-R, CamemBERT, MPNet: a position table with a padding index),
    else 0."""
    for module in model.modules():
        table = getattr(module, "position_embeddings", None)
        padding_idx = getattr(module, "padding_idx", None)
        if isinstance(table, nn.Embedding) and isinstance(padding_idx, int):
            return padding_idx + 1
    return 0


def position_capacity(model: nn.Module) -> int | None:
    """Tokens the model's position table holds (``max_position_embeddings`` less the RoBERTa
    family's offset: 512 of 514), or None when the config does not say."""
    positions = getattr(model.config, "max_position_embeddings", None)
    if not (isinstance(positions, int) and positions > 0):
        return None
    return positions - position_offset(model)


def max_input_length(path: Path | None, tokenizer: Any, model: nn.Module,
                     requested: int | None = None) -> int:
    """The length inputs are cut to, like sentence-transformers: ``requested``, else
    ``max_seq_length`` of ``sentence_bert_config.json``, else the tokenizer's
    ``model_max_length``; never beyond what the position table holds (512 when nothing says)."""
    length = requested
    if length is None and path is not None and (path / "sentence_bert_config.json").is_file():
        length = json.loads((path / "sentence_bert_config.json").read_text()).get("max_seq_length")
    if length is None:
        told = getattr(tokenizer, "model_max_length", None)
        length = told if isinstance(told, int) and 0 < told < _UNKNOWN_LENGTH else None
    capacity = position_capacity(model)
    if length is None:
        length = capacity or 512
    if not (isinstance(length, int) and length > 0):
        raise ValueError(f"max_length must be a positive int; got {length!r}")
    return min(length, capacity) if capacity else length


def is_right_padded(mask: Tensor) -> bool:
    """Every row's real tokens come first (no left padding, no holes)."""
    m = mask.bool()
    return bool((m[:, 1:] <= m[:, :-1]).all()) if m.shape[1] > 1 else True


def right_padding_index(mask: Tensor) -> Tensor:
    """``target (B, N)``: where each position goes when a row's real tokens move to the front
    in order and its padding to the back (a permutation per row; traceable, no sort)."""
    m = mask.bool()
    real = m.long().cumsum(1)
    pad = (~m).long().cumsum(1)
    return torch.where(m, real - 1, real[:, -1:] + pad - 1)


def token_outputs(model: nn.Module, input_ids: Tensor, attention_mask: Tensor,
                  restore: bool = True) -> tuple[Tensor, Tensor]:
    """``(last_hidden_state, mask)`` of ``model`` for a batch with any padding side: the
    model's own forward on the right-padded batch, without ``position_ids``. With
    ``restore`` the outputs are laid out like the input (``mask`` is then the caller's);
    without, they stay right-padded and ``mask`` is the right-padded mask (pooling does not
    depend on the layout)."""
    if not torch.jit.is_tracing() and is_right_padded(attention_mask):
        out = model(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        return out, attention_mask
    target = right_padding_index(attention_mask)
    ids = torch.zeros_like(input_ids).scatter(1, target, input_ids)
    mask = torch.zeros_like(attention_mask).scatter(1, target, attention_mask)
    out = model(input_ids=ids, attention_mask=mask).last_hidden_state
    if not restore:
        return out, mask
    return out.gather(1, target.unsqueeze(-1).expand(-1, -1, out.shape[-1])), attention_mask
