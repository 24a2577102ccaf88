"""Probes: tidy tables (pandas) of how poolings behave on a real encoder.

Each probe takes an encoder (see :class:`~poolwise.probes.encoder.HFTextEncoder`), texts and
pooler names, and returns a ``DataFrame``. The experiments follow *Pool Me Wisely*, Figures 2
and 3 (expressivity under input perturbation, similar vs dissimilar inputs, cross-pooler
agreement), and join the AdaPool paper's signal-vs-noise view (distractor robustness).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

import pandas as pd
import torch
from torch import Tensor

from ..pooling import Pooler, get_pooler

DEFAULT_POOLERS = ("mean", "sum", "max", "first", "last")
"""Poolers the probes compare when none are named."""
DEFAULT_EPSILONS = (1e-3, 3e-3, 1e-2, 3e-2, 1e-1, 3e-1, 1.0)
"""Relative perturbation sizes of the expressivity probe."""
DISTRACTOR_COUNTS = (0, 1, 2, 4, 8, 16, 32)
"""Distractor tokens appended by the SNR probe."""

#: tiny paraphrase / unrelated pairs used when the user gives none
SIMILAR_PAIRS = [
    ("The cat sat on the mat.", "A cat was sitting on the mat."),
    ("He bought a new car yesterday.", "Yesterday he purchased a new car."),
    ("The meeting was postponed until Friday.", "The meeting has been moved to Friday."),
    ("She enjoys reading novels in the evening.", "In the evening she likes to read novels."),
    ("The stock market fell sharply today.", "Shares dropped steeply on the market today."),
    ("It is raining heavily outside.", "Outside, the rain is pouring down."),
]
DISSIMILAR_PAIRS = [
    ("The cat sat on the mat.", "Quarterly revenue exceeded analyst expectations."),
    ("He bought a new car yesterday.", "Photosynthesis converts light into chemical energy."),
    ("The meeting was postponed until Friday.", "The river flooded the valley in spring."),
    ("She enjoys reading novels in the evening.", "The compiler reported a syntax error."),
    ("The stock market fell sharply today.", "My grandmother grows tomatoes."),
    ("It is raining heavily outside.", "The orchestra tuned their instruments."),
]


def _poolers(names: Iterable[str | Pooler] | dict[str, str | Pooler], dim: int) -> dict[str, Pooler]:
    """Pooler instances by label: names are built (learned ones untrained), instances kept; a
    dict gives the labels (``{"wavg (trained)": pooler, ...}``)."""
    fill = {"dim": dim, "max_len": 4096}
    if not isinstance(names, dict):
        names = {p.name if isinstance(p, Pooler) else p: p for p in names}
    return {label: (p if isinstance(p, Pooler) else get_pooler(p, defaults=fill)).eval()
            for label, p in names.items()}


def _batches(items: Sequence, size: int) -> Iterable[Sequence]:
    for i in range(0, len(items), size):
        yield items[i:i + size]


#: how :func:`expressivity_curve` measures the size of a perturbation of the token matrix
NORMS = ("frobenius", "spectral")


def _unit_noise(shape: torch.Size, mask: Tensor, gen: torch.Generator, norm: str = "frobenius") -> Tensor:
    """Gaussian noise on the real tokens, scaled to norm 1 per row (Frobenius, or spectral:
    the largest singular value of the row's ``(N, D)`` noise matrix)."""
    noise = torch.randn(shape, generator=gen) * mask[..., None]
    size = noise.flatten(1).norm(dim=1) if norm == "frobenius" else torch.linalg.matrix_norm(noise, ord=2)
    return noise / size.clamp_min(1e-12)[:, None, None]


@torch.no_grad()
def expressivity_curve(encoder, texts: Sequence[str], poolers: Iterable[str] = DEFAULT_POOLERS,
                       epsilons: Sequence[float] = DEFAULT_EPSILONS, samples: int = 3,
                       batch_size: int = 32, seed: int = 0, progress: Callable[[int], None] | None = None,
                       norm: str = "frobenius") -> pd.DataFrame:
    """Mean and spread of :math:`\\lVert g(f(X+\\delta)) - g(f(X))\\rVert` over texts and noise
    draws, with :math:`\\lVert\\delta\\rVert = \\epsilon` on the input embeddings of the real
    tokens (*Pool Me Wisely*, Figure 2 left).

    The absolute distance carries each pooling's scale: under one mask Sum is exactly n times
    Avg, so Sum's larger distances say nothing about sensitivity that a linear head would not
    undo. ``relative_mean`` / ``relative_std`` divide each distance by the unperturbed output's
    norm :math:`\\lVert g(f(X))\\rVert` (per text and draw): scale-free, so Sum and Avg agree
    exactly on inputs of one length, and what remains is how the pooling's *direction* moves.

    ``norm`` sizes :math:`\\delta`: ``"frobenius"`` (default) or ``"spectral"``, the operator
    norm Theorem 4.2 uses. The pooling constants differ between them: max pooling's tight
    constant is :math:`\\sqrt{\\min(n, d)}` from the spectral norm of the token-matrix change
    but 1 from its Frobenius norm (and mean pooling's is :math:`1/\\sqrt n` under both). The
    result has a ``norm`` column."""
    if norm not in NORMS:
        raise ValueError(f"norm must be one of {', '.join(NORMS)}; got {norm!r}")
    pools = _poolers(poolers, encoder.dim)
    gen = torch.Generator().manual_seed(seed)
    rows: dict[tuple[str, float], list[Tensor]] = {}
    rel: dict[tuple[str, float], list[Tensor]] = {}
    for chunk in _batches(list(texts), batch_size):
        ids, mask = encoder.tokenize(chunk)
        emb = encoder.embed(ids)
        clean_tokens = encoder.encode(emb, mask)
        clean = {n: p(clean_tokens, mask) for n, p in pools.items()}
        for eps in epsilons:
            for _ in range(samples):
                noisy_tokens = encoder.encode(emb + eps * _unit_noise(emb.shape, mask, gen, norm), mask)
                for n, p in pools.items():
                    moved = (p(noisy_tokens, mask) - clean[n]).flatten(1).norm(dim=1)
                    rows.setdefault((n, eps), []).append(moved)
                    size = clean[n].flatten(1).norm(dim=1).clamp_min(1e-12)
                    rel.setdefault((n, eps), []).append(moved / size)
        if progress:
            progress(len(chunk))
    def stats(v: list[Tensor]) -> tuple[float, float]:
        t = torch.cat(v)
        return float(t.mean()), float(t.std()) if t.numel() > 1 else 0.0

    out = []
    for (n, eps), v in rows.items():
        (d_mean, d_std), (r_mean, r_std) = stats(v), stats(rel[(n, eps)])
        out.append({"pooler": n, "epsilon": eps, "norm": norm, "distance_mean": d_mean, "distance_std": d_std,
                    "relative_mean": r_mean, "relative_std": r_std, "n": int(torch.cat(v).numel())})
    return pd.DataFrame(out)


def _pooled(encoder, texts: Sequence[str], pools: dict[str, Pooler], batch_size: int) -> dict[str, Tensor]:
    out: dict[str, list[Tensor]] = {n: [] for n in pools}
    for chunk in _batches(list(texts), batch_size):
        tokens, mask = encoder.tokens(chunk)
        for n, p in pools.items():
            out[n].append(p(tokens, mask))
    return {n: torch.cat(v) for n, v in out.items()}


@torch.no_grad()
def similarity_gap(encoder, similar: Sequence[tuple[str, str]] = SIMILAR_PAIRS,
                   dissimilar: Sequence[tuple[str, str]] = DISSIMILAR_PAIRS,
                   poolers: Iterable[str] = DEFAULT_POOLERS, batch_size: int = 32) -> pd.DataFrame:
    """Pooled-output distances of near-paraphrases and of unrelated pairs (*Pool Me Wisely*,
    Figure 2 right). ``relative_distance`` divides by the mean output norm, so poolers with
    different scales (sum vs mean) compare; ``separation`` is dissimilar over similar."""
    pools = _poolers(poolers, encoder.dim)
    records = []
    for kind, pairs in (("similar", similar), ("dissimilar", dissimilar)):
        if not pairs:
            raise ValueError(f"no {kind} pairs given")
        a = _pooled(encoder, [p[0] for p in pairs], pools, batch_size)
        b = _pooled(encoder, [p[1] for p in pairs], pools, batch_size)
        for n in pools:
            dist = (a[n] - b[n]).norm(dim=1)
            scale = torch.cat([a[n], b[n]]).norm(dim=1).mean().clamp_min(1e-12)
            records.append({"pooler": n, "kind": kind, "distance_mean": float(dist.mean()),
                            "relative_distance": float(dist.mean() / scale), "pairs": len(pairs)})
    df = pd.DataFrame(records)
    rel = df.pivot(index="pooler", columns="kind", values="relative_distance")
    df["separation"] = df["pooler"].map(rel["dissimilar"] / rel["similar"])
    return df


@torch.no_grad()
def agreement_matrix(encoder, texts: Sequence[str],
                     poolers: Iterable[str | Pooler] | dict[str, str | Pooler] = DEFAULT_POOLERS,
                     batch_size: int = 32) -> pd.DataFrame:
    """Mean cosine similarity between the outputs of every pair of poolers on the same texts
    (*Pool Me Wisely*, Figure 3 left). Square ``DataFrame`` indexed by pooler (or by the labels
    of a dict of poolers, e.g. trained instances)."""
    pools = _poolers(poolers, encoder.dim)
    out = _pooled(encoder, texts, pools, batch_size)
    names = list(pools)
    for n in names:
        if out[n].shape[1] != encoder.dim:
            raise ValueError(f"pooler {n!r} returns {out[n].shape[1]} features; "
                             f"agreement needs {encoder.dim}")
    mat = [[float(torch.cosine_similarity(out[a], out[b], dim=1).mean()) for b in names] for a in names]
    return pd.DataFrame(mat, index=names, columns=names)


@torch.no_grad()
def distractor_robustness(encoder, texts: Sequence[str], poolers: Iterable[str] = DEFAULT_POOLERS,
                          counts: Sequence[int] = DISTRACTOR_COUNTS, source: str = "other",
                          batch_size: int = 16, seed: int = 0) -> pd.DataFrame:
    """Append ``k`` distractor tokens to each input (word embeddings of random tokens from the
    *other* texts, or Gaussian vectors with the embeddings' scale for ``source="random"``),
    re-encode, and report per pooler how far the pooled vector moves (relative to its clean
    norm) and its signal loss against the clean input's token centroid (AdaPool paper: the
    original tokens are signal, the distractors noise; SNR = n / (n + k))."""
    if source not in ("other", "random"):
        raise ValueError(f"source must be 'other' or 'random'; got {source!r}")
    if any(k < 0 for k in counts):
        raise ValueError(f"counts must be >= 0; got {list(counts)}")
    pools = _poolers(poolers, encoder.dim)
    gen = torch.Generator().manual_seed(seed)
    acc: dict[tuple[str, int], list[tuple[Tensor, Tensor, Tensor]]] = {}
    for chunk in _batches(list(texts), batch_size):
        ids, mask = encoder.tokenize(chunk)
        emb = encoder.embed(ids)
        clean_tokens = encoder.encode(emb, mask)
        centroid = get_pooler("mean")(clean_tokens, mask)
        clean = {n: p(clean_tokens, mask) for n, p in pools.items()}
        pool_of_tokens = emb[mask]  # (T, D): all real token embeddings of the chunk
        n_real = mask.sum(1)
        for k in counts:
            if k == 0:
                extra = emb.new_zeros(emb.shape[0], 0, emb.shape[2])
            elif source == "random":
                extra = torch.randn(emb.shape[0], k, emb.shape[2], generator=gen) * emb[mask].std()
            else:
                extra = pool_of_tokens[torch.randint(len(pool_of_tokens), (emb.shape[0], k), generator=gen)]
            x = torch.cat([emb, extra], 1)
            m = torch.cat([mask, torch.ones(mask.shape[0], k, dtype=torch.bool)], 1)
            tokens = encoder.encode(x, m)
            for n, p in pools.items():
                y = p(tokens, m)
                move = (y - clean[n]).norm(dim=1) / clean[n].norm(dim=1).clamp_min(1e-12)
                loss = ((y - centroid) ** 2).mean(1)
                acc.setdefault((n, k), []).append((move, loss, n_real / (n_real + k)))
    records = []
    for (n, k), parts in acc.items():
        move, loss, snr = (torch.cat([p[i] for p in parts]) for i in range(3))
        records.append({"pooler": n, "distractors": k, "snr": float(snr.mean()),
                        "relative_move": float(move.mean()), "signal_loss": float(loss.mean())})
    return pd.DataFrame(records)


@torch.no_grad()
def weight_profile(encoder, texts: Sequence[str], poolers: Iterable[Pooler] | dict[str, Pooler],
                   batch_size: int = 32) -> pd.DataFrame:
    """Average weight each learned pooler gives to each position, counted from the first real
    token (*Pool Me Wisely*, Figure 3 right). ``poolers`` are instances, typically trained:
    ``wavg`` and the attention poolers (``adapool``, ``attention``, ``gated``; heads and
    queries averaged). Columns: pooler, position, weight (mean over texts), count."""
    named = dict(poolers) if isinstance(poolers, dict) else {p.name: p for p in poolers}
    sums: dict[str, Tensor] = {}
    counts: dict[str, Tensor] = {}
    for chunk in _batches(list(texts), batch_size):
        tokens, mask = encoder.tokens(chunk)
        rank = torch.cumsum(mask, 1) - 1
        for label, p in named.items():
            if not p.has_weights:
                raise ValueError(f"pooler {p.name!r} has no position weights; "
                                 "use wavg, adapool, attention or gated")
            w = p.attention_weights(tokens, mask)
            while w.dim() > 2:  # average heads / queries
                w = w.mean(1)
            n = int(mask.shape[1])
            s = sums.setdefault(label, torch.zeros(n, dtype=torch.float64))
            c = counts.setdefault(label, torch.zeros(n, dtype=torch.float64))
            if s.numel() < n:
                sums[label] = s = torch.cat([s, s.new_zeros(n - s.numel())])
                counts[label] = c = torch.cat([c, c.new_zeros(n - c.numel())])
            s.index_add_(0, rank[mask], w[mask].double())
            c.index_add_(0, rank[mask], torch.ones(int(mask.sum()), dtype=torch.float64))
    return pd.DataFrame([
        {"pooler": name, "position": i, "weight": float(sums[name][i] / counts[name][i]),
         "count": int(counts[name][i])}
        for name in sums for i in range(sums[name].numel()) if counts[name][i] > 0
    ])
