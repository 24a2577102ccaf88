"""Word vectors from co-occurrence counts (PPMI + truncated SVD, Levy and Goldberg 2014, "Neural
word embedding as implicit matrix factorization"): the start of the masked-word encoder's
embedding table. On our 1M-word corpus, a masked-word transformer trained from random
embeddings for minutes on 2 cores barely moves past the unigram loss and its features are weak
(66% on text-bbc from mean-pooled outputs by logistic regression), while the same training from
these vectors reaches 87% in 300 steps. The statistics involve no task and no pooling."""

from __future__ import annotations

import numpy as np


def ppmi_vectors(ids: np.ndarray, vocab: int, dim: int, window: int = 4, seed: int = 0) -> np.ndarray:
    """``(vocab, dim)`` vectors of the word ids in ``ids`` (one stream): co-occurrence counts
    within ``window`` words, each pair weighted 1/distance; positive pointwise mutual
    information with the context distribution smoothed to the power 0.75; truncated SVD
    ``U sqrt(S)``, scaled to unit standard deviation. Id 0 (``<unk>``) gets no statistics."""
    if ids.ndim != 1 or len(ids) <= window:
        raise ValueError(f"ids must be one stream of more than {window} word ids; got shape {ids.shape}")
    if dim >= vocab:
        raise ValueError(f"dim ({dim}) must be smaller than the vocabulary ({vocab})")
    from sklearn.utils.extmath import randomized_svd

    ids = ids.astype(np.int64)
    counts = np.zeros(vocab * vocab, dtype=np.float64)
    for offset in range(1, window + 1):
        a, b = ids[:-offset], ids[offset:]
        counts += np.bincount(a * vocab + b, minlength=vocab * vocab) / offset
        counts += np.bincount(b * vocab + a, minlength=vocab * vocab) / offset
    c = counts.reshape(vocab, vocab)
    c[0, :] = 0.0
    c[:, 0] = 0.0
    total = c.sum()
    rows = c.sum(1, keepdims=True)
    context = c.sum(0, keepdims=True) ** 0.75
    context = context / context.sum() * total
    with np.errstate(divide="ignore", invalid="ignore"):
        pmi = np.log(c * total / (rows * context))
    pmi[~np.isfinite(pmi)] = 0.0
    np.maximum(pmi, 0.0, out=pmi)
    u, s, _ = randomized_svd(pmi, dim, random_state=seed)
    vectors = u * np.sqrt(s)
    return (vectors / (vectors.std() + 1e-12)).astype(np.float32)
