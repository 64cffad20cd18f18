"""Fusing the dense and the lexical ranking of one query into one.

Plain reciprocal rank fusion gives both sides the same say whatever their quality, and so
loses to BM25 alone when the embedding model is weak on the corpus (measured on JSQuAD with
the multilingual USE model: hit@1 0.731 against BM25's 0.906). Here the say of each side is
set per query from its own scores (``peak``: how far its best score stands above the rest of
its candidates, in standard deviations), optionally scaled by a prior of each side's
reliability on the index, and the min-max normalised scores are summed with those weights:

.. code-block:: text

    peak(s)  = max(0, (s[0] - mean(s)) / std(s))        (0 for fewer than 2 scores)
    wd, wl   = prior_d * peak(D), prior_l * peak(L), divided by their sum (if both are 0:
               the priors, divided by their sum)
    fused(c) = wd * minmax(D)[c] + wl * minmax(L)[c]    (0 for a side that did not find c)

Ties go to the better dense rank, then the better lexical rank. The only constant is how many
candidates each side brings (``CANDIDATES`` in :mod:`ollama_rag.search`); results are flat
from 20 to 100. Cosine similarities and BM25 scores are never compared directly, so the same
rule serves any embedding model. docs/search.md has the measurements.
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

__all__ = [
    "CALIBRATION_QUERIES",
    "FUSION",
    "Calibration",
    "Fused",
    "Weights",
    "fuse",
    "priors_from",
    "pseudo_queries",
]

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
    if pd + pl > 0:
        wd = pd / (pd + pl)
    else:  # neither side stands out: the priors alone decide
        wd = priors[0] / (priors[0] + priors[1]) if sum(priors) > 0 else 0.5
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


# ---------------------------------------------------------------------- calibration

CALIBRATION_QUERIES = 200
"""Pseudo-queries a calibration asks (one batched embedding request per 64)."""

_SENTENCE = re.compile(r"[^。！？!?\n]+[。！？!?]?")
_SENTENCE_CHARS = (8, 60)


def pseudo_queries(
    texts: Sequence[tuple[str, str]], *, count: int, seed: int = 0
) -> list[tuple[str, str]]:
    """Queries made from the index's own text, each with the sentence it came from.

    One sentence (8-60 characters) of each chunk, with half of its characters dropped at
    random (order kept): a query shares part of its wording with its passage, as real
    questions do, so the lexical side is not handed a verbatim copy.

    Args:
        texts: ``(chunk id, text)`` pairs to draw from, in a fixed order.
        count: At most this many queries.
        seed: The random seed (a calibration is repeatable).

    Returns:
        ``(query, sentence)`` pairs; a chunk containing the sentence answers the query.
    """
    rng = random.Random(seed)
    found: list[tuple[str, str]] = []
    for _, text in texts:
        sentences = [
            s.strip()
            for s in _SENTENCE.findall(text)
            if _SENTENCE_CHARS[0] <= len(s.strip()) <= _SENTENCE_CHARS[1]
        ]
        if not sentences:
            continue
        sentence = rng.choice(sentences)
        keep = sorted(rng.sample(range(len(sentence)), len(sentence) // 2))
        found.append(("".join(sentence[i] for i in keep), sentence))
        if len(found) >= count:
            break
    return found


def priors_from(dense_mrr: float, lexical_mrr: float, queries: int) -> tuple[float, float]:
    """Each side's prior: the odds of its success on the pseudo-queries (Laplace-smoothed).

    Odds grow without bound as a side approaches always right, so a side that is nearly
    always right and one that is often wrong are weighted far apart, and two good sides
    about evenly.
    """

    def odds(mrr: float) -> float:
        hits = mrr * queries
        return (hits + 1.0) / (queries - hits + 1.0)

    return odds(dense_mrr), odds(lexical_mrr)


@dataclass(frozen=True)
class Calibration:
    """How reliable each side was on pseudo-queries from the index itself (see search.py).

    Attributes:
        dense_mrr: The dense side's MRR@10 on the pseudo-queries.
        lexical_mrr: The lexical side's MRR@10 on them.
        queries: How many pseudo-queries were asked.
        chunks: How many chunks the index held.
    """

    dense_mrr: float
    lexical_mrr: float
    queries: int
    chunks: int

    @property
    def priors(self) -> tuple[float, float]:
        """The priors the fusion scales each side's peak with."""
        return priors_from(self.dense_mrr, self.lexical_mrr, self.queries)

    def to_text(self) -> str:
        """The manifest's record: ``peak-minmax/1 dense_mrr=0.455 lexical_mrr=0.972 ...``."""
        return (
            f"{FUSION} dense_mrr={self.dense_mrr:.4f} lexical_mrr={self.lexical_mrr:.4f} "
            f"queries={self.queries} chunks={self.chunks}"
        )

    @classmethod
    def from_text(cls, text: str) -> Calibration | None:
        """The record back (None when absent, or made by another fusion method)."""
        name, _, rest = text.partition(" ")
        if name != FUSION:
            return None
        try:
            values = dict(item.split("=", 1) for item in rest.split())
            return cls(
                float(values["dense_mrr"]),
                float(values["lexical_mrr"]),
                int(values["queries"]),
                int(values["chunks"]),
            )
        except (KeyError, ValueError):
            return None
