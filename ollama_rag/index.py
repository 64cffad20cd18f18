"""``RagIndex``: open or create a guarded index, add text, search it, hand out a retriever.

This module only orchestrates: the manifest decides compatibility, ``ollama.py`` talks to Ollama,
``splitting.py`` chunks, ``store.py`` owns the Chroma client and the lock.
"""

from __future__ import annotations

import dataclasses
import html
import json
import logging
import os
import re
import threading
import warnings
import weakref
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, cast

from langchain_core.documents import Document

from ollama_rag import __version__, migration
from ollama_rag.errors import (
    ConfigError,
    DocumentLoadError,
    EmbeddingModelMismatchError,
    IndexClosedError,
    IndexNotFoundError,
    RagIndexError,
)
from ollama_rag.ingest import (
    IngestReport,
    Piece,
    Pipeline,
    StoredSource,
    Unit,
    sha256,
    stored_sources,
)
from ollama_rag.manifest import IndexManifest
from ollama_rag.ollama import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_TIMEOUT,
    ModelInfo,
    OllamaEmbedder,
    canonical_model_name,
    parse_keep_alive,
    probe_hosts,
    resolve_base_urls,
)
from ollama_rag.progress import progress_bar
from ollama_rag.retriever import RagRetriever, check_search
from ollama_rag.splitting import CJKTextSplitter, chunk_settings_for_context, cjk_share
from ollama_rag.store import COLLECTION_CONFIGURATION, WRITE_BATCH, StoreHandle, open_store

if TYPE_CHECKING:
    from chromadb.api import ClientAPI
    from chromadb.api.models.Collection import Collection
    from langchain_chroma import Chroma

__all__ = ["RagIndex"]

_COLLECTION_NAME = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9._-]{1,510})[A-Za-z0-9]$")
# Keys the index writes on every chunk; user metadata may not override them.
RESERVED_KEYS = (
    "chunk_index",
    "start_index",
    "end_index",
    "content_hash",
    "unit_hash",
    "complete_hash",
    "root",
    "split_of",
    "chunk_part",
    "id",
    "score",
)
Metadata = dict[str, Any]


_log = logging.getLogger("ollama_rag")
# Jobs this large get progress bars unless progress=False.
AUTO_PROGRESS_FILES = 20
AUTO_PROGRESS_CHUNKS = 1000
# Above this share of CJK characters, an English-only model gets a warning.
CJK_WARNING_SHARE = 0.3


def _clash(entry: Any, stored: dict[str, StoredSource], seen: dict[str, str]) -> str | None:
    """Why this file would overwrite another file with the same relative path, if it would.

    A file stored from another folder whose file is gone counts as moved, not as a clash.
    """
    first = seen.setdefault(entry.source, entry.root)
    others = [first] if first != entry.root else []
    others += [
        root
        for root in sorted(stored.get(entry.source, StoredSource()).roots - {entry.root})
        if (Path(root) / entry.source).exists()
    ]
    if not others:
        return None
    return (
        f"{entry.root}/{entry.source} has the same source name as {others[0]}/{entry.source}, "
        "and one would replace the other in the index: add their common parent folder "
        "instead, or use a separate collection="
    )


def _stored_updated_at(client: ClientAPI, name: str) -> str:
    """The updated_at recorded in Chroma now (another handle may have written since we read)."""
    fresh = IndexManifest.from_metadata(client.get_collection(name).metadata)
    return fresh.updated_at if fresh is not None else ""


def _vector_identity(manifest: IndexManifest) -> tuple[str, str, int, str, str]:
    """What decides the vectors: equal identities mean equal vectors for equal text."""
    m = manifest
    return (m.model, m.digest, m.dimension, m.document_prefix, m.query_prefix)


def _part_splitter(size: int) -> CJKTextSplitter:
    return CJKTextSplitter(chunk_size=size, chunk_overlap=0)


