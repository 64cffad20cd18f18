"""The chunk schema: the metadata keys every stored chunk carries, and how chunk ids are made.

Every chunk of a source carries ``source``, ``chunk_index`` and its character offsets
``start_index``/``end_index`` into the source text, plus ``content_hash`` (its text's hash). The
first chunk of a source (``chunk_index`` 0) also carries the source's ``unit_hash`` and, once
every chunk of the source is written, the completion marker ``complete_hash`` (equal to the
``unit_hash``): a source without it is half-written and is written again on the next run. A chunk
that was too long for the model's context is stored as *parts*, each pointing back to the chunk
it came from (``split_of``, ``chunk_part``). Files also carry ``root``, the folder they were
added from.

Ids come from the source and the content, never from time or chance, so adding the same text
again finds the same ids and costs nothing:

>>> chunk_id("a.md", sha256("富士山"), 1) == chunk_id("a.md", sha256("富士山"), 1)
True
>>> len(part_id(chunk_id("a.md", sha256("x"), 1), 0))
32
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any, TypeAlias

__all__ = [
    "CHUNK_INDEX",
    "CHUNK_PART",
    "COMPLETE",
    "CONTENT_HASH",
    "DENSE_SCORE",
    "END",
    "FOUND_BY",
    "HIDDEN_KEYS",
    "ID",
    "LEXICAL_SCORE",
    "RESERVED_KEYS",
    "ROOT",
    "SCORE",
    "SOURCE",
    "SPLIT_OF",
    "START",
    "UNIT_HASH",
    "Metadata",
    "chunk_id",
    "part_id",
    "public_metadata",
    "sha256",
]

Metadata: TypeAlias = dict[str, Any]

SOURCE = "source"
CHUNK_INDEX = "chunk_index"
START = "start_index"
END = "end_index"
CONTENT_HASH = "content_hash"
UNIT_HASH = "unit_hash"
COMPLETE = "complete_hash"
ROOT = "root"
SPLIT_OF = "split_of"
CHUNK_PART = "chunk_part"
# Added to the documents search returns, never stored.
ID = "id"
SCORE = "score"
DENSE_SCORE = "dense_score"
LEXICAL_SCORE = "lexical_score"
FOUND_BY = "found_by"

RESERVED_KEYS: tuple[str, ...] = (
    CHUNK_INDEX,
    START,
    END,
    CONTENT_HASH,
    UNIT_HASH,
    COMPLETE,
    ROOT,
    SPLIT_OF,
    CHUNK_PART,
    ID,
    SCORE,
    DENSE_SCORE,
    LEXICAL_SCORE,
    FOUND_BY,
)
"""Keys the index writes itself; user metadata may not set them."""

HIDDEN_KEYS: frozenset[str] = frozenset({CONTENT_HASH, UNIT_HASH, COMPLETE, SPLIT_OF, CHUNK_PART})
"""Bookkeeping that search results leave out: it means nothing to a reader or a prompt."""


def sha256(text: str) -> str:
    """Hex SHA-256 of a string's UTF-8 bytes."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def chunk_id(source: str, content_hash: str, occurrence: int) -> str:
    """The id of the ``occurrence``-th (from 1) chunk with this content in ``source``."""
    return sha256(f"{source}\x1f{content_hash}\x1f{occurrence}")[:32]


def part_id(whole: str, part: int) -> str:
    """The id of part ``part`` (from 0) of the over-long chunk ``whole``."""
    return sha256(f"{whole}\x1f{part}")[:32]


def public_metadata(stored: Mapping[str, Any], *, include_root: bool = False) -> Metadata:
    """What a search result shows of a chunk's stored metadata.

    Bookkeeping keys are dropped; ``root`` (an absolute path on the indexing machine) only
    when asked for, so it does not end up in prompts and shared notebooks by accident.

    >>> public_metadata({"source": "a.md", "content_hash": "ab", "root": "/home/x"})
    {'source': 'a.md'}
    """
    return {k: v for k, v in stored.items() if k not in HIDDEN_KEYS and (include_root or k != ROOT)}
