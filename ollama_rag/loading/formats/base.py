"""What a format module provides: a :class:`Format` whose ``parse`` returns :class:`Parsed`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple, TypeAlias

from ollama_rag.loading.discovery import FileEntry

__all__ = ["Format", "Metadata", "MetadataValue", "Parsed", "unify_newlines"]

MetadataValue: TypeAlias = str | int | float | bool
Metadata: TypeAlias = dict[str, MetadataValue]


class Parsed(NamedTuple):
    """A file's text in segments (each with its span metadata, joined by ``separator``).

    Attributes:
        segments: The text, in order, each part with the metadata of its span (``{}`` for
            none): a Markdown section's heading path, a PDF page's number.
        title: The file's title, if it has one.
        metadata: Per-file metadata besides ``file_type``, ``file_size`` and ``title``
            (``encoding``, ``page_count``).
        separator: Put between segments (a blank line between PDF pages).
    """

    segments: list[tuple[str, Metadata]]
    title: str | None
    metadata: Metadata
    separator: str = ""


@dataclass(frozen=True)
class Format:
    """A file format :func:`~ollama_rag.loading.read_document` reads.

    Attributes:
        file_type: The ``file_type`` metadata of its documents (``"md"``).
        suffixes: The lower-case suffixes, with their dot, of the files it reads.
        parse: ``parse(entry, data, encoding)`` turns a file's bytes into :class:`Parsed`
            text, decoding with ``encoding`` if it is given (else detecting one). It raises
            :class:`~ollama_rag.errors.DocumentLoadError`, its message starting with
            ``entry.source``, for a file it cannot read.
    """

    file_type: str
    suffixes: frozenset[str]
    parse: Callable[[FileEntry, bytes, str | None], Parsed]


def unify_newlines(text: str) -> str:
    r"""Turn ``\r\n`` and ``\r`` into ``\n``."""
    return text.replace("\r\n", "\n").replace("\r", "\n")
