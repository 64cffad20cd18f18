"""Read one file as a :class:`LoadedDocument`: its text, hash, metadata and spans.

:func:`read_document` checks the file with :func:`~ollama_rag.loading.classify`, has its
format (see :mod:`ollama_rag.loading.formats`) parse the bytes into segments, optionally
applies NFKC, and joins the segments into one text whose *spans* tie offsets back to a
Markdown heading path or a PDF page; :func:`span_metadata` looks an offset up.
"""

from __future__ import annotations

import bisect
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TypeAlias

from ollama_rag.errors import DocumentLoadError
from ollama_rag.loading.discovery import FileEntry
from ollama_rag.loading.encoding import check_codec, replace_surrogates
from ollama_rag.loading.formats import format_for
from ollama_rag.loading.formats.base import Metadata, MetadataValue
from ollama_rag.loading.sniffing import (
    DEFAULT_MAX_FILE_BYTES,
    classify,
    file_hash,
    read_bytes,
    skip_message,
)

__all__ = ["LoadedDocument", "Span", "read_document", "span_metadata"]

Span: TypeAlias = tuple[int, int, Metadata]


@dataclass(frozen=True)
class LoadedDocument:
    """A file read as text.

    Attributes:
        entry: The file it came from.
        text: The text to split; span and chunk offsets index into it.
        file_hash: SHA-256 (hex) of the raw bytes.
        metadata: ``file_type`` (txt, md, html or pdf), ``file_size`` in bytes, ``encoding``
            (text formats), ``title`` (when the file has one) and ``page_count`` (PDF).
        spans: Sorted, non-overlapping ``(start, end, metadata)`` triples: a Markdown section's
            ``{"heading": "A > B"}`` or a PDF page's ``{"page": 3}``. Text outside every span
            (before the first heading, between pages) has no extra metadata.
    """

    entry: FileEntry
    text: str
    file_hash: str
    metadata: Metadata
    spans: tuple[Span, ...]


def read_document(
    entry: FileEntry,
    data: bytes | None = None,
    *,
    encoding: str | None = None,
    normalize: bool = False,
    max_file_bytes: int = DEFAULT_MAX_FILE_BYTES,
) -> LoadedDocument:
    r"""Read one file as text, with its metadata and spans.

    Newlines always become ``\n`` and a leading byte order mark is dropped. Markdown keeps its
    markup (headings also become span metadata); HTML is reduced to its visible text; PDF pages
    are joined with blank lines.

    Args:
        entry: The file.
        data: Its bytes, if already read (for example to hash them first).
        encoding: Decode text with this codec instead of detecting one (``"cp932"``, ``"gbk"``).
        normalize: Also apply Unicode NFKC (full-width ``ＡＢＣ１２３`` to ``ABC123``, half-width
            ``ｶﾀｶﾅ`` to ``カタカナ``) to the text and metadata.
        max_file_bytes: Largest file size accepted.

    Returns:
        The :class:`LoadedDocument`.

    Raises:
        DocumentLoadError: The message starts with the file's source and ends with the fix. It
            is raised for every reason :func:`classify` reports, for text that cannot be
            decoded, a PDF that cannot be parsed or has no text, and a missing pypdf.
        ConfigError: If ``encoding`` is not a known text codec.
    """
    if encoding is not None:
        check_codec(encoding)
    if data is None:
        data = read_bytes(entry, max_file_bytes=max_file_bytes)
    reason = classify(entry, data, max_file_bytes=max_file_bytes, encoding=encoding)
    if reason is not None:
        raise DocumentLoadError(skip_message(entry, reason, len(data)), source=entry.source)
    fmt = format_for(entry.path.suffix.lower(), data)
    parsed = fmt.parse(entry, data, encoding)
    # Lone surrogates (from a PDF's broken character map, or a codec such as UTF-7) cannot be
    # stored: they become U+FFFD, as undecodable bytes do in every decoder that replaces.
    segments = [(replace_surrogates(seg), _valid(m)) for seg, m in parsed.segments]
    title = replace_surrogates(parsed.title) if parsed.title else parsed.title
    if normalize:
        segments = [(_nfkc(seg), {k: _nfkc_value(v) for k, v in m.items()}) for seg, m in segments]
        title = _nfkc(title) if title else title
    text, spans = _assemble(segments, parsed.separator)
    if not text.strip():
        raise DocumentLoadError(skip_message(entry, "empty file", len(data)), source=entry.source)
    metadata: Metadata = {
        "file_type": fmt.file_type,
        **_valid(parsed.metadata),
        "file_size": len(data),
    }
    if title:
        metadata["title"] = title
    return LoadedDocument(entry, text, file_hash(data), metadata, spans)


def _valid(metadata: Metadata) -> Metadata:
    return {
        replace_surrogates(k): replace_surrogates(v) if isinstance(v, str) else v
        for k, v in metadata.items()
    }


def _nfkc(text: str) -> str:
    return unicodedata.normalize("NFKC", text)


def _nfkc_value(value: MetadataValue) -> MetadataValue:
    return _nfkc(value) if isinstance(value, str) else value


def _assemble(segments: list[tuple[str, Metadata]], sep: str) -> tuple[str, tuple[Span, ...]]:
    parts: list[str] = []
    spans: list[Span] = []
    pos = 0
    for seg, meta in segments:
        if parts and sep:
            parts.append(sep)
            pos += len(sep)
        parts.append(seg)
        if meta and seg:
            spans.append((pos, pos + len(seg), meta))
        pos += len(seg)
    return "".join(parts), tuple(spans)


def span_metadata(
    spans: Sequence[tuple[int, int, Mapping[str, MetadataValue]]], offset: int
) -> Metadata:
    """Return a copy of the metadata of the span containing ``offset``, or ``{}``.

    >>> span_metadata(((0, 5, {"page": 1}), (7, 12, {"page": 2})), 8)
    {'page': 2}
    >>> span_metadata(((0, 5, {"page": 1}),), 5)
    {}
    """
    i = bisect.bisect_right(spans, offset, key=lambda span: span[0]) - 1
    if i >= 0 and offset < spans[i][1]:
        return dict(spans[i][2])
    return {}
