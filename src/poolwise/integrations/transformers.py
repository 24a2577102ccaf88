"""A Hugging Face ``AutoModel`` plus a poolwise pooler: one embedding per input.

    enc = PooledEncoder.from_pretrained("path/to/model", pooler="last")   # any local HF model directory
    emb = enc.encode(["some text", ...], prompt="query: ", normalize=True)
    enc.save_pretrained("out")   # model, tokenizer, poolwise_pooler.json (+ .safetensors if learned)
    enc.head = EmbeddingHead(enc.dim, truncate_dim=256, quantize="int8")   # after pooling (saved too)

Padding side does not matter (the pooler finds real tokens from the mask), and a prompt
prefix can be excluded from pooling per row without touching the caller's mask.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from ..models.hf import check_backbone, load_local_model, max_input_length, token_outputs
from ..pooling import EmbeddingHead, Pooler, get_pooler
from ._common import pool_like_st
from .st_config import read_st_dir

ONNX_OPSET = 17
CONFIG_NAME = "poolwise_pooler.json"
WEIGHTS_NAME = "poolwise_pooler.safetensors"
HEAD_CONFIG_NAME = "poolwise_head.json"
HEAD_WEIGHTS_NAME = "poolwise_head.safetensors"
#: the encoder's own settings: input length, whether prompts are pooled, default normalisation
ENCODER_CONFIG_NAME = "poolwise_encoder.json"


def _load_state(module: nn.Module, weights: Path, cfg_path: Path, what: str) -> None:
    """Load safetensors ``weights`` into ``module``; errors name the file and the tensors."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        state = load_file(str(weights))
    except (SafetensorError, OSError) as err:
        raise ValueError(f"{weights}: not a readable safetensors file ({err})") from None
    expected = {k: tuple(v.shape) for k, v in module.state_dict().items()}
    got = {k: tuple(v.shape) for k, v in state.items()}
    if got != expected:
        wrong = sorted(k for k in expected.keys() & got.keys() if expected[k] != got[k])
        detail = "; ".join(f"{k}: {got[k]} for {expected[k]}" for k in wrong[:3])
        missing, extra = sorted(expected.keys() - got.keys()), sorted(got.keys() - expected.keys())
        detail += f"{'; ' if detail else ''}missing {missing}" if missing else ""
        detail += f"{'; ' if detail else ''}unexpected {extra}" if extra else ""
        raise ValueError(f"{weights} does not fit the {what} of {cfg_path.name}: {detail}")
    module.load_state_dict(state)


def load_pooler(folder: str | Path) -> Pooler:
    """The pooler saved in ``folder`` by :meth:`PooledEncoder.save_pretrained`: its config
    (``poolwise_pooler.json``) and learned weights (``poolwise_pooler.safetensors``, never
    unpickled). ``ValueError`` names the file and what is wrong with it."""
    folder = Path(folder)
    cfg_path = folder / CONFIG_NAME
    if not cfg_path.is_file():
        raise ValueError(f"no {CONFIG_NAME} in {folder}")
    try:
        pooler = get_pooler(json.loads(cfg_path.read_text()))
    except (ValueError, TypeError) as err:  # json.JSONDecodeError is a ValueError
        raise ValueError(f"{cfg_path}: {str(err).splitlines()[0]}") from None
    weights = folder / WEIGHTS_NAME
    if weights.is_file():
        _load_state(pooler, weights, cfg_path, f"pooler ({pooler.name})")
    return pooler


def _encoder_settings(folder: Path) -> dict[str, Any] | None:
    """The settings :meth:`PooledEncoder.save_pretrained` wrote, checked, or None."""
    file = folder / ENCODER_CONFIG_NAME
    if not file.is_file():
        return None
    try:
        cfg = json.loads(file.read_text())
        out = {"max_length": cfg["max_length"], "include_prompt": cfg["include_prompt"],
               "normalize": cfg["normalize"]}
    except (ValueError, KeyError, TypeError) as err:
        raise ValueError(f"{file}: not a poolwise encoder config ({err})") from None
    if not (isinstance(out["max_length"], int) and out["max_length"] > 0) or not all(
            isinstance(out[k], bool) for k in ("include_prompt", "normalize")):
        raise ValueError(f"{file}: expected a positive int max_length and boolean include_prompt, "
                         f"normalize; got {out}")
    return out


def load_head(folder: str | Path) -> EmbeddingHead | None:
    """The :class:`~poolwise.pooling.EmbeddingHead` saved in ``folder`` (config and
    safetensors state: projection, int8 range), or None when there is none."""
    folder = Path(folder)
    cfg_path = folder / HEAD_CONFIG_NAME
    if not cfg_path.is_file():
        return None
    try:
        head = EmbeddingHead.from_config(json.loads(cfg_path.read_text()))
    except (ValueError, TypeError) as err:
        raise ValueError(f"{cfg_path}: {str(err).splitlines()[0]}") from None
    weights = folder / HEAD_WEIGHTS_NAME
    if not weights.is_file():
        raise ValueError(f"{cfg_path} has no {HEAD_WEIGHTS_NAME} beside it")
    _load_state(head, weights, cfg_path, "head")
    return head


