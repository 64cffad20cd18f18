"""Texts and LangChain documents → :class:`~ollama_rag.ingest.units.Unit` s, one per source.

Everything is checked before anything is written (a bad metadata value in the 500th document
must not leave the first 499 written); splitting, the costly part, happens lazily as the
pipeline asks for the next unit, so embedding starts after the first source is split rather
than after all of them.
"""

from __future__ import annotations

import json
import math
import warnings
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from langchain_core.documents import Document

from ollama_rag.errors import ConfigError
from ollama_rag.ingest.units import Piece, Unit
from ollama_rag.loading.encoding import find_surrogate
from ollama_rag.splitting import CJKTextSplitter
from ollama_rag.storage.schema import RESERVED_KEYS, SOURCE, Metadata, sha256

__all__ = ["SourceDocuments", "check_metadata", "plan_documents", "plan_texts", "units_of"]

# What Chroma stores faithfully, checked against a real collection (chromadb 1.5): it drops NaN
# and infinity silently, turns integers beyond 64 bits into approximate floats, refuses None,
# empty lists, mixed lists (even int with float), keys starting with "$" or "#", and strings
# with lone surrogates; a list holding NaN or infinity makes every later call on the
# collection fail, even after reopening. Keys starting with "chroma:" are dropped on reading.
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1
_RESERVED_PREFIXES = ("$", "#", "chroma:")
_SCALAR_TYPES = (bool, int, float, str)  # bool first: it is also an int
_TYPE_NAMES = {bool: "bool", int: "int", float: "float", str: "str"}


def check_metadata(metadata: Mapping[str, Any], where: str) -> Metadata:
    """Check metadata against what Chroma stores faithfully; say which key breaks it.

    The rules: keys are non-empty strings not starting with ``$``, ``#`` or ``chroma:``;
    values are ``bool``, ``str``, finite ``float``, ``int`` within signed 64 bits, or a
    non-empty list of one of those types (no mixing, not even ``int`` with ``float``); no
    string (key, value or list element) holds a lone surrogate. ``None`` values are dropped
    (the key is left out, which is how Chroma reads a missing key). Values of subclasses
    (``IntEnum``, ``numpy.float64``, ``str`` subclasses) are stored as the plain type.

    Args:
        metadata: The user's metadata.
        where: Names the text or document in messages ("Text 3 (source 'a.md')").

    Returns:
        The metadata to store.

    Raises:
        ConfigError: Naming the key (and list position) that breaks a rule, and the fix.
    """
    if not isinstance(metadata, Mapping):
        msg = f"{where}: metadata must be a dict, got a {type(metadata).__name__}"
        raise ConfigError(msg)
    clean: Metadata = {}
    for key, value in metadata.items():
        _check_key(key, where)
        if value is None:
            continue
        if isinstance(value, list):
            clean[key] = _check_list(value, f"{where}: metadata {key!r}")
        else:
            clean[key] = _check_scalar(value, f"{where}: metadata {key!r}")
    return clean


def _check_key(key: object, where: str) -> None:
    if not isinstance(key, str) or not key:
        msg = f"{where}: metadata keys must be non-empty strings, got {key!r}"
        raise ConfigError(msg)
    if (at := find_surrogate(key)) != -1:
        msg = f"{where}: metadata key {key!r} {_SURROGATE_PROBLEM.format(at=at)}"
        raise ConfigError(msg)
    if key.startswith(_RESERVED_PREFIXES):
        prefix = next(p for p in _RESERVED_PREFIXES if key.startswith(p))
        msg = (
            f"{where}: metadata key {key!r} starts with {prefix!r}, which Chroma reserves "
            "(it refuses keys starting with '$' or '#' and drops those starting with "
            "'chroma:') — rename the key"
        )
        raise ConfigError(msg)


_SURROGATE_PROBLEM = (
    "has a lone surrogate at offset {at}, which cannot be stored: the text was decoded with "
    "errors='surrogateescape' (file names are) — decode it with errors='replace' or "
    "'backslashreplace' instead (ollama_rag.loading.escape_name does this for file names)"
)


def _check_list(value: list[Any], label: str) -> list[Any]:
    if not value:
        msg = f"{label} is an empty list; Chroma stores only non-empty lists — leave the key out"
        raise ConfigError(msg)
    checked = [_check_scalar(v, f"{label}[{i}]") for i, v in enumerate(value)]
    kinds = {_kind(v) for v in checked}
    if len(kinds) > 1:
        names = " and ".join(sorted(_TYPE_NAMES[k] for k in kinds if k is not None))
        convert = "str(x)" if str in kinds else "float(x)"
        msg = (
            f"{label} mixes {names} values; Chroma stores lists of one type (bool, int, float "
            f"or str) — convert the elements, e.g. [{convert} for x in value]"
        )
        raise ConfigError(msg)
    return checked


def _kind(value: object) -> type | None:
    return next((t for t in _SCALAR_TYPES if isinstance(value, t)), None)


def _check_scalar(value: object, label: str) -> bool | int | float | str:
    if isinstance(value, bool):
        return bool(value)
    if isinstance(value, int):
        number = int(value)
        if not _INT64_MIN <= number <= _INT64_MAX:
            msg = (
                f"{label} = {number} does not fit in a signed 64-bit integer, and Chroma would "
                "store it as an approximate float — store str(value) instead"
            )
            raise ConfigError(msg)
        return number
    if isinstance(value, float):
        real = float(value)
        if not math.isfinite(real):
            msg = (
                f"{label} is {real!r}, which Chroma does not store (it drops the key, or in "
                "a list breaks the collection) — leave the key out, or store a string"
            )
            raise ConfigError(msg)
        return real
    if isinstance(value, str):
        text = str.__str__(value)  # the plain str of a subclass, whatever its __str__
        if (at := find_surrogate(text)) != -1:
            msg = f"{label} {_SURROGATE_PROBLEM.format(at=at)}"
            raise ConfigError(msg)
        return text
    what = "None" if value is None else f"a {type(value).__name__}"
    msg = (
        f"{label} is {what}; Chroma stores only str, int, float, bool or a non-empty list of "
        "one of them. Convert it, e.g. with json.dumps(value) (value.item() for numpy numbers)"
    )
    raise ConfigError(msg)


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
        where = f"{label} {n}"
        named = metadata.get(SOURCE) if isinstance(metadata, Mapping) else None
        if isinstance(named, str) and named:
            where += f" (source {named!r})"
        user = check_metadata(metadata, where)
        if (at := find_surrogate(content)) != -1:
            msg = f"{where}: the text {_SURROGATE_PROBLEM.format(at=at)}"
            raise ConfigError(msg)
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
                f"{where}: metadata {reserved} is reserved by ollama-rag (it writes "
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
