"""Tiny randomly initialised models of many architectures, saved as local model directories
with a word-level tokenizer laid out like the family's own (special tokens, pad id, padding
side). Used by the architecture matrix; nothing here calls poolwise."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

WORDS = ["the", "cat", "sat", "on", "mat", "a", "dog", "ran", "big", "red", "is", "of", "and", "to",
         "in", "it", "was", "for", "with", "as", "query", "passage", ":", ".", ","]
# single characters too: a tokenizer class that transformers forces for a model type (Qwen2's
# byte-level BPE) reads the vocabulary without our word-level model and splits into characters
CHARS = [c for c in "bcdefghijklmnopqrstuvwxyz\u0120" if c not in WORDS]


@dataclass(frozen=True)
class Arch:
    """How to build one architecture: its config class and kwargs, the tokenizer layout
    (``bert``: [CLS] A [SEP]; ``roberta``: <s> A </s> with <pad> = 1; ``t5``: A </s>;
    ``bos``/``plain``: decoder with or without <s>), and the pooler it is used with."""

    name: str
    config: str
    kwargs: dict
    layout: str
    pooler: str = "mean"
    decoder: bool = False


_DECODER_IDS = {"bos_token_id": 0, "eos_token_id": 1, "pad_token_id": 2}
_SMALL = {"hidden_size": 16, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 32}
ARCHS = [
    Arch("bert", "BertConfig", {**_SMALL, "max_position_embeddings": 64}, "bert"),
    Arch("roberta", "RobertaConfig", {**_SMALL, "max_position_embeddings": 66, "pad_token_id": 1}, "roberta"),
    Arch("xlm-roberta", "XLMRobertaConfig", {**_SMALL, "max_position_embeddings": 66, "pad_token_id": 1},
         "roberta"),
    Arch("camembert", "CamembertConfig", {**_SMALL, "max_position_embeddings": 66, "pad_token_id": 1},
         "roberta"),
    Arch("mpnet", "MPNetConfig", {**_SMALL, "max_position_embeddings": 66, "pad_token_id": 1}, "roberta"),
    Arch("distilbert", "DistilBertConfig", {"dim": 16, "n_layers": 2, "n_heads": 2, "hidden_dim": 32,
                                            "max_position_embeddings": 64}, "bert"),
    Arch("electra", "ElectraConfig", {**_SMALL, "embedding_size": 8, "max_position_embeddings": 64}, "bert"),
    Arch("albert", "AlbertConfig", {**_SMALL, "embedding_size": 8, "max_position_embeddings": 64}, "bert"),
    Arch("deberta-v2", "DebertaV2Config", {**_SMALL, "max_position_embeddings": 64,
                                           "relative_attention": True, "position_buckets": 8,
                                           "pos_att_type": ["p2c", "c2p"],
                                           "position_biased_input": False}, "bert"),
    Arch("modernbert", "ModernBertConfig", {**_SMALL, "max_position_embeddings": 64,
                                            "global_attn_every_n_layers": 1, "pad_token_id": 0,
                                            "cls_token_id": 2, "sep_token_id": 3,
                                            "bos_token_id": 2, "eos_token_id": 3}, "bert"),
    Arch("t5-encoder", "T5Config", {"d_model": 16, "num_layers": 2, "num_heads": 2, "d_kv": 8, "d_ff": 32,
                                    "pad_token_id": 0, "eos_token_id": 1, "decoder_start_token_id": 0}, "t5"),
    Arch("gpt2", "GPT2Config", {"n_embd": 16, "n_layer": 2, "n_head": 2, "n_positions": 64,
                                "bos_token_id": 0, "eos_token_id": 0}, "plain", "last", True),
    Arch("llama", "LlamaConfig", {**_SMALL, "num_key_value_heads": 1, "max_position_embeddings": 64,
                                  **_DECODER_IDS}, "bos", "last", True),
    Arch("qwen2", "Qwen2Config", {**_SMALL, "num_key_value_heads": 1, "max_position_embeddings": 64,
                                  **_DECODER_IDS}, "plain", "last", True),
    Arch("mistral", "MistralConfig", {**_SMALL, "num_key_value_heads": 1, "max_position_embeddings": 64,
                                      **_DECODER_IDS, "sliding_window": None},
         "bos", "last", True),
]
BY_NAME = {a.name: a for a in ARCHS}

_SPECIALS = {  # token -> id, in id order; then the words
    "bert": ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"],
    "roberta": ["<s>", "<pad>", "</s>", "<unk>", "<mask>"],
    "t5": ["<pad>", "</s>", "<unk>"],
    "bos": ["<s>", "</s>", "<pad>", "<unk>"],
    "plain": ["<|endoftext|>", "<|im_end|>", "<|pad|>", "<unk>"],
}


def _tokenizer(layout: str, decoder: bool) -> Any:
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    specials = _SPECIALS[layout]
    vocab = {w: i for i, w in enumerate(specials + WORDS + CHARS)}
    unk = next(s for s in specials if "unk" in s.lower())
    tok = Tokenizer(models.WordLevel(vocab, unk_token=unk))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    pairs = {"bert": ("[CLS]", "[SEP]", "[PAD]"), "roberta": ("<s>", "</s>", "<pad>"),
             "t5": (None, "</s>", "<pad>"),
             "bos": ("<s>", None, "<pad>"), "plain": (None, None, "<|endoftext|>")}
    bos, eos, pad = pairs[layout]
    single = " ".join(p for p in (bos and f"{bos}:0", "$A:0", eos and f"{eos}:0") if p)
    used = [t for t in (bos, eos) if t]
    tok.post_processor = processors.TemplateProcessing(single=single,
                                                       special_tokens=[(t, vocab[t]) for t in used])
    kwargs = {"unk_token": unk, "pad_token": pad}
    if layout == "bert":
        kwargs |= {"cls_token": "[CLS]", "sep_token": "[SEP]", "mask_token": "[MASK]"}
    elif layout == "roberta":
        kwargs |= {"bos_token": "<s>", "eos_token": "</s>", "cls_token": "<s>", "sep_token": "</s>",
                   "mask_token": "<mask>"}
    elif layout == "t5":
        kwargs |= {"eos_token": "</s>"}
    elif layout == "bos":
        kwargs |= {"bos_token": "<s>", "eos_token": "</s>"}
    else:
        kwargs |= {"eos_token": "<|endoftext|>"}
    return PreTrainedTokenizerFast(tokenizer_object=tok, padding_side="left" if decoder else "right",
                                   model_max_length=64, **kwargs)


def build(arch: Arch, path: Path, seed: int = 0) -> Path:
    """Save ``arch`` with random weights and its tokenizer in ``path``; return ``path``."""
    import transformers

    tok = _tokenizer(arch.layout, arch.decoder)
    cfg = getattr(transformers, arch.config)(vocab_size=len(tok), **arch.kwargs)
    torch.manual_seed(seed)
    if arch.config == "T5Config":
        model = transformers.T5EncoderModel(cfg)
    else:
        model = transformers.AutoModel.from_config(cfg)
    with torch.no_grad():  # random weights that make every token's vector differ clearly
        for name, p in model.named_parameters():
            if "norm" not in name.lower() and "bias" not in name:
                p.normal_(0, 0.3)
    model.eval().save_pretrained(str(path))
    tok.save_pretrained(str(path))
    return path