class PooledEncoder(nn.Module):
    """A Hugging Face model, a poolwise pooler and, optionally, an :class:`EmbeddingHead`
    (projection, truncation, normalisation, quantisation) applied by :meth:`encode`.

    The model runs as its own forward does on a right-padded batch, whatever the tokenizer's
    padding side (see :mod:`poolwise.models.hf`): poolwise passes no ``position_ids``.
    ``include_prompt`` says whether a prompt given to :meth:`encode` is pooled (False: only
    the text after it is); ``normalize`` is :meth:`encode`'s default."""

    def __init__(self, model: nn.Module, tokenizer: Any, pooler: Pooler, max_length: int | None = None,
                 head: EmbeddingHead | None = None, include_prompt: bool = False,
                 normalize: bool = False) -> None:
        super().__init__()
        check_backbone(model)
        self.model, self.tokenizer, self.pooler = model, tokenizer, pooler
        # cut inputs like sentence-transformers would, never past the model's position table
        self.max_length = max_input_length(None, tokenizer, model, max_length)
        self.head, self.include_prompt, self.normalize = head, include_prompt, normalize
        self.dim = int(model.config.hidden_size)

    @classmethod
    def from_pretrained(cls, path: str | Path, pooler: str | dict | Pooler | None = None,
                        max_length: int | None = None, device: str = "cpu", gguf_file: str | None = None,
                        **pooler_kwargs: Any) -> PooledEncoder:
        """Load a local model directory: a Hugging Face one, a sentence-transformers one, or a
        folder with one GGUF file (``gguf_file=`` names it among several).

        ``pooler=None`` uses the pooler saved there by :meth:`save_pretrained`, else the
        sentence-transformers ``Pooling`` config (with its ``include_prompt`` and its
        ``Normalize``), else ``"mean"``; a head saved there is loaded too. Inputs are cut to
        ``max_length``, else ``sentence_bert_config.json``'s ``max_seq_length``, else the
        tokenizer's ``model_max_length``. A sentence-transformers pipeline with modules that
        poolwise does not run (``Dense``, ...) is refused when ``pooler=None``."""
        path = Path(path)
        st = read_st_dir(path)
        if st is not None and pooler is None and (st.others or st.pooler is None):
            what = ", ".join(st.others) or "no Pooling module"
            raise ValueError(f"{path}: the sentence-transformers pipeline has {what} after the transformer, "
                             "which PooledEncoder does not run; use SentenceTransformer (with use_pooler), "
                             "or name a pooler to pool the transformer's outputs yourself")
        model_dir = st.transformer_dir if st is not None else path
        tokenizer, model = load_local_model(model_dir, gguf_file)
        dim = int(model.config.hidden_size)
        include_prompt, normalize = False, False
        if pooler is None and (path / CONFIG_NAME).is_file():
            pool = load_pooler(path)
        elif pooler is None and st is not None:
            pool = get_pooler(st.pooler, defaults={"dim": dim}, **pooler_kwargs)
            include_prompt, normalize = st.include_prompt, st.normalize
        else:
            pool = get_pooler(pooler or "mean", defaults={"dim": dim}, **pooler_kwargs)
        saved = _encoder_settings(path)
        if saved is not None and pooler is None:
            include_prompt, normalize = saved["include_prompt"], saved["normalize"]
            max_length = max_length or saved["max_length"]
        length = max_input_length(model_dir, tokenizer, model, max_length)
        return cls(model, tokenizer, pool, length, load_head(path), include_prompt,
                   normalize).to(device).eval()

    def token_outputs(self, input_ids: Tensor, attention_mask: Tensor) -> Tensor:
        """The model's last hidden states ``(B, N, D)``, laid out like the input: for any
        padding side, what the model's own forward gives on the right-padded batch."""
        return token_outputs(self.model, input_ids, attention_mask)[0]

    def forward(self, input_ids: Tensor, attention_mask: Tensor,
                prompt_lengths: Tensor | None = None) -> Tensor:
        tokens, mask = self._tokens_without_empty_rows(input_ids, attention_mask)
        if self.include_prompt:
            prompt_lengths = None
        return pool_like_st(self.pooler, tokens, mask, prompt_lengths)

    def _tokens_without_empty_rows(self, input_ids: Tensor, attention_mask: Tensor) -> tuple[Tensor, Tensor]:
        """Token outputs (right-padded) and their mask; rows without a real token (``""`` on a
        tokenizer that adds no special token) never reach the model (a decoder cannot run on
        zero tokens), so the pooler's empty-row policy decides their embedding."""
        if torch.jit.is_tracing():
            return token_outputs(self.model, input_ids, attention_mask, restore=False)
        real = attention_mask.bool().any(1)
        if bool(real.all()):
            return token_outputs(self.model, input_ids, attention_mask, restore=False)
        b, n = attention_mask.shape
        tokens = torch.zeros(b, max(n, 1), self.dim, device=input_ids.device,
                             dtype=next(self.model.parameters()).dtype)
        mask = torch.zeros(b, max(n, 1), dtype=attention_mask.dtype, device=attention_mask.device)
        if bool(real.any()):
            out, sub = token_outputs(self.model, input_ids[real], attention_mask[real], restore=False)
            tokens[real, : out.shape[1]], mask[real, : sub.shape[1]] = out, sub
        return tokens, mask

    def prompt_length(self, prompt: str) -> int:
        """Tokens a prompt prefix occupies at the start of an encoded input, leading special
        tokens (``[CLS]``, ``<s>``) included."""
        with_special = self.tokenizer("x")["input_ids"]
        bare = self.tokenizer("x", add_special_tokens=False)["input_ids"]
        lead = next((i for i in range(len(with_special)) if with_special[i:i + len(bare)] == bare), 0)
        return lead + len(self.tokenizer(prompt, add_special_tokens=False)["input_ids"])

    def encode(self, texts: Sequence[str], batch_size: int = 32, normalize: bool | None = None,
               prompt: str | Sequence[str] | None = None, chunk_size: int | None = None,
               stride: int = 0) -> Tensor:
        """Embeddings ``(len(texts), D)``. ``prompt`` (one for all, or one per text) is
        prepended to each text and, unless :attr:`include_prompt`, excluded from pooling.
        ``normalize=None`` takes :attr:`normalize` (True for a sentence-transformers model
        with a ``Normalize`` module). With a :attr:`head`, its output (int8 or packed bits when
        it quantises); normalising is then the head's job.

        ``chunk_size`` encodes texts longer than it in windows of ``chunk_size`` tokens whose
        neighbours share ``stride`` tokens of context, and pools every token of the text once
        with the pooler's chunked state (:mod:`~poolwise.pooling.streaming`): the leading
        special tokens of the first window, each window's new tokens, the trailing special
        tokens of the last. The pooling is exact; the encoding is not one long forward pass
        (a window sees only ``stride`` tokens of its neighbours)."""
        if isinstance(texts, str):
            raise TypeError("texts must be a list of strings, not a single string")
        explicit, normalize = normalize, (self.normalize if normalize is None else normalize)
        if explicit and self.head is not None:
            raise ValueError("this encoder has a head: set EmbeddingHead(normalize=True) instead of "
                             "encode(normalize=True), so truncation comes before normalisation")
        if chunk_size is not None:
            return self._encode_chunked(texts, normalize, prompt, chunk_size, stride)
        prompts = [prompt] * len(texts) if isinstance(prompt, str) or prompt is None else list(prompt)
        if len(prompts) != len(texts):
            raise ValueError(f"got {len(prompts)} prompts for {len(texts)} texts")
        device = next(self.model.parameters()).device
        out = []
        with torch.no_grad():
            for i in range(0, len(texts), batch_size):
                chunk, pchunk = list(texts[i:i + batch_size]), prompts[i:i + batch_size]
                joined = [(p or "") + t for p, t in zip(pchunk, chunk)]
                batch = self.tokenizer(joined, padding=True, truncation=True, max_length=self.max_length,
                                       return_tensors="pt").to(device)
                lengths = None
                if any(pchunk):
                    lengths = torch.tensor([self.prompt_length(p) if p else 0 for p in pchunk], device=device)
                out.append(self(batch["input_ids"], batch["attention_mask"], lengths))
        emb = torch.cat(out) if out else torch.zeros(0, self.pooler.output_dim(self.dim))
        if self.head is not None:
            with torch.no_grad():
                return self.head(emb)
        return torch.nn.functional.normalize(emb, dim=-1) if normalize else emb

    def _encode_chunked(self, texts: Sequence[str], normalize: bool, prompt: Any, chunk_size: int,
                        stride: int) -> Tensor:
        from ..pooling import mergeable, pool_chunks

        if prompt is not None:
            raise ValueError("chunk_size and prompt cannot be combined yet (the prompt would be cut "
                             "into the first window only)")
        if not mergeable(self.pooler):
            raise ValueError(f"chunk_size needs a pooler that pools in chunks; {self.pooler.name} "
                             "does not (see poolwise.pooling.mergeable)")
        if not (isinstance(chunk_size, int) and isinstance(stride, int) and 0 <= stride < chunk_size - 2):
            raise ValueError(f"need 0 <= stride < chunk_size - 2 (room for special tokens); got "
                             f"chunk_size={chunk_size!r}, stride={stride!r}")
        device = next(self.model.parameters()).device
        rows = []
        with torch.no_grad():
            for text in texts:
                win = self.tokenizer(text, truncation=True, max_length=chunk_size, stride=stride,
                                     return_overflowing_tokens=True, return_special_tokens_mask=True,
                                     padding=True, return_tensors="pt")
                mask, special = win["attention_mask"].bool(), win["special_tokens_mask"].bool() & \
                    win["attention_mask"].bool()
                content = mask & ~special
                keep = content.clone()
                first_content = content.long().argmax(1)
                for w in range(1, len(keep)):  # the first `stride` content tokens repeat the previous window
                    start = int(first_content[w])
                    keep[w, start:start + stride] = False
                pos = torch.arange(mask.shape[1])
                lead = special & (pos[None] < first_content[:, None])
                keep[0] |= lead[0]
                keep[-1] |= special[-1] & ~lead[-1]
                tokens = self.token_outputs(win["input_ids"].to(device), win["attention_mask"].to(device))
                keep = keep.to(device)
                windows = [(tokens[w:w + 1], keep[w:w + 1]) for w in range(len(tokens))]
                rows.append(pool_chunks(self.pooler, windows))
        emb = torch.cat(rows) if rows else torch.zeros(0, self.pooler.output_dim(self.dim))
        if self.head is not None:
            with torch.no_grad():
                return self.head(emb)
        return torch.nn.functional.normalize(emb, dim=-1) if normalize else emb

    def export_onnx(self, path: str | Path, normalize: bool | None = None, opset: int = ONNX_OPSET) -> Path:
        """Write backbone + pooler (+ head) as one ONNX graph: inputs ``input_ids`` and
        ``attention_mask`` (int64, ``(batch, sequence)``, both axes dynamic), output
        ``embedding`` (``normalize=True`` L2-normalises when there is no head; None takes
        :attr:`normalize`). Traced with
        PyTorch's TorchScript-based exporter in eval mode; poolwise takes its dense, shape-free
        paths while tracing, so the graph runs for any batch size, length and padding side."""
        if normalize and self.head is not None:
            raise ValueError("this encoder has a head: its normalize setting applies, not normalize=")
        normalize = self.normalize if normalize is None else normalize
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        graph = _OnnxGraph(self, normalize).eval()
        # the traced batch must be padded and longer than a few tokens: a model's length-1 or
        # no-padding branches would otherwise be baked into the graph
        batch = self.tokenizer(["the quick brown fox jumps over the lazy dog", "a"], padding=True,
                               return_tensors="pt")
        device = next(self.model.parameters()).device
        args = (batch["input_ids"].to(device), batch["attention_mask"].to(device))
        import warnings

        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")  # tracer warnings about Python control flow on shapes
            torch.onnx.export(graph, args, str(path), input_names=["input_ids", "attention_mask"],
                              output_names=["embedding"], opset_version=opset, dynamo=False,
                              dynamic_axes={"input_ids": {0: "batch", 1: "sequence"},
                                            "attention_mask": {0: "batch", 1: "sequence"},
                                            "embedding": {0: "batch"}})
        return path

    def save_pretrained(self, path: str | Path) -> None:
        path = Path(path)
        self.model.save_pretrained(str(path))
        self.tokenizer.save_pretrained(str(path))
        (path / CONFIG_NAME).write_text(json.dumps(self.pooler.config(), indent=2))
        settings = {"max_length": self.max_length, "include_prompt": self.include_prompt,
                    "normalize": self.normalize}
        (path / ENCODER_CONFIG_NAME).write_text(json.dumps(settings, indent=2))
        state = self.pooler.state_dict()
        if state:
            from safetensors.torch import save_file

            save_file({k: v.contiguous() for k, v in state.items()}, str(path / WEIGHTS_NAME))
        if self.head is not None:
            from safetensors.torch import save_file

            (path / HEAD_CONFIG_NAME).write_text(json.dumps(self.head.config(), indent=2))
            save_file({k: v.contiguous() for k, v in self.head.state_dict().items()},
                      str(path / HEAD_WEIGHTS_NAME))


class _OnnxGraph(nn.Module):
    """What :meth:`PooledEncoder.export_onnx` traces: token ids and mask in, embeddings out."""

    def __init__(self, encoder: PooledEncoder, normalize: bool) -> None:
        super().__init__()
        self.encoder, self.normalize = encoder, normalize

    def forward(self, input_ids: Tensor, attention_mask: Tensor) -> Tensor:
        emb = self.encoder(input_ids, attention_mask)
        if self.encoder.head is not None:
            return self.encoder.head(emb)
        return torch.nn.functional.normalize(emb, dim=-1) if self.normalize else emb
