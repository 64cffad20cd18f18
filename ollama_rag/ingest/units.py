"""What ingestion consumes: :class:`Unit` s (a source's new content) of :class:`Piece` s.

Every entry point turns its input into units: ``add_texts``/``add_documents`` one per source
(:mod:`~ollama_rag.ingest.documents`), ``add_files``/``sync`` one per changed file
(:mod:`~ollama_rag.ingest.files`), and ``migrate`` one per stored chunk, copied. They all stream
through the same :class:`~ollama_rag.ingest.pipeline.Pipeline`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ollama_rag.storage.base import Vector
from ollama_rag.storage.schema import Metadata

__all__ = ["Piece", "Unit"]


@dataclass(frozen=True)
class Piece:
    """A chunk of a source's text before it is stored.

    Attributes:
        text: The chunk text.
        start: Offset of the chunk in its source text.
        end: ``start + len(text)``.
        metadata: Metadata specific to this chunk (e.g. its heading or page); for a copied
            chunk, everything stored with it.
        id: The id of a stored chunk being copied (migration); None for new text, whose id is
            derived from its source and content.
        vector: A vector already known for it (a repair recovered it from disk): stored as
            it is instead of embedding the text again.
    """

    text: str
    start: int
    end: int
    metadata: Mapping[str, Any] = field(default_factory=dict)
    id: str | None = None
    vector: Vector | None = field(default=None, compare=False, repr=False)


@dataclass
class Unit:
    """The new content of one source.

    Attributes:
        source: The source name.
        pieces: The chunks, in order.
        unit_hash: Hash of the whole content; equal hashes mean nothing changed. It becomes the
            source's completion marker.
        metadata: Metadata copied onto every chunk.
        replace: The content replaces the source's stored chunks (stale ones are deleted and
            the source marked complete); False only adds to them.
        copy: The pieces are stored chunks being copied (to a migration's side store): ids and
            metadata are kept as they are, nothing is deleted or marked.
    """

    source: str
    pieces: list[Piece]
    unit_hash: str = ""
    metadata: Metadata = field(default_factory=dict)
    replace: bool = True
    copy: bool = False

    def __post_init__(self) -> None:
        if self.copy:
            self.replace = False
