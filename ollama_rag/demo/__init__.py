"""Bundled sample documents and queries for ``ollama-rag demo``.

:data:`DATA_DIR` holds short texts written for this project, as UTF-8 Markdown named
``<language>_<topic>.md``: three Japanese, two Chinese, two English and one Korean, each on a
distinct topic. ``queries.json`` holds the sample questions; each is answered by exactly one file,
and two ask in one language about a document in another.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

__all__ = ["DATA_DIR", "SampleQuery", "sample_queries"]

DATA_DIR: Path = Path(__file__).resolve().parent / "data"
"""The directory of the sample documents (``*.md``) and ``queries.json``."""


@dataclass(frozen=True)
class SampleQuery:
    """One sample question and the document that answers it.

    Attributes:
        query: The question, as a user would type it.
        language: The question's language: ``"ja"``, ``"zh"``, ``"en"`` or ``"ko"``.
        expected_source: The file name in :data:`DATA_DIR` that answers it.
        answer_hint: A short phrase that occurs verbatim in that file.
    """

    query: str
    language: str
    expected_source: str
    answer_hint: str


def sample_queries() -> list[SampleQuery]:
    """Load the sample questions from ``queries.json``.

    Returns:
        The questions in file order.
    """
    raw = json.loads((DATA_DIR / "queries.json").read_text(encoding="utf-8"))
    return [
        SampleQuery(
            query=item["query"],
            language=item["language"],
            expected_source=item["expected_source"],
            answer_hint=item["answer_hint"],
        )
        for item in raw
    ]
