r"""Plain text: the decoded file as it is, with ``\n`` newlines."""

from __future__ import annotations

from ollama_rag.loading.discovery import FileEntry
from ollama_rag.loading.encoding import decode_file
from ollama_rag.loading.formats.base import Format, Parsed, unify_newlines

__all__ = ["TEXT"]


def parse(entry: FileEntry, data: bytes, encoding: str | None) -> Parsed:
    """Decode a text file; it has no title and no spans."""
    text, used = decode_file(entry.source, data, encoding)
    return Parsed([(unify_newlines(text), {})], None, {"encoding": used})


TEXT = Format("txt", frozenset({".txt", ".text", ".rst"}), parse)
