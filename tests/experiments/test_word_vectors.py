"""Co-occurrence word vectors (PPMI + SVD): words that share contexts get close vectors."""

import numpy as np
import pytest

from poolwise.experiments.word_vectors import ppmi_vectors


def _cos(a, b):
    return float(a @ b / np.linalg.norm(a) / np.linalg.norm(b))


def test_words_of_one_topic_get_close_vectors():
    rng = np.random.default_rng(0)
    topics = [np.arange(1, 6), np.arange(6, 11)]  # id 0 is <unk>
    stream = np.concatenate([rng.choice(topics[i % 2], size=40) for i in range(200)])
    v = ppmi_vectors(stream, vocab=12, dim=4, window=3)
    assert v.shape == (12, 4) and v.dtype == np.float32 and abs(float(v.std()) - 1) < 1e-4
    same = np.mean([_cos(v[1], v[j]) for j in range(2, 6)])
    other = np.mean([_cos(v[1], v[j]) for j in range(6, 11)])
    assert same > 0.5 and same - other > 0.5
    assert np.allclose(v[0], 0) and np.allclose(v[11], 0)  # <unk> and unseen words: no statistics
    assert np.array_equal(v, ppmi_vectors(stream, vocab=12, dim=4, window=3))  # deterministic


@pytest.mark.parametrize("ids, vocab, dim, message", [
    (np.arange(3), 10, 2, "more than 4 word ids"),
    (np.zeros((2, 8), dtype=np.int64), 10, 2, "one stream"),
    (np.arange(20) % 5, 5, 5, r"dim \(5\) must be smaller than the vocabulary \(5\)"),
])
def test_errors(ids, vocab, dim, message):
    with pytest.raises(ValueError, match=message):
        ppmi_vectors(ids, vocab, dim)
