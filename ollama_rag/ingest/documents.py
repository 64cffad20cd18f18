"""Texts and LangChain documents → :class:`~ollama_rag.ingest.units.Unit` s, one per source.

Everything is checked before anything is written (a bad metadata value in the 500th document
must not leave the first 499 written); splitting, the costly part, happens lazily as the
pipeline asks for the next unit, so embedding starts after the first source is split rather
than after all of them.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from langchain_core.documents import Document

from ollama_rag.errors import ConfigError
from ollama_rag.ingest.units import Piece, Unit
from ollama_rag.splitting import CJKTextSplitter
from ollama_rag.storage.schema import RESERVED_KEYS, SOURCE, Metadata, sha256

__all__ = ["SourceDocuments", "check_metadata", "plan_documents", "plan_texts", "units_of"]

_SCALARS = (str, int, float, bool)


def check_metadata(metadata: Mapping[str, Any], where: str) -> Metadata:
    """Chroma accepts only scalars (or non-empty scalar lists); say which key breaks that.

    ``None`` values are dropped (a key without a value).

    Raises:
        ConfigError: A key is not a non-empty string, or a value is not storable.
    """
    clean: Metadata = {}
    for key, value in metadata.items():
        if not isinstance(key, str) or not key:
            msg = f"{where}: metadata keys must be non-empty strings, got {key!r}"
            raise ConfigError(msg)
        if value is None:
            continue
        ok = isinstance(value, _SCALARS) or (
            isinstance(value, list) and value and all(isinstance(v, _SCALARS) for v in value)
        )
        if not ok:
            msg = (
                f"{where}: metadata {key!r} is a {type(value).__name__}; Chroma stores only "
                "str, int, float, bool or a non-empty list of them. Convert it, e.g. with "
                "json.dumps(value)"
            )
            raise ConfigError(msg)
        clean[key] = value
    return clean


@dataclass
class SourceDocuments:
    """The checked documents of one source, in order, with their metadata (source removed)."""

    source: str
    documents: list[tuple[str, Metadata]]


def plan_texts(
    texts: Iterable[str],
    metadatas: Sequence[Mapping[str, Any]] | None,
    *,
    source: str | None,
) -> list[SourceDocuments]:
    """Check texts for ``add_texts`` and group them by source (see :func:`plan_documents`).

    Raises:
        ConfigError: ``texts`` is a single string, a text is not a string, or ``metadatas``
            does not have one entry per text.
    """
    if isinstance(texts, str):
        msg = "add_texts() takes a list of texts; wrap a single text: add_texts([text])"
        raise ConfigError(msg)
    text_list = list(texts)
    if metadatas is not None and len(metadatas) != len(text_list):
        msg = f"Got {len(text_list)} texts but {len(metadatas)} metadatas; pass one per text"
        raise ConfigError(msg)
    items: list[tuple[str, Mapping[str, Any]]] = []
    for i, text in enumerate(text_list):
        if not isinstance(text, str):
            msg = f"Text {i} is a {type(text).__name__}, not a str; decode or convert it first"
            raise ConfigError(msg)
        meta: Mapping[str, Any] = metadatas[i] if metadatas is not None else {}
        if source is not None:
            meta = {**meta, SOURCE: source}
        items.append((text, meta))
    return _plan(items, "Text", stacklevel=4)


def plan_documents(documents: Iterable[Document]) -> list[SourceDocuments]:
    """Check documents and group them by ``metadata["source"]``, in order of first appearance.

    A document without a source is a source of its own, named after its text's hash (so adding
    the same text again is a no-op). Empty documents are skipped with a warning.

    Raises:
        ConfigError: An item is not a ``Document``, or its metadata is not storable or uses a
            key the index writes itself.
    """
    items: list[tuple[str, Mapping[str, Any]]] = []
    for n, doc in enumerate(documents):
        if not isinstance(doc, Document):
            msg = f"Item {n} is a {type(doc).__name__}, not a langchain Document"
            raise ConfigError(msg)
        items.append((doc.page_content, doc.metadata))
    return _plan(items, "Document", stacklevel=4)


def _plan(
    items: list[tuple[str, Mapping[str, Any]]], label: str, *, stacklevel: int
) -> list[SourceDocuments]:
    grouped: dict[str, SourceDocuments] = {}
    for n, (content, metadata) in enumerate(items):
        user = check_metadata(metadata, f"{label} {n}")
        raw_source = user.pop(SOURCE, None)
        source = str(raw_source) if raw_source else f"text:{sha256(content)[:16]}"
        if not content.strip():
            warnings.warn(
                f"{label} {n} (source {source!r}) is empty and was skipped",
                UserWarning,
                stacklevel=stacklevel,
            )
            continue
        if reserved := sorted(set(user) & set(RESERVED_KEYS)):
            msg = (
                f"{label} {n}: metadata {reserved} is reserved by ollama-rag (it writes "
                "these keys itself); rename it, e.g. 'my_chunk_index'"
            )
            raise ConfigError(msg)
        grouped.setdefault(source, SourceDocuments(source, [])).documents.append((content, user))
    return list(grouped.values())


def units_of(
    planned: Iterable[SourceDocuments], splitter: CJKTextSplitter, *, replace: bool = True
) -> Iterator[Unit]:
    """Split each source's documents as it is asked for: one :class:`Unit` per source."""
    for group in planned:
        pieces = [
            Piece(text, start, start + len(text), extra)
            for content, extra in group.documents
            for start, text in splitter.split_text_with_offsets(content)
        ]
        fingerprint = json.dumps([[c, m] for c, m in group.documents], sort_keys=True, default=str)
        yield Unit(group.source, pieces, unit_hash=sha256(fingerprint), replace=replace)
