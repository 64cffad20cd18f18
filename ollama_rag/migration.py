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

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

from ollama_rag.errors import RagIndexError
from ollama_rag.ingest.pipeline import Pipeline
from ollama_rag.ingest.report import IngestReport
from ollama_rag.ingest.units import Piece, Unit
from ollama_rag.storage.schema import SOURCE, SPLIT_OF, START

if TYPE_CHECKING:
    from ollama_rag.manifest import IndexManifest
    from ollama_rag.ollama import OllamaEmbedder
    from ollama_rag.splitting import CJKTextSplitter
    from ollama_rag.storage.base import ChunkStore

__all__ = ["migrate"]

# Stored chunks read per store call.
PAGE = 1000


def _copies(store: ChunkStore) -> Iterator[Unit]:
    """Every stored chunk as a unit of its own, to be copied with its id and metadata."""
    for page in store.iter_chunks(batch=PAGE):
        for chunk in page:
            start = chunk.metadata.get(START)
            first = start if isinstance(start, int) else 0
            piece = Piece(chunk.text, first, first + len(chunk.text), chunk.metadata, chunk.id)
            yield Unit(str(chunk.metadata.get(SOURCE, "")), [piece], copy=True)


def _missing(store: ChunkStore, side: ChunkStore) -> int:
    """How many chunks of ``store`` the side store holds neither whole nor as split parts."""
    missing = 0
    for page in store.iter_chunks(batch=PAGE):
        ids = [chunk.id for chunk in page]
        have = set(side.stored_metadata(ids))
        absent = [i for i in ids if i not in have]
        if absent:
            have.update(str(p.metadata.get(SPLIT_OF)) for p in side.stored_parts(absent))
        missing += sum(1 for i in ids if i not in have)
    return missing


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
        RagIndexError: The copy is incomplete after the pass (run ``migrate`` again).
        OllamaError: Embedding failed; the old index is untouched and a later call resumes.
    """
    current = store.read_manifest()
    version = current.updated_at if current is not None else ""
    side = store.side(manifest, version=version)
    pipeline = Pipeline(
        store=side,
        embedder=embedder,
        splitter_factory=splitter_factory,
        on_chunks=on_chunks,
        collect_ids=False,
    )
    report = pipeline.run(_copies(store))
    if missing := _missing(store, side):
        msg = (
            f"Migration of {store.location} is incomplete: {missing} chunks have no new vector; "
            "the old index is untouched. Run migrate() again to finish it"
        )
        raise RagIndexError(msg, path=store.path)
    store.switch(side)
    return report
