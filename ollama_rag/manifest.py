"""The index manifest: what an index records about the model that built it, and the guard.

The manifest lives in the Chroma collection's own metadata (scalar values under ``ollama_rag.``
keys, because Chroma rejects nested values), so it travels with the vectors it describes: copy
the directory, or point a client at a Chroma server, and the record comes along.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from ollama_rag._version import __version__
from ollama_rag.display import table
from ollama_rag.errors import (
    MISMATCH_MESSAGE,
    MISMATCH_PROBLEM,
    ConfigError,
    EmbeddingModelMismatchError,
    Explained,
    Fix,
    RagIndexError,
)
from ollama_rag.models import known_model
from ollama_rag.ollama import ModelInfo
from ollama_rag.splitting import CJKTextSplitter, chunk_settings_for_context

__all__ = ["MANIFEST_FORMAT", "IndexManifest", "new_manifest", "now_iso"]

MANIFEST_FORMAT = 1
_PREFIX = "ollama_rag."

MetadataValue = str | int | float | bool


def now_iso() -> str:
    """Return the current UTC time as an ISO 8601 string.

    Microseconds are kept: ``updated_at`` tells whether an index changed between two moments
    (a resumed migration relies on it), and two writes often fall in the same second.
    """
    return datetime.now(timezone.utc).isoformat()


def _short(digest: str) -> str:
    return digest.removeprefix("sha256:")[:12] or "unknown"


@dataclass(frozen=True)
class IndexManifest:
    """The record an index keeps about how its vectors were made.

    Attributes:
        model: Canonical Ollama model name with tag, e.g. ``bge-m3:latest``.
        digest: The model digest from ``/api/tags`` at build time.
        dimension: Vector length.
        context_length: Tokens the model embeds without truncation.
        chunk_size: Splitter chunk size in characters.
        chunk_overlap: Splitter overlap in characters.
        document_prefix: Text prepended to documents before embedding.
        query_prefix: Text prepended to queries before embedding.
        splitter: Name of the splitter that produced the chunks.
        analyzer: The analyser of the lexical index (``cjk-bigram/1``); empty in indexes made
            before lexical search, which get the default one.
        fusion: How hybrid search weighs its two sides on this index: the fusion method and
            its calibration (each side's MRR on pseudo-queries from the index's own text);
            empty until the index holds enough chunks to measure.
        store: The vector store holding the index: ``"chroma"`` or ``"faiss"`` (indexes made
            before FAISS was supported are Chroma ones).
        vector_index: The store's index type: ``"flat"`` (exact) or ``"hnsw"`` for FAISS;
            empty for Chroma (always HNSW).
        library_version: ollama-rag version that created the index.
        created_at: ISO 8601 UTC creation time.
        updated_at: ISO 8601 UTC time of the last write.
        format: Manifest format version.
    """

    model: str
    digest: str
    dimension: int
    context_length: int
    chunk_size: int
    chunk_overlap: int
    document_prefix: str = ""
    query_prefix: str = ""
    splitter: str = "CJKTextSplitter"
    analyzer: str = ""
    fusion: str = ""
    store: str = "chroma"
    vector_index: str = ""
    library_version: str = ""
    created_at: str = field(default_factory=now_iso)
    updated_at: str = field(default_factory=now_iso)
    format: int = MANIFEST_FORMAT

    @property
    def vector_identity(self) -> tuple[str, str, int, str, str]:
        """What decides the vectors: equal identities mean equal vectors for equal text."""
        return (self.model, self.digest, self.dimension, self.document_prefix, self.query_prefix)

    @property
    def model_label(self) -> str:
        """The model with a short digest and dimension, for messages."""
        return f"{self.model} (digest {_short(self.digest)}, {self.dimension}-d)"

    def rows(self) -> list[tuple[str, str]]:
        """What the manifest records, as ``(label, value)`` rows for a table."""
        return [
            ("model", self.model_label),
            ("context", f"{self.context_length} tokens"),
            ("chunking", f"{self.chunk_size} chars, overlap {self.chunk_overlap}"),
            ("prefixes", f"document {self.document_prefix!r}, query {self.query_prefix!r}"),
            ("splitter", self.splitter),
            ("analyzer", self.analyzer or "(default)"),
            ("fusion", self.fusion or "(not calibrated)"),
            ("store", f"{self.store} ({self.vector_index})" if self.vector_index else self.store),
            ("created", f"{self.created_at} (ollama-rag {self.library_version or '?'})"),
            ("updated", self.updated_at),
        ]

    def _repr_html_(self) -> str:
        return table(self.rows(), caption="IndexManifest", row_head=True)

    def to_metadata(self) -> dict[str, MetadataValue]:
        """Flatten into Chroma collection metadata (scalars only)."""
        return {_PREFIX + k: v for k, v in dataclasses.asdict(self).items()}

    @classmethod
    def from_metadata(
        cls, metadata: Mapping[str, Any] | None, *, path: str | None = None
    ) -> IndexManifest | None:
        """Read a manifest back from collection metadata.

        Returns:
            The manifest, or None when the collection has no ollama-rag record at all.

        Raises:
            RagIndexError: The record is present but incomplete or from a newer format.
        """
        raw = {
            k.removeprefix(_PREFIX): v for k, v in (metadata or {}).items() if k.startswith(_PREFIX)
        }
        if not raw:
            return None
        names = {f.name for f in dataclasses.fields(cls)}
        if int(raw.get("format", 0)) > MANIFEST_FORMAT:
            msg = (
                f"The index at {path or 'memory'} was written by a newer ollama-rag "
                f"(manifest format {raw['format']}); upgrade: pip install -U ollama-rag"
            )
            raise RagIndexError(msg, path=path)
        try:
            return cls(**{k: v for k, v in raw.items() if k in names})
        except TypeError as err:
            msg = f"The index manifest at {path or 'memory'} is incomplete ({err})"
            raise RagIndexError(msg, path=path) from err

    def touched(self) -> IndexManifest:
        """Return a copy with ``updated_at`` set to now."""
        return dataclasses.replace(self, updated_at=now_iso())

    def check_settings(self, where: str, **given: object) -> None:
        """Refuse settings (``chunk_size=...``) that differ from the recorded ones.

        New text split or prefixed differently would not match the stored chunks and vectors.

        Args:
            where: Where the index is, for the message.
            **given: Settings the caller passed; None means "not given".

        Raises:
            ConfigError: One of them differs from the recorded value.
        """
        for name, value in given.items():
            recorded = getattr(self, name)
            if value is not None and value != recorded:
                msg = (
                    f"The index at {where} was built with {name}={recorded!r}; "
                    f"{name}={value!r} would not match the stored chunks and vectors. "
                    f"Omit {name} to use the recorded value, or build a new collection"
                )
                raise ConfigError(msg)

    def check_model_name(self, requested: str, *, path: str | None) -> None:
        """Refuse a different model by name alone (needs no server).

        Raises:
            EmbeddingModelMismatchError: ``requested`` is not the recorded model.
        """
        if requested != self.model:
            self._refuse(requested, requested, "the model names differ", path)

    def check_compatible(self, info: ModelInfo, *, path: str | None) -> None:
        """Refuse a model whose name, digest or dimension differs from the recorded one.

        Two different models of equal dimension (bge-m3 and mxbai-embed-large are both
        1024-d) are refused by name and digest; a re-pulled tag with new weights by digest.

        Raises:
            EmbeddingModelMismatchError: The model is not the one that built the index.
        """
        requested = f"{info.name} (digest {_short(info.digest)}, {info.dimension}-d)"
        if info.name != self.model:
            self._refuse(info.name, requested, "the model names differ", path)
        if info.dimension != self.dimension:
            reason = f"its vectors have {info.dimension} dimensions, the index {self.dimension}"
            self._refuse(info.name, requested, reason, path)
        if self.digest and info.digest and info.digest != self.digest:
            reason = (
                f"the model was re-pulled with different weights since the index was built "
                f"(digest {_short(self.digest)} -> {_short(info.digest)})"
            )
            self._refuse(info.name, requested, reason, path)

    def _refuse(self, requested_name: str, requested: str, reason: str, path: str | None) -> None:
        values = {
            "recorded": self.model_label,
            "requested": requested,
            "reason": reason,
            "path": path if path is not None else "<in-memory>",
            "recorded_name": self.model,
            "requested_name": requested_name,
        }
        # Opening with the recorded model is a way out only when it is another model.
        other = self.model if requested_name != self.model else None
        msg = Explained(
            MISMATCH_MESSAGE.format(**values),
            problem=MISMATCH_PROBLEM.format(**values),
            fix=Fix("migrate", model=requested_name, recorded=other),
        )
        raise EmbeddingModelMismatchError(
            msg, path=path, recorded=self.model, requested=requested_name
        )


def new_manifest(
    info: ModelInfo,
    *,
    chunk_size: int | None = None,
    chunk_overlap: int | None = None,
    document_prefix: str | None = None,
    query_prefix: str | None = None,
    analyzer: str = "",
    base: IndexManifest | None = None,
) -> IndexManifest:
    """A manifest for an index of ``info`` (a new one, or ``base`` re-embedded with ``info``).

    Chunking comes from the model's context unless given; a migration (``base``) keeps the old
    chunking unless the new model's context is shorter, and keeps ``created_at``. Prefixes
    default to the registry's for known models.

    Raises:
        ConfigError: ``chunk_size``/``chunk_overlap`` are not a valid pair.
    """
    size, overlap = chunk_settings_for_context(info.context_length)
    if base is not None and size >= base.chunk_size:
        size, overlap = base.chunk_size, base.chunk_overlap
    size = chunk_size if chunk_size is not None else size
    overlap = chunk_overlap if chunk_overlap is not None else min(overlap, size // 5)
    CJKTextSplitter(chunk_size=size, chunk_overlap=overlap)  # validates the pair
    known = known_model(info.name)
    if document_prefix is None:
        document_prefix = known.document_prefix if known else ""
    if query_prefix is None:
        query_prefix = known.query_prefix if known else ""
    manifest = IndexManifest(
        model=info.name,
        digest=info.digest,
        dimension=info.dimension,
        context_length=info.context_length,
        chunk_size=size,
        chunk_overlap=overlap,
        document_prefix=document_prefix,
        query_prefix=query_prefix,
        library_version=__version__,
        analyzer=analyzer,
    )
    if base is None:
        return manifest
    return dataclasses.replace(manifest, created_at=base.created_at, analyzer=base.analyzer)
