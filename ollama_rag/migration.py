"""Re-embedding an index with another model, crash-safe and resumable, on any store.

The stored chunks are copied, text and metadata as they are, into a side store that carries the
new manifest (:meth:`ChunkStore.side <ollama_rag.storage.base.ChunkStore.side>`), through the
same :class:`~ollama_rag.ingest.pipeline.Pipeline` every ingestion uses: one unit per chunk,
keeping its id. Only when every chunk is there does the store switch over
(:meth:`ChunkStore.switch <ollama_rag.storage.base.ChunkStore.switch>`), crash-safely. Killed
during the copy, the index is untouched and the next call resumes: chunks already in the side
store are found by id and not embedded again. No source files are needed.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, cast

import numpy as np

from ollama_rag.errors import RagIndexError
from ollama_rag.ingest.pipeline import Pipeline
from ollama_rag.ingest.report import IngestReport
from ollama_rag.ingest.units import Piece, Unit
from ollama_rag.storage.schema import SOURCE, START

if TYPE_CHECKING:
    from ollama_rag.manifest import IndexManifest
    from ollama_rag.ollama import OllamaEmbedder
    from ollama_rag.splitting import CJKTextSplitter
    from ollama_rag.storage.base import ChunkStore, StoredChunk, Vector

__all__ = ["migrate", "repair"]

# Stored chunks read per store call.
PAGE = 1000
# Recovered vectors a repair compares with a fresh embedding of their text before trusting
# the others, and the cosine similarity they must reach (the same model gives the same vector
# up to float noise; a vector of another text is far off).
REPAIR_SAMPLE = 8
REPAIR_AGREEMENT = 0.99


class _Copies:
    """Stored chunks to be copied with their ids, metadata and (when known) vectors.

    A unit holds the consecutive chunks of one source in a page (chunks are mostly stored
    source by source), so that a unit per chunk does not cost a unit's bookkeeping per chunk.
    """

    def __init__(self, pages: Iterable[list[StoredChunk]]) -> None:
        self.pages = pages
        self.read = 0  # units

    def __iter__(self) -> Iterator[Unit]:
        for page in self.pages:
            for source, chunks in itertools.groupby(page, key=lambda c: c.metadata.get(SOURCE)):
                pieces = []
                for chunk in chunks:
                    start = chunk.metadata.get(START)
                    first = start if isinstance(start, int) else 0
                    end = first + len(chunk.text)
                    pieces.append(
                        Piece(chunk.text, first, end, chunk.metadata, chunk.id, chunk.vector)
                    )
                self.read += 1
                yield Unit(str(source or ""), pieces, copy=True)


def migrate(
    *,
    store: ChunkStore,
    manifest: IndexManifest,
    embedder: OllamaEmbedder,
    splitter_factory: Callable[[int], CJKTextSplitter],
    on_chunks: Callable[[int], None] | None = None,
) -> IngestReport:
    """Re-embed every chunk of ``store`` with ``embedder`` and switch the store over to it.

    Args:
        store: The index's store; afterwards it holds the new vectors and ``manifest``.
        manifest: The new model's manifest.
        embedder: Embeds with the new model (its prefixes and dimension).
        splitter_factory: Splits chunks too long for the new model's context.
        on_chunks: Called with the number of chunks embedded, for progress bars.

    Returns:
        A report of chunks embedded and reused (resumed).

    Raises:
        RagIndexError: The index changed during the copy (run ``migrate`` again).
        OllamaError: Embedding failed; the old index is untouched and a later call resumes.
    """
    return _rebuild(
        store,
        manifest,
        store.iter_chunks(batch=PAGE),
        embedder=embedder,
        splitter_factory=splitter_factory,
        on_chunks=on_chunks,
        what="Migration",
        again="Run migrate() again to finish it",
    )


def repair(
    *,
    store: ChunkStore,
    manifest: IndexManifest,
    embedder: OllamaEmbedder,
    splitter_factory: Callable[[int], CJKTextSplitter],
    on_chunks: Callable[[int], None] | None = None,
) -> IngestReport:
    """Rebuild a damaged store from what it still holds (:meth:`ChunkStore.salvage`).

    The same crash-safe copy as :func:`migrate`, to the same model: chunks whose vector was
    recovered are stored with it, the others are embedded again.

    Returns:
        A report: ``chunks_skipped`` counts the recovered vectors, ``chunks_embedded`` the
        chunks embedded again.
    """
    return _rebuild(
        store,
        manifest,
        _trusted(store.salvage(batch=PAGE), embedder),
        embedder=embedder,
        splitter_factory=splitter_factory,
        on_chunks=on_chunks,
        what="Repair",
        again="Open the index again to finish it",
    )


def _trusted(
    pages: Iterable[list[StoredChunk]], embedder: OllamaEmbedder
) -> Iterable[list[StoredChunk]]:
    """``pages`` as they are, or without any vector when a sample of them looks wrong.

    A recovered vector that is not what the model gives for its text (read from the wrong
    element, or from a stale file) would be stored wrong, and found for the wrong queries;
    then everything is embedded again instead. The sample is spread over all the recovered
    vectors, first and last included, and embedded here, before the copy starts (the copy's
    pipeline owns the embedder's request slots once it runs).
    """
    everything = list(pages)  # a repair reads every row first anyway
    recovered = [c for page in everything for c in page if c.vector is not None]
    if not recovered:
        return everything
    picks = np.unique(np.linspace(0, len(recovered) - 1, REPAIR_SAMPLE).astype(int))
    sample = [recovered[i] for i in picks]
    fresh = np.asarray(embedder.embed_documents([c.text for c in sample]), dtype=np.float32)
    kept = np.stack([cast("Vector", c.vector) for c in sample])
    cosine = np.sum(fresh * kept, axis=1) / (
        np.linalg.norm(fresh, axis=1) * np.linalg.norm(kept, axis=1) + 1e-12
    )
    if bool(np.all(cosine > REPAIR_AGREEMENT)):
        return everything
    return [[dataclasses.replace(c, vector=None) for c in page] for page in everything]


def _rebuild(
    store: ChunkStore,
    manifest: IndexManifest,
    pages: Iterable[list[StoredChunk]],
    *,
    embedder: OllamaEmbedder,
    splitter_factory: Callable[[int], CJKTextSplitter],
    on_chunks: Callable[[int], None] | None,
    what: str,
    again: str,
) -> IngestReport:
    """Copy ``pages`` into a side store carrying ``manifest``, verify, and switch to it."""
    version = _version(store)
    side = store.side(manifest, version=version)
    copier = Pipeline(
        store=side,
        embedder=embedder,
        splitter_factory=splitter_factory,
        on_chunks=on_chunks,
        collect_ids=False,
    )
    copies = _Copies(pages)
    report = copier.run(copies)
    # Every chunk read was written (the pipeline raises otherwise); what remains to rule out
    # is another client writing to the index meanwhile (a shared Chroma server).
    if copier.units_written != copies.read or _version(store) != version:
        msg = (
            f"{what} of {store.location} is incomplete: the index changed while it was "
            f"being copied; the old index is untouched. {again}"
        )
        raise RagIndexError(msg, path=store.path)
    store.switch(side)
    return report


def _version(store: ChunkStore) -> str:
    """The store's ``updated_at``: every write through an index moves it on."""
    current = store.read_manifest()
    return current.updated_at if current is not None else ""
