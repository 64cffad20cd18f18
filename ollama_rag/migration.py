"""Re-embedding an index with another model, crash-safe and resumable.

The stored chunk texts are re-embedded into a side collection ``<name>.next`` that carries the
new manifest and a ``migration_of`` marker. Only when every chunk is there does the switch run:

1. mark ``<name>.next`` complete;
2. rename ``<name>`` to ``<name>.retired``;
3. rename ``<name>.next`` to ``<name>`` and drop the markers;
4. delete ``<name>.retired``.

Killing the process at any point leaves either the old index (before step 2) or the new one
(after it): :func:`recover`, run whenever an index is opened, finishes an interrupted switch.
Calling ``migrate`` again after an interruption during the copy resumes it: chunks already in
``<name>.next`` are not embedded again. No source files are needed.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future, as_completed
from typing import TYPE_CHECKING, Any, cast

from ollama_rag.errors import RagIndexError
from ollama_rag.ingest import IngestReport, Piece, Vector, embed_pieces, sha256
from ollama_rag.manifest import IndexManifest
from ollama_rag.store import COLLECTION_CONFIGURATION

if TYPE_CHECKING:
    from chromadb.api import ClientAPI
    from chromadb.api.models.Collection import Collection

    from ollama_rag.ollama import OllamaEmbedder
    from ollama_rag.splitting import CJKTextSplitter

__all__ = [
    "NEXT_SUFFIX",
    "RETIRED_SUFFIX",
    "get_collection",
    "migrate_collection",
    "recover",
    "rename",
]

NEXT_SUFFIX = ".next"
RETIRED_SUFFIX = ".retired"
MIGRATION_OF = "ollama_rag.migration_of"
MIGRATION_COMPLETE = "ollama_rag.migration_complete"
# The source index's updated_at when the copy began: a resumed copy of an index that was written
# to in between would bring back deleted or outdated chunks, so it starts over instead.
SOURCE_VERSION = "ollama_rag.migration_source_version"


def get_collection(client: ClientAPI, name: str) -> Collection | None:
    """The collection called ``name``, or None."""
    from chromadb.errors import NotFoundError

    try:
        return client.get_collection(name, embedding_function=None)
    except NotFoundError:
        return None


def rename(collection: Collection, name: str) -> None:
    """Rename a collection (one Chroma metadata update, atomic)."""
    collection.modify(name=name)


def _strip_markers(collection: Collection) -> None:
    meta = dict(collection.metadata or {})
    if MIGRATION_OF in meta or MIGRATION_COMPLETE in meta or SOURCE_VERSION in meta:
        meta.pop(MIGRATION_OF, None)
        meta.pop(MIGRATION_COMPLETE, None)
        meta.pop(SOURCE_VERSION, None)
        collection.modify(metadata=meta)


def recover(client: ClientAPI, name: str) -> None:
    """Finish a switch that a crash interrupted, so ``name`` is one whole index again."""
    current = get_collection(client, name)
    retired = get_collection(client, name + RETIRED_SUFFIX)
    if current is None and retired is not None:
        target = get_collection(client, name + NEXT_SUFFIX)
        done = target is not None and bool((target.metadata or {}).get(MIGRATION_COMPLETE))
        # Step 2 ran: finish step 3 with the complete copy, or (never expected) undo step 2.
        if target is not None and done:
            rename(target, name)
        else:
            rename(retired, name)
            retired = None
        current = get_collection(client, name)
    if current is not None:
        _strip_markers(current)
    if retired is not None:
        client.delete_collection(name + RETIRED_SUFFIX)


def _identity(manifest: IndexManifest) -> tuple[str, str, int, str, str]:
    m = manifest
    return (m.model, m.digest, m.dimension, m.document_prefix, m.query_prefix)


def _target(
    client: ClientAPI, name: str, manifest: IndexManifest, source_version: str
) -> Collection:
    """The side collection: resumed if it is for the same model and source state, else anew."""
    existing = get_collection(client, name + NEXT_SUFFIX)
    if existing is not None:
        found = IndexManifest.from_metadata(existing.metadata)
        same = (
            found is not None
            and _identity(found) == _identity(manifest)
            and (existing.metadata or {}).get(SOURCE_VERSION) == source_version
        )
        if same:
            return existing
        # Abandoned: a migration to another model, or the index changed since it began.
        client.delete_collection(name + NEXT_SUFFIX)
    metadata = {
        **manifest.to_metadata(),
        MIGRATION_OF: name,
        MIGRATION_COMPLETE: False,
        SOURCE_VERSION: source_version,
    }
    return client.create_collection(
        name + NEXT_SUFFIX,
        metadata=cast(Any, metadata),
        configuration=COLLECTION_CONFIGURATION,
        embedding_function=None,
    )


def _covered(target: Collection, ids: list[str]) -> set[str]:
    """Which of ``ids`` the target already holds, whole or as split parts."""
    have = set(target.get(ids=ids, include=[])["ids"])
    missing = [i for i in ids if i not in have]
    if missing:
        where = {"split_of": {"$in": missing}}
        parts = target.get(where=cast(Any, where), include=cast(Any, ["metadatas"]))
        have.update(str(m["split_of"]) for m in parts["metadatas"] or [] if m)
    return have


def _piece(text: str, meta: dict[str, Any]) -> Piece:
    start = meta.get("start_index")
    first = start if isinstance(start, int) else 0
    return Piece(text, first, first + len(text))


def _rows(cid: str, meta: dict[str, Any], rows: list[tuple[Piece, Vector]]) -> list[Any]:
    if len(rows) == 1:
        return [(cid, rows[0][0].text, meta, rows[0][1])]
    # The new model's context is shorter: the chunk was split; its parts point back to it.
    return [
        (
            sha256(f"{cid}\x1f{k}")[:32],
            piece.text,
            {
                **meta,
                "start_index": piece.start,
                "end_index": piece.end,
                "content_hash": sha256(piece.text),
                "split_of": cid,
                "chunk_part": k,
            },
            vector,
        )
        for k, (piece, vector) in enumerate(rows)
    ]


def migrate_collection(
    *,
    client: ClientAPI,
    name: str,
    source: Collection,
    source_version: str,
    manifest: IndexManifest,
    embedder: OllamaEmbedder,
    splitter_factory: Callable[[int], CJKTextSplitter],
    write_batch: int,
    on_chunks: Callable[[int], None] | None = None,
) -> tuple[Collection, IngestReport]:
    """Re-embed every chunk of ``source`` with ``embedder`` and switch ``name`` over to it.

    Returns:
        The collection now named ``name`` and a report of chunks embedded and reused.

    Raises:
        RagIndexError: The copy is incomplete after the pass (run ``migrate`` again).
        OllamaError: Embedding failed; the old index is untouched and a later call resumes.
    """
    report = IngestReport()
    requests_before = embedder.pool.requests
    target = _target(client, name, manifest, source_version)
    try:
        return _copy_and_switch(
            client,
            name,
            source,
            target,
            manifest,
            embedder,
            splitter_factory,
            write_batch,
            on_chunks,
            report,
            requests_before,
        )
    except BaseException:
        embedder.pool.cancel()  # stop queued and retrying requests: return promptly
        raise


def _copy_and_switch(
    client: ClientAPI,
    name: str,
    source: Collection,
    target: Collection,
    manifest: IndexManifest,
    embedder: OllamaEmbedder,
    splitter_factory: Callable[[int], CJKTextSplitter],
    write_batch: int,
    on_chunks: Callable[[int], None] | None,
    report: IngestReport,
    requests_before: int,
) -> tuple[Collection, IngestReport]:
    offset = 0
    while True:
        got = source.get(
            limit=write_batch, offset=offset, include=cast(Any, ["documents", "metadatas"])
        )
        ids = list(got["ids"])
        if not ids:
            break
        offset += len(ids)
        done = _covered(target, ids)
        todo = [
            (cid, text or "", dict(meta or {}))
            for cid, text, meta in zip(
                ids, got["documents"] or [], got["metadatas"] or [], strict=True
            )
            if cid not in done
        ]
        report.chunks_skipped += len(ids) - len(todo)
        futures: dict[Future[Any], list[tuple[str, str, dict[str, Any]]]] = {}
        for start in range(0, len(todo), embedder.batch_size):
            batch = todo[start : start + embedder.batch_size]
            pieces = [_piece(text, meta) for _, text, meta in batch]
            future = embedder.pool.executor.submit(embed_pieces, embedder, splitter_factory, pieces)
            futures[future] = batch
        failure: BaseException | None = None
        # Each batch is stored as soon as it is embedded, so an interruption loses at most the
        # batches in flight; after a failure the batches already running are still kept.
        for future in as_completed(futures):
            batch = futures[future]
            try:
                embedded = future.result()
            except BaseException as err:
                failure = failure or err
                continue
            rows = [
                row
                for (cid, _, meta), parts in zip(batch, embedded, strict=True)
                for row in _rows(cid, meta, parts)
            ]
            target.upsert(
                ids=[r[0] for r in rows],
                documents=[r[1] for r in rows],
                metadatas=cast(Any, [r[2] for r in rows]),
                embeddings=cast(Any, [r[3] for r in rows]),
            )
            report.chunks_embedded += len(rows)
            if on_chunks is not None:
                on_chunks(len(batch))
        if failure is not None:
            report.embedding_requests = embedder.pool.requests - requests_before
            raise failure
    report.embedding_requests = embedder.pool.requests - requests_before
    _verify(source, target, write_batch, name)
    switched = _switch(client, name, source, target, manifest)
    return switched, report


def _verify(source: Collection, target: Collection, write_batch: int, name: str) -> None:
    offset = 0
    missing = 0
    while ids := list(source.get(limit=write_batch, offset=offset, include=[])["ids"]):
        offset += len(ids)
        missing += len(set(ids) - _covered(target, ids))
    if missing:
        msg = (
            f"Migration of {name!r} is incomplete: {missing} chunks have no new vector; the old "
            "index is untouched. Run migrate() again to finish it"
        )
        raise RagIndexError(msg)


def _switch(
    client: ClientAPI,
    name: str,
    source: Collection,
    target: Collection,
    manifest: IndexManifest,
) -> Collection:
    meta = dict(target.metadata or {})
    target.modify(metadata={**meta, MIGRATION_COMPLETE: True})
    rename(source, name + RETIRED_SUFFIX)
    rename(target, name)
    target.modify(metadata=cast(Any, manifest.to_metadata()))
    client.delete_collection(name + RETIRED_SUFFIX)
    return target
