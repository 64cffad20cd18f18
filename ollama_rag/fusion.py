"""Fusing the dense and the lexical ranking of one query into one.

Plain reciprocal rank fusion gives both sides the same say whatever their quality, and so
loses to BM25 alone when the embedding model is weak on the corpus (measured on JSQuAD with
the multilingual USE model: hit@1 0.731 against BM25's 0.906). Here the say of each side is
set per query from its own scores (``peak``: how far its best score stands above the rest of
its candidates, in standard deviations), optionally scaled by a prior of each side's
reliability on the index, and the min-max normalised scores are summed with those weights:

.. code-block:: text

    peak(s)  = max(0, (s[0] - mean(s)) / std(s))        (0 for fewer than 2 scores)
    wd, wl   = prior_d * peak(D), prior_l * peak(L), divided by their sum (0.5 each if 0)
    fused(c) = wd * minmax(D)[c] + wl * minmax(L)[c]    (0 for a side that did not find c)

Ties go to the better dense rank, then the better lexical rank. The only constant is how many
candidates each side brings (``CANDIDATES`` in :mod:`ollama_rag.search`); results are flat
from 20 to 100. Cosine similarities and BM25 scores are never compared directly, so the same
rule serves any embedding model. docs/search.md has the measurements.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

__all__ = ["FUSION", "Fused", "Weights", "fuse"]

FUSION = "peak-minmax/1"
"""The fusion method's name and version."""


@dataclass(frozen=True)
class Fused:
    """One candidate's fused score and where each side ranked it (None: not found by it)."""

    id: str
    score: float
    dense_rank: int | None
    lexical_rank: int | None


@dataclass(frozen=True)
class Weights:
    """The say each side had in one query's fusion (they add up to 1)."""

    dense: float
    lexical: float


def _peak(scores: np.ndarray) -> float:
    if len(scores) < 2:
        return 0.0
    spread = float(scores.std())
    if spread == 0.0:
        return 0.0
    return max(0.0, (float(scores[0]) - float(scores.mean())) / spread)


def _minmax(scores: np.ndarray) -> np.ndarray:
    low, high = float(scores.min()), float(scores.max())
    if high > low:
        return (scores - low) / (high - low)
    return np.ones_like(scores)


def fuse(
    dense: Sequence[tuple[str, float]],
    lexical: Sequence[tuple[str, float]],
    *,
    priors: tuple[float, float] = (1.0, 1.0),
) -> tuple[list[Fused], Weights]:
    """Fuse two rankings (ids with scores, best first) as the module docstring says.

    Args:
        dense: The dense side's candidates and cosine similarities.
        lexical: The lexical side's candidates and BM25 scores.
        priors: Each side's reliability on the index (dense, lexical), scaling its peaks.

    Returns:
        The candidates best first, and the weights this query gave each side.
    """
    if not lexical or not dense:
        only, weights = (dense, Weights(1.0, 0.0)) if dense else (lexical, Weights(0.0, 1.0))
        return [
            Fused(cid, score, rank if dense else None, None if dense else rank)
            for rank, (cid, score) in enumerate(only)
        ], weights
    d_scores = np.asarray([s for _, s in dense], dtype=np.float64)
    l_scores = np.asarray([s for _, s in lexical], dtype=np.float64)
    pd, pl = priors[0] * _peak(d_scores), priors[1] * _peak(l_scores)
    wd = pd / (pd + pl) if pd + pl > 0 else 0.5
    weights = Weights(wd, 1.0 - wd)
    nd = dict(zip((cid for cid, _ in dense), _minmax(d_scores).tolist(), strict=True))
    nl = dict(zip((cid for cid, _ in lexical), _minmax(l_scores).tolist(), strict=True))
    d_rank = {cid: rank for rank, (cid, _) in enumerate(dense)}
    l_rank = {cid: rank for rank, (cid, _) in enumerate(lexical)}
    fused = [
        Fused(
            cid,
            weights.dense * nd.get(cid, 0.0) + weights.lexical * nl.get(cid, 0.0),
            d_rank.get(cid),
            l_rank.get(cid),
        )
        for cid in dict.fromkeys([*d_rank, *l_rank])
    ]
    last = len(dense) + len(lexical)
    fused.sort(
        key=lambda f: (
            -f.score,
            last if f.dense_rank is None else f.dense_rank,
            last if f.lexical_rank is None else f.lexical_rank,
            f.id,
        )
    )
    return fused, weights