def _new_manifest(
    info: ModelInfo,
    chunk_size: int,
    chunk_overlap: int,
    document_prefix: str | None,
    query_prefix: str | None,
) -> IndexManifest:
    """A manifest for ``info``; prefixes default to the registry's for known models."""
    from ollama_rag.models import known_model

    known = known_model(info.name)
    return IndexManifest(
        model=info.name,
        digest=info.digest,
        dimension=info.dimension,
        context_length=info.context_length,
        chunk_size=chunk_size,
        chunk_overlap=chunk_overlap,
        document_prefix=document_prefix
        if document_prefix is not None
        else (known.document_prefix if known else ""),
        query_prefix=query_prefix
        if query_prefix is not None
        else (known.query_prefix if known else ""),
        library_version=__version__,
    )


def _release(store: StoreHandle, embedder: OllamaEmbedder | None) -> None:
    if embedder is not None:
        embedder.close()
    store.close()


def _check_metadata(metadata: Mapping[str, Any], where: str) -> Metadata:
    """Chroma accepts only scalars (or non-empty scalar lists); say which key breaks that."""
    clean: Metadata = {}
    for key, value in metadata.items():
        if not isinstance(key, str) or not key:
            msg = f"{where}: metadata keys must be non-empty strings, got {key!r}"
            raise ConfigError(msg)
        if value is None:
            continue
        scalar = (str, int, float, bool)
        ok = isinstance(value, scalar) or (
            isinstance(value, list) and value and all(isinstance(v, scalar) for v in value)
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

    Use as retriever:
        .. code-block:: python

            retriever = index.as_retriever(search_kwargs={"k": 5})
            retriever.invoke("日本で一番高い山は？")

    Args:
        path: Directory of a persistent index (created if missing), or None for in-memory.
        model: Ollama embedding model. Needed to create an index; when opening one it must be
            the recorded model (or None to use it).
        base_url: Ollama URL; defaults to ``OLLAMA_HOST``, then ``http://127.0.0.1:11434``. A
            list of URLs spreads embedding over several Ollama hosts (all must serve the same
            model digest).
        collection: Chroma collection name; one directory can hold several indexes.
        chunk_size: Characters per chunk; by default derived from the model's context.
        chunk_overlap: Characters shared by neighbouring chunks.
        document_prefix: Text put before every document before embedding; by default the
            model's own (e.g. ``"search_document: "`` for nomic-embed-text). Recorded.
        query_prefix: Text put before every query; by default the model's own. Recorded.
        client: An existing chromadb client (e.g. ``chromadb.HttpClient`` for ``chroma run``)
            instead of ``path``.
        pull: Pull the model (with a progress bar) if the server does not have it.
        on_mismatch: ``"error"`` (default) refuses a model that differs from the recorded one;
            ``"migrate"`` re-embeds the index with it instead (see :meth:`migrate`).
        batch_size: Texts per embedding request.
        keep_alive: How long Ollama keeps the model loaded after a request: seconds (negative =
            forever) or a duration such as ``"30m"``; set it so an embedding model and a chat
            model can stay loaded side by side.
        timeout: Seconds per HTTP request to Ollama.
        concurrency: Embedding requests in flight per Ollama host.
        retries: Retries of a request that failed with a connection error or a 5xx answer.
        retry_backoff: Seconds before the first retry; doubled for each further one.

    Raises:
        EmbeddingModelMismatchError: The index was built by another model (name, digest or
            dimension).
        IndexNotFoundError: No index exists and no ``model`` was given.
        IndexLockedError: Another process has the directory open.
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
        base_url: str | Sequence[str] | None = None,
        collection: str = "default",
        chunk_size: int | None = None,
        chunk_overlap: int | None = None,
        document_prefix: str | None = None,
        query_prefix: str | None = None,
        client: ClientAPI | None = None,
        pull: bool = False,
        on_mismatch: Literal["error", "migrate"] = "error",
        batch_size: int = DEFAULT_BATCH_SIZE,
        keep_alive: float | str | None = None,
        timeout: float | None = DEFAULT_TIMEOUT,
        concurrency: int = 2,
        retries: int = 3,
        retry_backoff: float = 0.5,
    ) -> None:
        if not _COLLECTION_NAME.match(collection):
            msg = (
                f"Invalid collection name {collection!r}: use 3-500 characters from "
                "[A-Za-z0-9._-], starting and ending with a letter or digit"
            )
            raise ConfigError(msg)
        if on_mismatch not in ("error", "migrate"):
            msg = f"on_mismatch must be 'error' or 'migrate', got {on_mismatch!r}"
            raise ConfigError(msg)
        self.collection_name = collection
        self.base_urls = resolve_base_urls(base_url)
        self.base_url = self.base_urls[0]
        self._timeout = timeout
        self._embed_options: dict[str, Any] = {
            "batch_size": batch_size,
            "keep_alive": parse_keep_alive(keep_alive),
            "timeout": timeout,
            "concurrency": concurrency,
            "retries": retries,
            "backoff": retry_backoff,
        }
        self._lock = threading.RLock()
        self._closed = False
        self._store: StoreHandle = open_store(path, client)
        self._finalizer = weakref.finalize(self, _release, self._store, None)
        try:
            if pull and model is not None:
                from ollama_rag.pull import ensure_model

                for url in self.base_urls:
                    ensure_model(model, base_url=url, timeout=timeout)
            self._collection, self._manifest, pending = self._open_collection(
                model,
                chunk_size=chunk_size,
                chunk_overlap=chunk_overlap,
                document_prefix=document_prefix,
                query_prefix=query_prefix,
                on_mismatch=on_mismatch,
            )
            self._use(self._collection, self._manifest, self._embedder(self._manifest))
            if pending is not None:
                self.migrate(pending, document_prefix=document_prefix, query_prefix=query_prefix)
        except BaseException:
            self.close()
            raise

    def _embedder(self, manifest: IndexManifest) -> OllamaEmbedder:
        return OllamaEmbedder(
            model=manifest.model,
            base_url=self.base_urls,
            dimension=manifest.dimension,
            document_prefix=manifest.document_prefix,
            query_prefix=manifest.query_prefix,
            **self._embed_options,
        )

    def _use(
        self, collection: Collection, manifest: IndexManifest, embedder: OllamaEmbedder
    ) -> None:
        """Point this object at a collection, its manifest and an embedder for its model."""
        old = getattr(self, "embeddings", None)
        self._collection = collection
        self._manifest = manifest
        self.embeddings = embedder
        self.splitter = CJKTextSplitter(
            chunk_size=manifest.chunk_size, chunk_overlap=manifest.chunk_overlap
        )
        self._finalizer.detach()
        self._finalizer = weakref.finalize(self, _release, self._store, embedder)
        if old is not None and old is not embedder:
            old.close()

    # ------------------------------------------------------------------ opening

    @property
    def path(self) -> str | None:
        """The index directory, or None for in-memory indexes and user-supplied clients."""
        return self._store.path

    def _where(self) -> str:
        place = self.path or "memory"
        return f"{place} (collection {self.collection_name!r})"

    def _open_collection(
        self,
        model: str | None,
        *,
        chunk_size: int | None,
        chunk_overlap: int | None,
        document_prefix: str | None,
        query_prefix: str | None,
        on_mismatch: str,
    ) -> tuple[Collection, IndexManifest, str | None]:
        """Open (verifying) or create the collection.

        Returns:
            The collection, its manifest, and the model to migrate to when ``on_mismatch`` is
            ``"migrate"`` and the recorded model does not match (else None).
        """
        client = self._store.client
        requested = canonical_model_name(model) if model is not None else None
        migration.recover(client, self.collection_name)
        collection = migration.get_collection(client, self.collection_name)

        if collection is not None:
            manifest = IndexManifest.from_metadata(collection.metadata, path=self.path)
            if manifest is None:
                msg = (
                    f"The Chroma collection at {self._where()} was not created by ollama-rag "
                    "and records no embedding model, so it cannot be guarded. Use another "
                    "collection name, e.g. RagIndex(path, model=..., collection='docs')"
                )
                raise RagIndexError(msg, path=self.path)
            self._check_recorded(manifest, chunk_size, chunk_overlap, document_prefix, query_prefix)
            try:
                if requested is not None:
                    manifest.check_model_name(requested, path=self.path)
                info = probe_hosts(manifest.model, self.base_urls, timeout=self._timeout)
                manifest.check_compatible(info, path=self.path)
            except EmbeddingModelMismatchError:
                if on_mismatch != "migrate":
                    raise
                return collection, manifest, model or manifest.model
            return collection, manifest, None

        if requested is None:
            msg = (
                f"No index at {self._where()}. To create one, name the embedding model: "
                f"RagIndex({self.path!r}, model='bge-m3')"
            )
            raise IndexNotFoundError(msg, path=self.path)
        info = probe_hosts(model or requested, self.base_urls, timeout=self._timeout)
        size, overlap = chunk_settings_for_context(info.context_length)
        size = chunk_size if chunk_size is not None else size
        overlap = chunk_overlap if chunk_overlap is not None else min(overlap, size // 5)
        CJKTextSplitter(chunk_size=size, chunk_overlap=overlap)  # validates the pair
        manifest = _new_manifest(info, size, overlap, document_prefix, query_prefix)
        created = client.get_or_create_collection(
            self.collection_name,
            metadata=manifest.to_metadata(),
            configuration=COLLECTION_CONFIGURATION,
            embedding_function=None,
        )
        # Another client (a Chroma server shared by several processes) may have won the race
        # to create it; its manifest is then the truth and must match ours.
        stored = IndexManifest.from_metadata(created.metadata, path=self.path)
        if stored is not None and stored != manifest:
            stored.check_compatible(info, path=self.path)
            manifest = stored
        return created, manifest, None

    def migrate(
        self,
        model: str,
        *,
        document_prefix: str | None = None,
        query_prefix: str | None = None,
        progress: bool | None = None,
    ) -> IngestReport:
        """Re-embed every stored chunk with another model and switch the index over to it.

        The stored chunk texts are re-embedded into a side collection; the index switches to it
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
        with self._lock:
            source = self._live()
            info = probe_hosts(model, self.base_urls, timeout=self._timeout)
            old = self._manifest
            # A shorter context than the old model's needs smaller chunks from now on.
            size, overlap = chunk_settings_for_context(info.context_length)
            if size >= old.chunk_size:
                size, overlap = old.chunk_size, old.chunk_overlap
            manifest = dataclasses.replace(
                _new_manifest(info, size, overlap, document_prefix, query_prefix),
                created_at=old.created_at,
            )
            if _vector_identity(manifest) == _vector_identity(old):
                return IngestReport()
            embedder = self._embedder(manifest)
            total = source.count()
            show = progress if progress is not None else total >= AUTO_PROGRESS_CHUNKS
            try:
                with progress_bar(total, show, unit="chunk", desc=f"migrate to {info.name}") as bar:
                    switched, report = migration.migrate_collection(
                        client=self._store.client,
                        name=self.collection_name,
                        source=source,
                        source_version=_stored_updated_at(self._store.client, source.name),
                        manifest=manifest,
                        embedder=embedder,
                        splitter_factory=_part_splitter,
                        write_batch=min(WRITE_BATCH, self._store.client.get_max_batch_size()),
                        on_chunks=bar.update,
                    )
            except BaseException:
                embedder.close()
                raise
            self._use(switched, manifest, embedder)
            return report

    def _check_recorded(
        self,
        manifest: IndexManifest,
        chunk_size: int | None,
        chunk_overlap: int | None,
        document_prefix: str | None,
        query_prefix: str | None,
    ) -> None:
        """Refuse settings that differ from the recorded ones: new text would not match."""
        for name, given, recorded in (
            ("chunk_size", chunk_size, manifest.chunk_size),
            ("chunk_overlap", chunk_overlap, manifest.chunk_overlap),
            ("document_prefix", document_prefix, manifest.document_prefix),
            ("query_prefix", query_prefix, manifest.query_prefix),
        ):
            if given is not None and given != recorded:
                msg = (
                    f"The index at {self._where()} was built with {name}={recorded!r}; "
                    f"{name}={given!r} would not match the stored chunks and vectors. "
                    f"Omit {name} to use the recorded value, or build a new collection"
                )
                raise ConfigError(msg)

    # ------------------------------------------------------------------ state

    @property
    def manifest(self) -> IndexManifest:
        """The index's :class:`IndexManifest` (model, digest, dimension, splitter, times)."""
        return self._manifest

    @property
    def model(self) -> str:
        """The embedding model recorded in the manifest."""
        return self._manifest.model

    def _live(self) -> Collection:
        if self._closed:
            msg = f"The index at {self._where()} is closed; open it again with RagIndex(...)"
            raise IndexClosedError(msg, path=self.path)
        return self._collection

    def count(self) -> int:
        """Return the number of stored chunks."""
        return int(self._live().count())

    def close(self) -> None:
        """Release the Chroma client and the directory lock. Safe to call twice.

        Waits for a write running in another thread to finish first, so the lock is never
        released while this process is still writing.
        """
        self._closed = True
        with self._lock:
            self._finalizer()

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
        m = self._manifest
        rows = [
            ("path", self.path or "in-memory"),
            ("collection", self.collection_name),
            ("model", m.model_label),
            ("context", f"{m.context_length} tokens"),
            ("chunking", f"{m.chunk_size} chars, overlap {m.chunk_overlap}"),
            ("chunks", "closed" if self._closed else str(self.count())),
            ("updated", m.updated_at),
        ]
        body = "".join(
            f"<tr><th style='text-align:left'>{html.escape(k)}</th>"
            f"<td style='text-align:left'>{html.escape(str(v))}</td></tr>"
            for k, v in rows
        )
        return f"<table><caption>RagIndex</caption>{body}</table>"

    # ------------------------------------------------------------------ writing

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
        if isinstance(texts, str):
            msg = "add_texts() takes a list of texts; wrap a single text: add_texts([text])"
            raise ConfigError(msg)
        text_list = list(texts)
        if metadatas is not None and len(metadatas) != len(text_list):
            msg = f"Got {len(text_list)} texts but {len(metadatas)} metadatas; pass one per text"
            raise ConfigError(msg)
        docs = []
        for i, text in enumerate(text_list):
            if not isinstance(text, str):
                msg = f"Text {i} is a {type(text).__name__}, not a str; decode or convert it first"
                raise ConfigError(msg)
            meta = dict(metadatas[i]) if metadatas is not None else {}
            if source is not None:
                meta["source"] = source
            docs.append(Document(page_content=text, metadata=meta))
        return self.add_documents(docs)

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
        units = self._text_units(list(documents), replace=replace)
        with self._lock:
            pipeline = self._run(units)
        self._check_language(" ".join(p.text for u in units for p in u.pieces[:4]))
        return [cid for unit in units for cid in pipeline.ids.get(unit.source, [])]

    def _text_units(self, documents: list[Document], *, replace: bool = True) -> list[Unit]:
        grouped: dict[str, list[tuple[Document, Metadata]]] = {}
        for n, doc in enumerate(documents):
            if not isinstance(doc, Document):
                msg = f"Item {n} is a {type(doc).__name__}, not a langchain Document"
                raise ConfigError(msg)
            user = _check_metadata(doc.metadata, f"Document {n}")
            raw_source = user.get("source")
            source = str(raw_source) if raw_source else f"text:{sha256(doc.page_content)[:16]}"
            if not doc.page_content.strip():
                warnings.warn(
                    f"Document {n} (source {source!r}) is empty and was skipped",
                    UserWarning,
                    stacklevel=4,
                )
                continue
            if reserved := sorted(set(user) & set(RESERVED_KEYS)):
                msg = (
                    f"Document {n}: metadata {reserved} is reserved by ollama-rag (it writes "
                    "these keys itself); rename it, e.g. 'my_chunk_index'"
                )
                raise ConfigError(msg)
            extra = {k: v for k, v in user.items() if k != "source"}
            grouped.setdefault(source, []).append((doc, extra))
        units = []
        for source, docs in grouped.items():
            pieces = [
                Piece(text, start, start + len(text), extra)
                for doc, extra in docs
                for start, text in self.splitter.split_text_with_offsets(doc.page_content)
            ]
            fingerprint = json.dumps(
                [[doc.page_content, extra] for doc, extra in docs], sort_keys=True, default=str
            )
            unit = Unit(source=source, unit_hash=sha256(fingerprint), pieces=pieces)
            unit.replace = replace
            units.append(unit)
        return units

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

        Returns:
            An :class:`IngestReport` of files added/updated/unchanged/deleted/failed, chunks
            embedded and reused, requests made and time taken.
        """
        from ollama_rag import loading

        entries = list(loading.discover(paths, glob=glob, exclude=exclude))
        report = IngestReport()
        options: dict[str, Any] = {"encoding": encoding, "normalize": normalize}
        if max_file_bytes is not None:
            options["max_file_bytes"] = max_file_bytes
        show = progress if progress is not None else len(entries) >= AUTO_PROGRESS_FILES
        with self._lock, progress_bar(len(entries), show, unit="file", chunks=True) as bar:
            collection = self._live()
            batch = min(WRITE_BATCH, self._store.client.get_max_batch_size())
            stored = stored_sources(collection, [e.source for e in entries], batch)
            seen: dict[str, str] = {}

            sample: list[str] = []

            def units() -> Iterator[Unit]:
                for entry in entries:
                    bar.update(1)
                    unit = self._file_unit(entry, stored, seen, report, options)
                    if unit is not None:
                        sample.extend(p.text for p in unit.pieces[:2] if len(sample) < 200)
                        yield unit

            written = self._run(units(), report=report, on_chunks=bar.add_chunks, collect_ids=False)
            if delete_missing:
                self._delete_missing(collection, paths, {e.source for e in entries}, report)
            if report.files_deleted and not written.units_written:
                self._touch(collection)
        for source, reason in report.failed:
            _log.warning("failed: %s: %s", source, reason)
        self._check_language(" ".join(sample))
        return report

    def sync(
        self, folder: str | os.PathLike[str] | Iterable[str | os.PathLike[str]], **kwargs: Any
    ) -> IngestReport:
        """Make the index mirror a folder: ``add_files(folder, delete_missing=True, ...)``."""
        return self.add_files(folder, delete_missing=True, **kwargs)

    def _file_unit(
        self,
        entry: Any,
        stored: dict[str, StoredSource],
        seen: dict[str, str],
        report: IngestReport,
        options: dict[str, Any],
    ) -> Unit | None:
        from ollama_rag import loading

        if (clash := _clash(entry, stored, seen)) is not None:
            report.failed.append((entry.source, clash))
            report.files_failed += 1
            return None

        limit: int = options.get("max_file_bytes") or loading.DEFAULT_MAX_FILE_BYTES
        try:
            size = entry.path.stat().st_size
            if size > limit:  # refused before reading, so a huge file costs no memory
                why = f"too large ({size} bytes > {limit}); raise max_file_bytes= to index it"
                report.skipped.append((entry.source, why))
                return None
            data = loading.read_bytes(entry, max_file_bytes=limit)
        except (OSError, DocumentLoadError) as err:
            report.failed.append((entry.source, str(err)))
            report.files_failed += 1
            return None
        # The load options are part of the identity: re-running with encoding= fixes a file.
        digest = sha256(
            f"{loading.file_hash(data)}\x1f{options['encoding']}\x1f{options['normalize']}"
        )
        known = stored.get(entry.source, StoredSource())
        if digest in known.hashes and entry.root in known.roots:
            report.files_unchanged += 1
            return None
        reason = loading.classify(entry, data, max_file_bytes=limit)
        if reason is not None:
            report.skipped.append((entry.source, reason))
            return None
        try:
            doc = loading.read_document(entry, data, **options)
        except DocumentLoadError as err:
            report.failed.append((entry.source, str(err)))
            report.files_failed += 1
            return None
        pieces = [
            Piece(text, start, start + len(text), loading.span_metadata(doc.spans, start))
            for start, text in self.splitter.split_text_with_offsets(doc.text)
        ]
        metadata = {**doc.metadata, "root": entry.root}
        return Unit(source=entry.source, unit_hash=digest, pieces=pieces, metadata=metadata)

    def _delete_missing(
        self,
        collection: Collection,
        paths: str | os.PathLike[str] | Iterable[str | os.PathLike[str]],
        present: set[str],
        report: IngestReport,
    ) -> None:
        """Delete sources added earlier from these folders whose files are gone."""
        items = [paths] if isinstance(paths, (str, os.PathLike)) else list(paths)
        roots = [Path(p).expanduser().resolve() for p in items]
        for root in (r.as_posix() for r in roots if r.is_dir()):
            where = {"$and": [{"root": root}, {"chunk_index": 0}]}
            got = collection.get(where=cast(Any, where), include=cast(Any, ["metadatas"]))
            gone = {str(m["source"]) for m in got["metadatas"] or [] if m} - present
            for source in sorted(gone):
                ids = collection.get(where={"source": source}, include=[])["ids"]
                for start in range(0, len(ids), WRITE_BATCH):
                    collection.delete(ids=ids[start : start + WRITE_BATCH])
                report.files_deleted += 1

    def _check_language(self, sample: str) -> None:
        """Warn when an English-only model is fed mostly CJK text (it embeds it poorly)."""
        from ollama_rag.models import is_english_only, recommended_model

        share = cjk_share(sample[:20000])
        if share >= CJK_WARNING_SHARE and is_english_only(self.model):
            better = recommended_model("ja")
            warnings.warn(
                f"{self.model} is an English-only embedding model, but {share:.0%} of this text "
                f"is Chinese, Japanese or Korean, which it embeds poorly. Use a multilingual "
                f'model: run "ollama pull {better}", then index.migrate("{better}")',
                UserWarning,
                stacklevel=3,
            )

    def _run(
        self,
        units: Iterable[Unit],
        *,
        report: IngestReport | None = None,
        on_chunks: Callable[[int], None] | None = None,
        collect_ids: bool = True,
    ) -> Pipeline:
        collection = self._live()
        pipeline = Pipeline(
            collection=collection,
            embedder=self.embeddings,
            splitter_factory=_part_splitter,
            write_batch=min(WRITE_BATCH, self._store.client.get_max_batch_size()),
            on_chunks=on_chunks,
            report=report,
            collect_ids=collect_ids,
        )
        try:
            pipeline.run(units)
        finally:
            if pipeline.units_written:
                self._touch(collection)
        return pipeline

    def _touch(self, collection: Collection) -> None:
        self._manifest = self._manifest.touched()
        # modify() replaces the whole metadata dict, so the full manifest is always written.
        collection.modify(metadata=self._manifest.to_metadata())

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
        with self._lock:
            collection = self._live()
            if source is not None:
                targets = collection.get(where={"source": source}, include=[])["ids"]
            else:
                wanted = list(ids or [])
                targets = []
                for start in range(0, len(wanted), WRITE_BATCH):
                    part = wanted[start : start + WRITE_BATCH]
                    targets.extend(collection.get(ids=part, include=[])["ids"])
            for start in range(0, len(targets), WRITE_BATCH):
                collection.delete(ids=targets[start : start + WRITE_BATCH])
            if targets:
                self._touch(collection)
        return len(targets)

    # ------------------------------------------------------------------ searching

    def _query(
        self,
        query: str,
        n: int,
        *,
        filter: Mapping[str, Any] | None,
        where_document: Mapping[str, Any] | None,
        with_embeddings: bool = False,
    ) -> tuple[list[float], list[tuple[Document, float]], list[list[float]]]:
        if not isinstance(query, str) or not query.strip():
            msg = "search() needs a non-empty query string"
            raise ConfigError(msg)
        if not isinstance(n, int) or isinstance(n, bool) or n < 1:
            msg = f"k must be a whole number of at least 1, got {n!r}"
            raise ConfigError(msg)
        collection = self._live()
        vector = self.embeddings.embed_query(query)
        available = collection.count()
        if available == 0:
            return vector, [], []
        include = ["documents", "metadatas", "distances"]
        if with_embeddings:
            include.append("embeddings")
        res = collection.query(
            query_embeddings=cast(Any, [vector]),
            n_results=min(n, available),
            where=cast(Any, dict(filter)) if filter else None,
            where_document=cast(Any, dict(where_document)) if where_document else None,
            include=include,  # type: ignore[arg-type]
        )
        hits: list[tuple[Document, float]] = []
        docs = (res["documents"] or [[]])[0]
        metas = (res["metadatas"] or [[]])[0]
        dists = (res["distances"] or [[]])[0]
        for cid, text, meta, dist in zip(res["ids"][0], docs, metas, dists, strict=True):
            score = 1.0 - float(dist)  # cosine space: distance = 1 - cosine similarity
            metadata = {**(meta or {}), "id": cid, "score": score}
            hits.append((Document(page_content=text or "", metadata=metadata, id=cid), score))
        found = res["embeddings"] if with_embeddings else None
        vectors = [list(map(float, v)) for v in found[0]] if found is not None else []
        return vector, hits, vectors

    def search_with_scores(
        self,
        query: str,
        k: int = 4,
        *,
        filter: Mapping[str, Any] | None = None,
        where_document: Mapping[str, Any] | None = None,
    ) -> list[tuple[Document, float]]:
        """Return the ``k`` chunks most similar to ``query`` with cosine similarity scores.

        Args:
            query: The question or search text.
            k: How many chunks to return.
            filter: A Chroma metadata filter, e.g. ``{"source": "a.md"}``.
            where_document: A Chroma document filter, e.g. ``{"$contains": "富士"}``.

        Returns:
            ``(Document, score)`` pairs, best first; score is cosine similarity (1 = identical).
        """
        _, hits, _ = self._query(query, k, filter=filter, where_document=where_document)
        return hits

    def search(
        self,
        query: str,
        k: int = 4,
        *,
        filter: Mapping[str, Any] | None = None,
        where_document: Mapping[str, Any] | None = None,
    ) -> list[Document]:
        """Return the ``k`` chunks most similar to ``query``, best first.

        Each document's metadata holds ``score``, ``id``, ``source``, ``chunk_index`` and the
        character offsets ``start_index``/``end_index`` into its source text.
        """
        return [
            d
            for d, _ in self.search_with_scores(
                query, k, filter=filter, where_document=where_document
            )
        ]

    def max_marginal_relevance_search(
        self,
        query: str,
        k: int = 4,
        *,
        fetch_k: int = 20,
        lambda_mult: float = 0.5,
        filter: Mapping[str, Any] | None = None,
        where_document: Mapping[str, Any] | None = None,
    ) -> list[Document]:
        """Return ``k`` chunks that are relevant to ``query`` and different from each other.

        Args:
            query: The question or search text.
            k: How many chunks to return.
            fetch_k: How many nearest chunks to choose from.
            lambda_mult: 1 = pure relevance, 0 = maximal diversity.
            filter: A Chroma metadata filter.
            where_document: A Chroma document filter.

        Returns:
            Documents in MMR selection order, with ``score`` (cosine similarity) in metadata.
        """
        import numpy as np
        from langchain_core.vectorstores.utils import maximal_marginal_relevance

        if not isinstance(k, int) or isinstance(k, bool) or k < 1:
            msg = f"k must be a whole number of at least 1, got {k!r}"
            raise ConfigError(msg)
        if not 0.0 <= lambda_mult <= 1.0:
            msg = f"lambda_mult must be between 0 and 1, got {lambda_mult}"
            raise ConfigError(msg)
        vector, hits, vectors = self._query(
            query,
            max(fetch_k, k),
            filter=filter,
            where_document=where_document,
            with_embeddings=True,
        )
        if not hits:
            return []
        order = maximal_marginal_relevance(
            np.array(vector), vectors, k=min(k, len(hits)), lambda_mult=lambda_mult
        )
        return [hits[i][0] for i in order]

    def as_retriever(self, **kwargs: Any) -> RagRetriever:
        """Return a LangChain retriever over this index.

        Args:
            **kwargs: ``search_type`` (``"similarity"``, ``"mmr"`` or
                ``"similarity_score_threshold"``) and ``search_kwargs`` (``k``, ``filter``,
                ``where_document``, ``fetch_k``, ``lambda_mult``, ``score_threshold``), plus any
                ``BaseRetriever`` field such as ``tags``.

        Returns:
            A :class:`~langchain_core.retrievers.BaseRetriever`.
        """
        search_type = kwargs.pop("search_type", "similarity")
        kwargs["search_kwargs"] = dict(kwargs.get("search_kwargs") or {})
        check_search(search_type, kwargs["search_kwargs"])
        return RagRetriever(index=self, search_type=search_type, **kwargs)

    @property
    def vectorstore(self) -> Chroma:
        """This index as a LangChain ``Chroma`` vector store, for LangChain APIs that need one.

        It shares the collection and embeds with the recorded model, so it cannot mix models;
        it does not chunk or deduplicate, so prefer :meth:`add_texts` for writing.
        """
        from langchain_chroma import Chroma

        self._live()
        return Chroma(
            client=self._store.client,
            collection_name=self.collection_name,
            embedding_function=self.embeddings,
            create_collection_if_not_exists=False,
        )
