"""``RagIndex``: open or create a guarded index, add to it, search it, migrate it.

This module only orchestrates. The manifest decides compatibility (``manifest.py``), the
embedder talks to Ollama (``ollama.py``), units are planned in ``ingest/`` and written by its
pipeline through the storage seam (``storage/``), queries are answered by ``search.py``, and a
model change is carried out by ``migration.py``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import logging
import os
import threading
import warnings
import weakref
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal

from langchain_core.documents import Document
from langchain_ollama import OllamaEmbeddings

from ollama_rag import evaluation, loading, migration
from ollama_rag.display import table
from ollama_rag.errors import (
    INDEX_CLOSED_MESSAGE,
    REPAIR_FAILED_MESSAGE,
    REPAIR_FAILED_PROBLEM,
    REPAIRED_MESSAGE,
    REPAIRED_PROBLEM,
    ConfigError,
    EmbeddingModelMismatchError,
    Explained,
    Fix,
    IndexClosedError,
    IndexDamagedError,
    IndexNotFoundError,
    IndexRepairedWarning,
    OllamaError,
    RagIndexError,
    index_not_found,
)
from ollama_rag.fusion import Calibration
from ollama_rag.ingest.documents import plan_documents, plan_texts, units_of
from ollama_rag.ingest.files import FilePlanner, roots_of
from ollama_rag.ingest.pipeline import Pipeline
from ollama_rag.ingest.report import IngestReport
from ollama_rag.ingest.units import Unit
from ollama_rag.lexical.analysis import DEFAULT_ANALYZER, Analyzer, get_analyzer
from ollama_rag.manifest import IndexManifest, new_manifest
from ollama_rag.models import warn_if_english_only
from ollama_rag.ollama import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_TIMEOUT,
    OllamaEmbedder,
    canonical_model_name,
)
from ollama_rag.progress import progress_bar
from ollama_rag.retriever import RagRetriever
from ollama_rag.search import MIN_CALIBRATION, Searcher, SearchResults, check_encodable
from ollama_rag.splitting import CJKTextSplitter
from ollama_rag.storage.base import ChunkStore
from ollama_rag.storage.chroma import ChromaStore
from ollama_rag.storage.hybrid import HybridStore
from ollama_rag.storage.kinds import StoreKind, open_store, resolve_store
from ollama_rag.storage.schema import public_metadata

if TYPE_CHECKING:
    from langchain_core.vectorstores import VectorStore
    from typing_extensions import Unpack

    from ollama_rag.evaluation import EvaluationResult, LabelledQuestion
    from ollama_rag.ingest.documents import SourceDocuments
    from ollama_rag.ollama import LoopClients
    from ollama_rag.search import MMROptions, SearchOptions
    from ollama_rag.storage.base import (
        CollectionSummary,
        SourceSummary,
        StoredChunk,
    )
    from ollama_rag.storage.chroma import ChromaClient

__all__ = ["RagIndex"]

log = logging.getLogger(__name__)

# Jobs this large get progress bars unless progress=False.
AUTO_PROGRESS_FILES = 20
AUTO_PROGRESS_CHUNKS = 1000
# How often an async write waiting for another write checks whether it was cancelled (seconds).
LOCK_POLL = 0.05


def _part_splitter(size: int) -> CJKTextSplitter:
    return CJKTextSplitter(chunk_size=size, chunk_overlap=0)


def _analyzer(requested: str | None, manifest: IndexManifest | None) -> Analyzer:
    """The analyser asked for, else the recorded one, else the default."""
    if requested is not None:
        return get_analyzer(requested)
    recorded = manifest.analyzer.split("/", 1)[0] if manifest is not None else ""
    return get_analyzer(recorded or DEFAULT_ANALYZER)


def _calibration_due(manifest: IndexManifest, count: int) -> bool:
    """Whether hybrid search should be recalibrated: never measured, or the size changed 2x."""
    recorded = Calibration.from_text(manifest.fusion)
    if recorded is None:
        return count >= MIN_CALIBRATION
    return count >= 2 * recorded.chunks or 2 * count <= recorded.chunks


def _release(store: ChunkStore, embedder: OllamaEmbedder | None) -> None:
    if embedder is not None:
        embedder.close()
    store.close()


class RagIndex:
    """A persistent (or in-memory) vector index guarded against mixing embedding models.

    Setup:
        Run Ollama and pull an embedding model: ``ollama serve`` and ``ollama pull bge-m3``.

    Instantiate:
        .. code-block:: python

            from ollama_rag import RagIndex

            index = RagIndex("./rag_db", model="bge-m3")   # create, or open and verify
            index = RagIndex("./rag_db")                   # reopen with the recorded model

    Add:
        .. code-block:: python

            index.add_texts(["富士山は日本で一番高い山です。"], source="notes.txt")

    Search:
        .. code-block:: python

            for doc in index.search("日本で一番高い山は？", k=4):
                print(doc.metadata["score"], doc.metadata["source"], doc.page_content)

    Async:
        .. code-block:: python

            await index.aadd_texts(["富士山は日本で一番高い山です。"], source="notes.txt")
            docs = await index.asearch("日本で一番高い山は？", k=4)

    Use as retriever:
        .. code-block:: python

            retriever = index.as_retriever(search_kwargs={"k": 5})
            retriever.invoke("日本で一番高い山は？")

    Args:
        path: Directory of a persistent index (created if missing), or None for in-memory.
            Opening a directory that holds no index without a ``model`` (or with
            ``read_only=True`` or ``create=False``) raises :class:`IndexNotFoundError` and
            creates nothing.
        model: Ollama embedding model. Needed to create an index; when opening one it must be
            the recorded model (or None to use it).
        embeddings: Your own configured ``langchain_ollama.OllamaEmbeddings`` instead of
            ``model`` (its model, base URL, headers, client options and ``keep_alive`` are used,
            and the guard applies to it exactly as to ``model``).
        base_url: Ollama URL; defaults to ``OLLAMA_HOST``, then ``http://127.0.0.1:11434``. A
            list of URLs spreads embedding over several Ollama hosts (all must serve the same
            model digest).
        collection: Chroma collection name; one directory can hold several indexes.
        chunk_size: Characters per chunk; by default derived from the model's context.
        chunk_overlap: Characters shared by neighbouring chunks.
        document_prefix: Text put before every document before embedding; by default the
            model's own (e.g. ``"search_document: "`` for nomic-embed-text). Recorded.
        query_prefix: Text put before every query; by default the model's own. Recorded.
        analyzer: The analyser of the lexical (BM25) index: ``"cjk-bigram"`` (the default,
            no dependency) or a morphological one from an extra (``"sudachi"``, ``"janome"``,
            ``"jieba"``, ``"kiwi"``; see docs/analyzers.md). Recorded; naming another one
            later rebuilds the lexical index from the stored text (nothing is re-embedded).
        lexical_dir: Folder for the lexical index's file when the index is on a Chroma
            server (default ``$OLLAMA_RAG_CACHE/lexical``, else ``~/.cache/ollama-rag/lexical``);
            an index on disk keeps it in its own directory.
        client: An existing chromadb client (e.g. ``chromadb.HttpClient`` for ``chroma run``)
            instead of ``path``.
        store: The vector store of a new index in ``path``: ``"chroma"`` (the default, or
            ``$OLLAMA_RAG_STORE``) or ``"faiss"`` (the ``[faiss]`` extra; see docs/stores.md).
            Recorded; an existing index is opened with the store it holds, and naming the
            other one is refused. Or a :class:`~ollama_rag.storage.ChunkStore` instance to
            keep the index in, instead of ``path``/``client``.
        faiss_index: The FAISS index type of a new FAISS index: ``"flat"`` (exact, the
            default) or ``"hnsw"`` (approximate, for large indexes). Recorded.
        read_only: Open an existing index for searching only; writes raise
            :class:`IndexReadOnlyError`. A directory is opened as a private snapshot taken
            between two write calls, so this works while another process is ingesting into
            it (which any other open would damage) and never blocks that process; it does
            not see later writes until opened again. Ollama is not asked about the model
            until the first text is embedded (the guard then applies as on any open), so
            reading chunks, sources and counts works while Ollama is down. See
            docs/reliability.md.
        create: False to open an existing index only: where there is none,
            :class:`IndexNotFoundError` is raised (and nothing is written) even when a
            ``model`` is given.
        pull: Pull the model (with a progress bar) if the server does not have it.
        on_mismatch: ``"error"`` (default) refuses a model that differs from the recorded one;
            ``"migrate"`` re-embeds the index with it instead (see :meth:`migrate`).
        batch_size: Texts per embedding request.
        keep_alive: How long Ollama keeps the model loaded after a request: seconds (negative =
            forever) or a duration such as ``"30m"``; set it so an embedding model and a chat
            model can stay loaded side by side.
        timeout: Seconds per HTTP request to Ollama (unless ``embeddings`` sets its own).
        concurrency: Embedding requests in flight per Ollama host.
        retries: Retries of a request that failed with a connection error or a 5xx answer.
        retry_backoff: Seconds before the first retry; doubled for each further one.

    Raises:
        EmbeddingModelMismatchError: The index was built by another model (name, digest or
            dimension).
        IndexNotFoundError: No index exists and no ``model`` was given.
        IndexLockedError: Another process has the directory open (the message says what that
            process is doing; ``read_only=True`` searches meanwhile).
        OllamaUnavailableError: Ollama is not reachable.
        ModelNotFoundError: The model is not pulled.
        NotAnEmbeddingModelError: The model cannot embed.
        ConfigError: An argument is invalid.
    """

    def __init__(
        self,
        path: str | os.PathLike[str] | None = None,
        *,
        model: str | None = None,
        embeddings: OllamaEmbeddings | None = None,
        base_url: str | Sequence[str] | None = None,
        collection: str = "default",
        chunk_size: int | None = None,
        chunk_overlap: int | None = None,
        document_prefix: str | None = None,
        query_prefix: str | None = None,
        analyzer: str | None = None,
        lexical_dir: str | os.PathLike[str] | None = None,
        client: ChromaClient | None = None,
        store: ChunkStore | StoreKind | None = None,
        faiss_index: Literal["flat", "hnsw"] | None = None,
        read_only: bool = False,
        create: bool = True,
        pull: bool = False,
        on_mismatch: Literal["error", "migrate"] = "error",
        batch_size: int = DEFAULT_BATCH_SIZE,
        keep_alive: float | str | None = None,
        timeout: float | None = DEFAULT_TIMEOUT,
        concurrency: int = 2,
        retries: int = 3,
        retry_backoff: float = 0.5,
    ) -> None:
        if on_mismatch not in ("error", "migrate"):
            msg = f"on_mismatch must be 'error' or 'migrate', got {on_mismatch!r}"
            raise ConfigError(msg)
        self.collection_name = collection
        self._closed = False
        self.last_repair: IngestReport | None = None
        self._settings = OllamaEmbedder.settings_for(
            model=model,
            embeddings=embeddings,
            base_url=base_url,
            keep_alive=keep_alive,
            timeout=timeout,
            batch_size=batch_size,
            concurrency=concurrency,
            retries=retries,
            retry_backoff=retry_backoff,
        )
        if embeddings is not None:
            model = embeddings.model
        self.base_urls: tuple[str, ...] = (self._settings["base_url"], *self._settings["hosts"])
        self.base_url = self.base_urls[0]
        self._lock = threading.RLock()
        self.read_only = read_only
        self._create = create and model is not None and not read_only
        if isinstance(store, ChunkStore):
            if read_only:
                msg = "read_only=True applies to an index opened by path, not to a store instance"
                raise ConfigError(msg)
            if path is not None or client is not None:
                msg = "Pass a store instance as store= alone: path= and client= choose a store"
                raise ConfigError(msg)
            vectors: ChunkStore = store
        else:
            kind = resolve_store(path, "chroma" if client is not None and store is None else store)
            if client is not None and kind != "chroma":
                msg = "client= is a Chroma server; a FAISS index lives in a directory (path=)"
                raise ConfigError(msg)
        if pull and model is not None:
            self._pull(model)  # before anything is opened: a new index waits for its model
        if not isinstance(store, ChunkStore):
            vectors = self._open_store(kind, path, client, collection, model, faiss_index)
        self._store = HybridStore(vectors, lexical_dir=lexical_dir)
        self._finalizer = weakref.finalize(self, _release, self._store, None)
        try:
            manifest, embedder, pending = self._open(
                model,
                analyzer=analyzer,
                on_mismatch=on_mismatch,
                settings={
                    "chunk_size": chunk_size,
                    "chunk_overlap": chunk_overlap,
                    "document_prefix": document_prefix,
                    "query_prefix": query_prefix,
                },
            )
            self.searcher = Searcher(self._store, embedder)
            self._use(manifest, embedder)
            if pending is not None:
                self.migrate(pending, document_prefix=document_prefix, query_prefix=query_prefix)
        except BaseException:
            self.close()
            raise

    # ------------------------------------------------------------------ opening

    def _embedder(self, model: str, manifest: IndexManifest | None = None) -> OllamaEmbedder:
        """An embedder for ``model``; with a manifest, its prefixes and dimension."""
        recorded: dict[str, Any] = {}
        if manifest is not None:
            recorded = {
                "document_prefix": manifest.document_prefix,
                "query_prefix": manifest.query_prefix,
                "expected_dimension": manifest.dimension,
            }
        return OllamaEmbedder.build(**{**self._settings, "model": model, **recorded})

    def _open_store(
        self,
        kind: StoreKind,
        path: str | os.PathLike[str] | None,
        client: ChromaClient | None,
        collection: str,
        model: str | None,
        faiss_index: str | None,
    ) -> ChunkStore:
        """Open the store; a new directory only once Ollama has the model.

        Creating an index writes the store's files at once, so a directory that holds none yet
        is written only after the model was found: a failed create leaves the disk as it was.
        """
        if client is not None:
            return ChromaStore.open(
                client=client, collection=collection, read_only=self.read_only, create=self._create
            )
        opener = functools.partial(
            open_store, kind, path, collection=collection, faiss_index=faiss_index
        )
        if not self._create or path is None or model is None:
            return opener(read_only=self.read_only, create=self._create)
        try:
            return opener(create=False)
        except IndexNotFoundError:
            probe = self._embedder(model)
            try:
                probe.probe()
            finally:
                probe.close()
        return opener()

    def _pull(self, model: str) -> None:
        """Pull ``model`` on every host that lacks it, through the embedder's own clients."""
        from ollama_rag.pull import ensure_model

        puller = self._embedder(model)
        try:
            for url, client in puller.pool.clients.items():
                ensure_model(model, base_url=url, client=client)
        finally:
            puller.close()

    def _open(
        self,
        model: str | None,
        *,
        analyzer: str | None,
        on_mismatch: str,
        settings: dict[str, Any],
    ) -> tuple[IndexManifest, OllamaEmbedder, str | None]:
        """Open (verifying) or create the index.

        Returns:
            The manifest, an embedder for it, and the model to migrate to when ``on_mismatch``
            is ``"migrate"`` and the recorded model does not match (else None).
        """
        requested = canonical_model_name(model) if model is not None else None
        manifest = self._store.read_manifest()
        lexical = _analyzer(analyzer, manifest)
        self._store.use_analyzer(lexical)
        if manifest is not None:
            manifest.check_settings(self._store.location, **settings)
            embedder = self._embedder(manifest.model, manifest)
            try:
                if requested is not None:
                    manifest.check_model_name(requested, path=self.path)
                if self.read_only:
                    # Reading chunks needs no Ollama; the guard runs before the first embedding.
                    recorded, probed = manifest, embedder
                    embedder.check_before_use(
                        lambda: recorded.check_compatible(probed.probe(), path=self.path)
                    )
                else:
                    manifest.check_compatible(embedder.probe(), path=self.path)
            except EmbeddingModelMismatchError:
                if on_mismatch == "migrate":
                    return manifest, embedder, model or manifest.model
                embedder.close()
                raise
            except BaseException:
                embedder.close()
                raise
            try:
                damage = self._store.damage()
                if damage is not None:
                    self._repair(damage, manifest, embedder)
                manifest = self._open_lexical(manifest, lexical)
            except BaseException:
                embedder.close()
                raise
            return manifest, embedder, None

        if model is None or not self._create:
            others = [
                c.name
                for c in self._store.collections()
                if c.manifest is not None and c.name != self.collection_name
            ]
            raise index_not_found(
                self._store.location,
                path=self.path,
                collection=self.collection_name,
                choices=others,
                read_only=self.read_only,
            )
        embedder = self._embedder(model)
        try:
            info = embedder.probe()
            manifest = self._store.create(new_manifest(info, **settings, analyzer=lexical.identity))
            manifest.check_compatible(info, path=self.path)  # another client may have won
            manifest = self._open_lexical(manifest, lexical)
        except BaseException:
            embedder.close()
            raise
        embedder.close()
        return manifest, self._embedder(manifest.model, manifest), None

    def _open_lexical(self, manifest: IndexManifest, analyzer: Analyzer) -> IndexManifest:
        """Open (build, rebuild or catch up) the lexical index; record a new analyser."""
        self._store.open_lexical()
        if manifest.analyzer == analyzer.identity or self.read_only:
            return manifest
        manifest = dataclasses.replace(manifest, analyzer=analyzer.identity)
        self._store.write_manifest(manifest)
        return manifest

    def _repair(self, damage: str, manifest: IndexManifest, embedder: OllamaEmbedder) -> None:
        """Rebuild a store a crash left damaged, from what is still on disk; warn what was done."""
        where = self._store.location
        try:
            report = migration.repair(
                store=self._store,
                manifest=manifest,
                embedder=embedder,
                splitter_factory=_part_splitter,
            )
        except (OllamaError, RagIndexError):
            raise  # the old files are untouched: opening the index again resumes the repair
        except Exception as err:  # the database itself is unreadable: nothing left to copy
            values = {"where": where, "damage": damage, "error": err}
            msg = Explained(
                REPAIR_FAILED_MESSAGE.format(**values),
                problem=REPAIR_FAILED_PROBLEM.format(**values),
                fix=Fix("rebuild", model=manifest.model, collection=self.collection_name),
            )
            raise IndexDamagedError(msg, path=self.path) from err
        self.last_repair = report
        figures = {
            "where": where,
            "damage": damage,
            "kept": report.chunks_skipped,
            "embedded": report.chunks_embedded,
        }
        warnings.warn(
            Explained(
                REPAIRED_MESSAGE.format(**figures), problem=REPAIRED_PROBLEM.format(**figures)
            ),
            IndexRepairedWarning,
            stacklevel=5,
        )

    def _use(self, manifest: IndexManifest, embedder: OllamaEmbedder) -> None:
        """Point this object at a manifest and an embedder for its model."""
        old = getattr(self, "embeddings", None)
        self._manifest = manifest
        self.embeddings = embedder
        self.splitter = CJKTextSplitter(
            chunk_size=manifest.chunk_size, chunk_overlap=manifest.chunk_overlap
        )
        self.searcher.use(self._store, embedder)
        recorded = Calibration.from_text(manifest.fusion)
        self.searcher.priors = recorded.priors if recorded is not None else (1.0, 1.0)
        self._finalizer.detach()
        self._finalizer = weakref.finalize(self, _release, self._store, embedder)
        if old is not None and old is not embedder:
            old.close()

    # ------------------------------------------------------------------ state

    @property
    def path(self) -> str | None:
        """The index directory, or None for in-memory indexes and user-supplied clients."""
        return self._store.path

    @property
    def manifest(self) -> IndexManifest:
        """The index's :class:`IndexManifest` (model, digest, dimension, splitter, times)."""
        return self._manifest

    @property
    def model(self) -> str:
        """The embedding model recorded in the manifest."""
        return self._manifest.model

    def count(self) -> int:
        """Return the number of stored chunks."""
        self._live()
        return self._store.count()

    def sources(self) -> list[SourceSummary]:
        """Every source in the index, by name, with its chunk count and whether it is complete.

        A source that is not complete was left half-written by an interrupted run; running
        the same ingestion again finishes it.
        """
        self._live()
        return self._store.sources()

    def collections(self) -> list[CollectionSummary]:
        """Every index in this index's directory (or on its Chroma server), this one included.

        Each has its name, its manifest (None for a collection ollama-rag did not create) and
        its chunk count.
        """
        self._live()
        return self._store.collections()

    def disk_usage(self) -> dict[str, int]:
        """Bytes on disk of this index's parts, by name; empty in memory or on a server.

        ``vectors``: this collection's vector files; ``database``: Chroma's database (shared by
        the indexes of the directory); ``lexical``: the lexical index.
        """
        self._live()
        return self._store.disk_usage()

    def iter_chunks(
        self, *, vectors: bool = False, include_root: bool = False, batch: int = 1000
    ) -> Iterator[StoredChunk]:
        """Every stored chunk: id, text and metadata (and its vector if ``vectors``).

        The metadata is what :meth:`search` shows (``source``, ``chunk_index``, offsets, the
        source's own metadata), without the index's bookkeeping.

        Args:
            vectors: Also read each chunk's vector (as stored: L2-normalised).
            include_root: Also give ``root``, the absolute folder a file was added from.
            batch: Chunks read per store call.
        """
        self._live()
        for ids in self._store.iter_ids(batch=batch):
            for chunk in self._store.fetch(ids, include_vectors=vectors):
                metadata = public_metadata(chunk.metadata, include_root=include_root)
                yield dataclasses.replace(chunk, metadata=metadata)

    def close(self) -> None:
        """Release the store (client, directory lock) and the embedder. Safe to call twice.

        New calls are refused at once, but a write running in another thread is allowed to
        finish first, so the lock is never released while this process is still writing.
        """
        self._closed = True
        with self._lock:
            self._finalizer()

    def _live(self) -> None:
        if self._closed:
            msg = INDEX_CLOSED_MESSAGE.format(where=self._store.location)
            raise IndexClosedError(msg, path=self.path)
        self._store.check_open()  # also refuses a fork()ed child

    def __enter__(self) -> RagIndex:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else f"chunks={self.count()}"
        return (
            f"RagIndex(path={self.path!r}, collection={self.collection_name!r}, "
            f"model={self.model!r}, dimension={self._manifest.dimension}, {state})"
        )

    def _repr_html_(self) -> str:
        rows = [
            ("path", self.path or "in-memory"),
            ("collection", self.collection_name),
            ("chunks", "closed" if self._closed else str(self.count())),
            *self._manifest.rows(),
        ]
        return table(rows, caption="RagIndex", row_head=True)

    # ------------------------------------------------------------------ writing

    def _run(
        self,
        units: Iterable[Unit],
        *,
        report: IngestReport | None = None,
        progress: Any = None,
        collect_ids: bool = True,
        via: LoopClients | None = None,
    ) -> Pipeline:
        """Stream units through the pipeline into the store; record the write in the manifest."""
        pipeline = Pipeline(
            store=self._store,
            embedder=self.embeddings,
            splitter_factory=_part_splitter,
            on_chunks=progress.add_chunks if progress is not None else None,
            report=report,
            collect_ids=collect_ids,
            via=via,
        )
        try:
            pipeline.run(units)
        except BaseException:
            if pipeline.units_written:
                self._touch(calibrate=False)  # the error is what the caller must see
            raise
        if pipeline.units_written:
            self._touch(via=via)
        return pipeline

    def _touch(self, *, calibrate: bool = True, via: LoopClients | None = None) -> None:
        """Record a write in the manifest; after a successful one, recalibrate if it is due.

        The calibration embeds up to ``CALIBRATION_QUERIES`` short pseudo-queries (one
        batched request per 64): about what embedding a tenth as many chunks costs, once
        each time the index doubles. When Ollama fails meanwhile, the old priors stay.
        ``via``: embed through an event loop's async clients (after an async write).
        """
        self._manifest = self._manifest.touched()
        if calibrate and _calibration_due(self._manifest, self._store.count()):
            try:
                calibrated = self.searcher.calibrate(via=via)
            except OllamaError as err:
                log.warning("hybrid search was not recalibrated: %s", err)
                calibrated = None
            if calibrated is not None:
                self._manifest = dataclasses.replace(self._manifest, fusion=calibrated.to_text())
                self.searcher.priors = calibrated.priors
        self._store.write_manifest(self._manifest)

    def calibrate(self) -> Calibration | None:
        """Measure how reliable dense and lexical search are on this index, and use it.

        Hybrid search weighs each side per query by how far its best score stands out, scaled
        by a prior of the side's reliability on this index. The prior comes from
        pseudo-queries made from the index's own chunks (no labels needed); it is measured
        after a write when the index has changed size twofold since the last measurement,
        recorded in the manifest (``index.manifest.fusion``), and can be remeasured here.

        Returns:
            The calibration, or None when the index is too small to measure (equal priors).
        """
        self._live()
        with self._lock, self._store.doing("calibrating hybrid search"):
            calibrated = self.searcher.calibrate()
            if calibrated is not None:
                self._manifest = dataclasses.replace(self._manifest, fusion=calibrated.to_text())
                self._store.write_manifest(self._manifest)
                self.searcher.priors = calibrated.priors
            return calibrated

    def add_texts(
        self,
        texts: Iterable[str],
        metadatas: Sequence[Mapping[str, Any]] | None = None,
        *,
        source: str | None = None,
    ) -> list[str]:
        """Split, embed and store texts; unchanged chunks are never embedded again.

        Args:
            texts: The texts. Each is split into chunks.
            metadatas: One metadata dict per text (scalar values), copied onto its chunks.
            source: Where the texts come from. Adding a source again replaces exactly its old
                chunks. Without one, each text is its own source (named by its hash), so
                re-adding the same text is a no-op.

        Returns:
            The ids of the chunks now stored for these texts, in order.
        """
        return self._add(plan_texts(texts, metadatas, source=source), replace=True)

    def add_documents(self, documents: Iterable[Document], *, replace: bool = True) -> list[str]:
        """Split, embed and store LangChain documents (``metadata["source"]`` names the source).

        The documents of one source in one call are that source's whole new content: adding
        the source again replaces exactly its old chunks. To add one source's documents over
        several calls (the pages of a long PDF in batches), pass ``replace=False``, or the last
        call would replace the earlier ones.

        Args:
            documents: The documents.
            replace: Replace each source's stored chunks (default) or only add to them.

        Returns:
            The ids of the chunks now stored for these documents, in order.
        """
        return self._add(plan_documents(documents), replace=replace)

    def _add(self, planned: list[Any], *, replace: bool) -> list[str]:
        ids, sample = self._ingest(planned, replace=replace)
        warn_if_english_only(self.model, " ".join(sample), stacklevel=3)
        return ids

    def _ingest(
        self, planned: list[SourceDocuments], *, replace: bool, via: LoopClients | None = None
    ) -> tuple[list[str], list[str]]:
        """Add planned sources; returns their chunk ids and a sample of their text."""
        self._live()
        total = sum(len(group.documents) for group in planned)
        show = total >= AUTO_PROGRESS_CHUNKS
        sample: list[str] = []
        with (
            self._write_lock(via),
            self._store.doing("adding texts"),
            progress_bar(0, show, unit="chunk", chunks=True) as bar,
        ):

            def units() -> Iterable[Unit]:
                for unit in units_of(planned, self.splitter, replace=replace):
                    if len(sample) < 4 * len(planned) and len(sample) < 200:
                        sample.extend(p.text for p in unit.pieces[:4])
                    yield unit

            pipeline = self._run(units(), progress=bar, via=via)
        return [cid for group in planned for cid in pipeline.ids.get(group.source, [])], sample

    def add_files(
        self,
        paths: str | os.PathLike[str] | Iterable[str | os.PathLike[str]],
        *,
        glob: str = "**/*",
        exclude: str | Sequence[str] | None = None,
        delete_missing: bool = False,
        encoding: str | None = None,
        normalize: bool = False,
        max_file_bytes: int | None = None,
        progress: bool | None = None,
        report: IngestReport | None = None,
    ) -> IngestReport:
        """Index files and folders: load, split, embed, store; unchanged files cost nothing.

        A file's ``source`` is its path relative to the folder it was added from (its name when
        the file is given directly). A changed file replaces exactly its old chunks. Files that
        cannot be read or decoded, and binary, empty or unsupported files, are reported and do
        not stop the others.

        Args:
            paths: Files and folders.
            glob: Which files in folders to consider.
            exclude: Glob pattern(s) of relative paths to leave out (hidden folders, ``.git``,
                ``node_modules`` and the like are always left out).
            delete_missing: Also delete the chunks of files previously added from these folders
                that no longer exist (see :meth:`sync`).
            encoding: Force a text encoding instead of detecting it.
            normalize: Apply Unicode NFKC normalisation (full-width ASCII to half-width, ...).
            max_file_bytes: Skip files larger than this (default 50 MiB).
            progress: Show progress bars; by default only for jobs of 20 files or more.
            report: A report to fill in instead of a new one: when the call is interrupted
                (Ctrl-C) or fails, it still says what was committed until then.

        Returns:
            An :class:`IngestReport` of files added/updated/unchanged/deleted/failed, chunks
            embedded and reused, requests made and time taken.
        """
        self._live()
        entries = list(loading.discover(paths, glob=glob, exclude=exclude))
        report = report if report is not None else IngestReport()
        show = progress if progress is not None else len(entries) >= AUTO_PROGRESS_FILES
        with (
            self._lock,
            self._store.doing("syncing files" if delete_missing else "adding files"),
            progress_bar(len(entries), show, unit="file", chunks=True) as bar,
        ):
            planner = FilePlanner(
                self._store,
                self.splitter,
                report,
                encoding=encoding,
                normalize=normalize,
                max_file_bytes=max_file_bytes,
            )
            units = planner.units(entries, on_file=lambda: bar.update(1))
            written = self._run(units, report=report, progress=bar, collect_ids=False)
            if delete_missing:
                items = [paths] if isinstance(paths, (str, os.PathLike)) else list(paths)
                present = {e.source for e in entries}
                # A folder that could not be listed hides its files, which are not gone.
                hidden = tuple(f"{e.source}/" for e in entries if e.error is not None)
                for root in roots_of(items):
                    stored = self._store.sources_under(root) - present
                    gone = sorted(s for s in stored if not s.startswith(hidden))
                    if gone:
                        self._store.delete_sources(gone)
                        report.files_deleted += len(gone)
            if report.files_deleted and not written.units_written:
                self._touch()
        warn_if_english_only(self.model, " ".join(planner.sample), stacklevel=2)
        return report

    def sync(
        self, folder: str | os.PathLike[str] | Iterable[str | os.PathLike[str]], **kwargs: Any
    ) -> IngestReport:
        """Make the index mirror a folder: ``add_files(folder, delete_missing=True, ...)``."""
        return self.add_files(folder, delete_missing=True, **kwargs)

    def delete(self, ids: Sequence[str] | None = None, *, source: str | None = None) -> int:
        """Delete chunks by id, or every chunk of a source.

        Returns:
            The number of chunks deleted.
        """
        if (ids is None) == (source is None):
            msg = "delete() needs exactly one of ids=[...] or source='...'"
            raise ConfigError(msg)
        if isinstance(ids, str):
            msg = f"delete(ids=...) takes a list of ids; wrap a single one: delete(ids=[{ids!r}])"
            raise ConfigError(msg)
        check_encodable(ids if source is None else source, "delete()")
        self._live()
        with self._lock, self._store.doing("deleting chunks"):
            if source is not None:
                deleted = self._store.delete_sources([source])
            else:
                deleted = self._store.delete_ids(list(ids or []))
            if deleted:
                self._touch()
        return deleted

    # ------------------------------------------------------------------ searching

    def search_with_scores(
        self,
        query: str,
        k: int = 4,
        *,
        filter: Mapping[str, Any] | None = None,
        where_document: Mapping[str, Any] | None = None,
        include_root: bool = False,
        mode: Literal["hybrid", "dense", "lexical"] | None = None,
    ) -> SearchResults[tuple[Document, float]]:
        """Return the ``k`` best chunks for ``query`` with their scores.

        Args:
            query: The question or search text.
            k: How many chunks to return.
            filter: A Chroma metadata filter, e.g. ``{"source": "a.md"}`` (both sides).
            where_document: A Chroma document filter, e.g. ``{"$contains": "富士"}``.
            include_root: Also show ``root``, the absolute folder a file was added from.
            mode: ``"hybrid"`` (default: dense and BM25 fused), ``"dense"`` (embeddings
                only) or ``"lexical"`` (BM25 over CJK-aware terms only; see docs/search.md).

        Returns:
            ``(Document, score)`` pairs, best first, in a :class:`SearchResults` (a ``list``
            that notebooks show as a table). The score is the mode's: cosine similarity
            (dense), BM25 (lexical) or the fused score (hybrid); every document's metadata
            also holds ``dense_score``, ``lexical_score`` and ``found_by``.
        """
        self._live()
        return self.searcher.search_with_scores(
            query,
            k,
            filter=filter,
            where_document=where_document,
            include_root=include_root,
            mode=mode,
        )

    def search(
        self,
        query: str,
        k: int = 4,
        *,
        filter: Mapping[str, Any] | None = None,
        where_document: Mapping[str, Any] | None = None,
        include_root: bool = False,
        mode: Literal["hybrid", "dense", "lexical"] | None = None,
    ) -> SearchResults[Document]:
        """Return the ``k`` best chunks for ``query``, best first (hybrid search by default).

        Each document's metadata holds ``score``, ``dense_score``, ``lexical_score``,
        ``found_by``, ``id``, ``source``, ``chunk_index``, the character offsets
        ``start_index``/``end_index`` into its source text, and the source's own metadata
        (see :meth:`search_with_scores` for the arguments). The list is a
        :class:`SearchResults`, shown as a table in notebooks.
        """
        hits = self.search_with_scores(
            query,
            k,
            filter=filter,
            where_document=where_document,
            include_root=include_root,
            mode=mode,
        )
        return SearchResults(doc for doc, _ in hits)

    def max_marginal_relevance_search(
        self,
        query: str,
        k: int = 4,
        *,
        fetch_k: int = 20,
        lambda_mult: float = 0.5,
        filter: Mapping[str, Any] | None = None,
        where_document: Mapping[str, Any] | None = None,
        include_root: bool = False,
        mode: Literal["hybrid", "dense", "lexical"] | None = None,
    ) -> SearchResults[Document]:
        """Return ``k`` chunks that are relevant to ``query`` and different from each other.

        Args:
            query: The question or search text.
            k: How many chunks to return.
            fetch_k: How many nearest chunks to choose from.
            lambda_mult: 1 = pure relevance, 0 = maximal diversity.
            filter: A Chroma metadata filter.
            where_document: A Chroma document filter.
            include_root: Also show ``root``, the absolute folder a file was added from.
            mode: Where the ``fetch_k`` candidates come from (see :meth:`search_with_scores`).

        Returns:
            Documents in MMR selection order, with their scores in metadata.
        """
        self._live()
        return self.searcher.max_marginal_relevance_search(
            query,
            k,
            fetch_k=fetch_k,
            lambda_mult=lambda_mult,
            filter=filter,
            where_document=where_document,
            include_root=include_root,
            mode=mode,
        )

    def as_retriever(self, **kwargs: Any) -> RagRetriever:
        """Return a LangChain retriever over this index.

        Args:
            **kwargs: ``search_type`` (``"similarity"``, ``"mmr"`` or
                ``"similarity_score_threshold"``) and ``search_kwargs`` (``k``, ``filter``,
                ``where_document``, ``include_root``, ``fetch_k``, ``lambda_mult``,
                ``score_threshold``), plus any ``BaseRetriever`` field such as ``tags``.

        Returns:
            A :class:`~langchain_core.retrievers.BaseRetriever`; per-call kwargs
            (``retriever.invoke(q, k=1)``) apply to that call.
        """
        self._live()
        return RagRetriever(searcher=self.searcher, **kwargs)

    @property
    def vectorstore(self) -> VectorStore:
        """This index as a LangChain vector store (a ``Chroma``), for LangChain APIs that need one.

        It shares the collection and embeds with the recorded model. Reads work as usual;
        writes go through this index (``add_texts``/``add_documents`` are split, marked and
        guarded, ``delete(ids)`` deletes by id), and writes that would bypass it (chosen ids,
        ``update_document``, ``reset_collection``, ...) are refused.
        """
        self._live()
        return self._store.vectorstore(self.embeddings, self)

    def evaluate(
        self,
        questions: str | os.PathLike[str] | Iterable[LabelledQuestion | Mapping[str, Any]],
        *,
        k: int | Iterable[int] = (1, 5, 10),
        mode: str | None = None,
        filter: Mapping[str, Any] | None = None,
        batch_size: int = 64,
        progress: bool | None = None,
    ) -> EvaluationResult:
        """Measure this index's retrieval on labelled questions: hit@k, recall@k, MRR, nDCG.

        Labels name answers (strings a relevant chunk contains) or source spans, never chunk
        ids, so one labels file compares indexes built with other models or chunk sizes. See
        docs/evaluation.md for the file format and what each figure means.

        Args:
            questions: A JSONL file (or JSON list) of ``{"question", "answer"}`` or
                ``{"question", "source"[, "start", "end"]}`` records, or an iterable of such
                mappings or of :class:`~ollama_rag.evaluation.LabelledQuestion`.
            k: Cut-offs for ``hit@k`` and ``recall@k``; ``max(k..., 10)`` chunks are retrieved
                per question.
            mode: The search mode to evaluate (None: the default).
            filter: A Chroma metadata filter applied to every search.
            batch_size: Questions embedded per request.
            progress: Show a progress bar; by default for 200 questions or more.

        Returns:
            An :class:`~ollama_rag.evaluation.EvaluationResult`; print it, or compare several
            with ``EvaluationResult.compare([...])``.

        Raises:
            ConfigError: A bad labelled question (the message names the file and line), a
                labelled source the index does not hold, or a bad argument.
        """
        self._live()
        return evaluation.evaluate(
            lambda batch, n: self.searcher.search_many(batch, k=n, mode=mode, filter=filter),
            questions,
            k=k,
            mode=mode,
            batch_size=batch_size,
            progress=progress,
            known_sources=lambda names: self._store.stored_sources(names).keys(),
        )

    # ------------------------------------------------------------------ migrating

    def migrate(
        self,
        model: str,
        *,
        document_prefix: str | None = None,
        query_prefix: str | None = None,
        progress: bool | None = None,
    ) -> IngestReport:
        """Re-embed every stored chunk with another model and switch the index over to it.

        The stored chunk texts are re-embedded into a side store; the index switches to it
        only when every chunk is there, and the old vectors are deleted after the switch. No
        source files are needed. Killing the process at any point leaves the index usable with
        either the old model or the new one, never a mix; calling ``migrate`` again resumes
        without re-embedding finished chunks. Also the fix for a re-pulled model whose digest
        changed: ``index.migrate(index.model)``, or open it with ``on_mismatch="migrate"``.

        Args:
            model: The new embedding model (pulled on every host).
            document_prefix: Document prefix for the new model (default: the registry's).
            query_prefix: Query prefix for the new model (default: the registry's).
            progress: Show a progress bar (default: for 1,000 chunks or more).

        Returns:
            An :class:`IngestReport` with the chunks embedded and reused.
        """
        self._live()
        with self._lock, self._store.doing(f"migrating to {model}"):
            embedder = self._embedder(model)
            try:
                info = embedder.probe()
                manifest = new_manifest(
                    info,
                    document_prefix=document_prefix,
                    query_prefix=query_prefix,
                    base=self._manifest,
                )
            finally:
                embedder.close()
            if manifest.vector_identity == self._manifest.vector_identity:
                return IngestReport()
            embedder = self._embedder(manifest.model, manifest)
            total = self._store.count()
            show = progress if progress is not None else total >= AUTO_PROGRESS_CHUNKS
            try:
                with progress_bar(total, show, unit="chunk", desc=f"migrate to {info.name}") as bar:
                    report = migration.migrate(
                        store=self._store,
                        manifest=manifest,
                        embedder=embedder,
                        splitter_factory=_part_splitter,
                        on_chunks=bar.update,
                    )
            except BaseException:
                embedder.close()
                raise
            self._use(manifest, embedder)
            self._touch()  # a new model: hybrid search is measured again
            return report

    # ------------------------------------------------------------------ async

    async def aadd_texts(
        self,
        texts: Iterable[str],
        metadatas: Sequence[Mapping[str, Any]] | None = None,
        *,
        source: str | None = None,
    ) -> list[str]:
        """:meth:`add_texts` for async callers: the same arguments, results and guarantees.

        The texts are checked at once, on the event loop; reading, splitting and the store's
        writes then run in a worker thread, and the chunks are embedded through Ollama's async
        client on the running loop, with the sync path's batching, per-host concurrency,
        retries and splitting of over-long chunks. Cancelling the awaiting task stops the
        embedding at once; the sources already complete are written (whole) before
        ``CancelledError`` is raised, and calling again resumes without re-embedding them.

        An embedded (``path=``) Chroma holds the GIL for each write call, which pauses the
        loop for that long, whichever thread writes (see docs/api.md, "Async").
        """
        return await self._aadd(plan_texts(texts, metadatas, source=source), replace=True)

    async def aadd_documents(
        self, documents: Iterable[Document], *, replace: bool = True
    ) -> list[str]:
        """:meth:`add_documents` for async callers (see :meth:`aadd_texts`)."""
        return await self._aadd(plan_documents(documents), replace=replace)

    async def _aadd(self, planned: list[SourceDocuments], *, replace: bool) -> list[str]:
        self._live()
        via = self.embeddings.loop_clients()
        ids, sample = await via.run(
            functools.partial(self._ingest, planned, replace=replace, via=via)
        )
        warn_if_english_only(self.model, " ".join(sample), stacklevel=3)
        return ids

    @contextlib.contextmanager
    def _write_lock(self, via: LoopClients | None) -> Iterator[None]:
        """The one-writer lock; an async write waiting for it gives up once cancelled."""
        if via is None:
            with self._lock:
                yield
            return
        while not self._lock.acquire(timeout=LOCK_POLL):
            via.check()
        try:
            yield
        finally:
            self._lock.release()

    async def asearch_with_scores(
        self, query: str, k: int = 4, **options: Unpack[SearchOptions]
    ) -> SearchResults[tuple[Document, float]]:
        """:meth:`search_with_scores` for async callers: the same options and results.

        The query is embedded through Ollama's async client; the store's reads (10-20 ms for a
        hybrid search on an embedded Chroma) run in a worker thread (see docs/api.md, "Async").
        """
        self._live()
        return await self.searcher.asearch_with_scores(query, k, **options)

    async def asearch(
        self, query: str, k: int = 4, **options: Unpack[SearchOptions]
    ) -> SearchResults[Document]:
        """:meth:`search` for async callers (see :meth:`asearch_with_scores`)."""
        return SearchResults(doc for doc, _ in await self.asearch_with_scores(query, k, **options))

    async def amax_marginal_relevance_search(
        self, query: str, k: int = 4, **options: Unpack[MMROptions]
    ) -> SearchResults[Document]:
        """:meth:`max_marginal_relevance_search` for async callers (see :meth:`asearch`)."""
        self._live()
        return await self.searcher.amax_marginal_relevance_search(query, k, **options)
