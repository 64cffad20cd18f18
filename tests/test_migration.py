"""migrate(): re-embed into a new model, switch only when complete, survive being killed."""

from __future__ import annotations

import contextlib
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from ollama_rag import EmbeddingModelMismatchError, OllamaUnavailableError, RagIndex
from ollama_rag.fusion import Calibration
from ollama_rag.storage.docstore import DOCSTORE_FILE
from ollama_rag.testing import HashEmbeddingModel, LocalOllama

pytestmark = pytest.mark.usefixtures("store_kind")

TEXTS = {
    f"doc{i}.md": "".join(
        f"第{i}巻第{j}節では、地域の歴史と文化を説明する。暮らしは季節とともに変わった。"
        for j in range(4)
    )
    for i in range(8)
}


def build(db: Path, server: LocalOllama, model: str = "bge-m3", **kwargs: object) -> int:
    with RagIndex(db, model=model, base_url=server.url, chunk_size=60, **kwargs) as index:  # type: ignore[arg-type]
        for source, text in TEXTS.items():
            index.add_texts([text], source=source)
        return index.count()


def assert_vectors_come_from_the_recorded_model(index: RagIndex, server: LocalOllama) -> None:
    """Every stored vector is exactly what the manifest's model makes of the chunk text."""
    manifest = index.manifest
    spec = server.spec(manifest.model)
    stored = index.vectorstore.get(include=["documents", "embeddings"])
    expected = spec.embed([manifest.document_prefix + d for d in stored["documents"]])
    assert np.asarray(stored["embeddings"]).shape == (len(stored["ids"]), manifest.dimension)
    np.testing.assert_allclose(np.asarray(stored["embeddings"]), expected, atol=1e-4)


def collection_names(db: Path) -> set[str]:
    """The collections in ``db`` (a FAISS side store shows as ``<name>.next``)."""
    if (db / DOCSTORE_FILE).is_file():
        with contextlib.closing(sqlite3.connect(db / DOCSTORE_FILE)) as conn:
            rows = conn.execute("SELECT name, role FROM collections").fetchall()
        return {name + (".next" if role == "side" else "") for name, role in rows}
    import chromadb

    client = chromadb.PersistentClient(path=str(db))
    try:
        return {c.name for c in client.list_collections()}
    finally:
        client.close()


def test_migrate_between_two_models_of_the_same_dimension(
    tmp_path: Path, ollama: LocalOllama
) -> None:
    total = build(tmp_path, ollama)
    with RagIndex(tmp_path, base_url=ollama.url) as index:
        ollama.reset_counters()
        report = index.migrate("mxbai-embed-large")
        assert index.model == "mxbai-embed-large:latest"
        assert index.count() == total
        assert report.chunks_embedded == total
        assert_vectors_come_from_the_recorded_model(index, ollama)
        ollama.reset_counters()
        hit = index.search("第3巻の歴史", k=1)[0]
        assert ollama.request_count("mxbai-embed-large") == 1  # searches use the new model
        assert ollama.request_count("bge-m3") == 0
        assert hit.metadata["source"] in TEXTS
    assert collection_names(tmp_path) == {"default"}  # the old vectors are gone
    with RagIndex(tmp_path, base_url=ollama.url) as again:
        assert again.model == "mxbai-embed-large:latest"
    with pytest.raises(EmbeddingModelMismatchError):
        RagIndex(tmp_path, model="bge-m3", base_url=ollama.url)


def test_migrate_to_another_dimension_applies_the_new_models_prefixes(
    tmp_path: Path, ollama: LocalOllama
) -> None:
    total = build(tmp_path, ollama)
    with RagIndex(tmp_path, base_url=ollama.url) as index:
        ollama.reset_counters()
        index.migrate("nomic-embed-text")
        assert index.manifest.dimension == 768
        assert index.manifest.document_prefix == "search_document: "
        assert index.count() == total
        received = ollama.received("nomic-embed-text")
        documents = [t for t in received if t.startswith("search_document: ")]
        assert len(documents) == total
        # The rest are hybrid search's calibration (pseudo-queries), as queries of the new model.
        assert all(t.startswith("search_query: ") for t in received if t not in documents)
        calibration = Calibration.from_text(index.manifest.fusion)
        assert calibration is not None
        assert len(received) == total + calibration.queries
        ollama.reset_counters()
        index.search("地域の歴史")
        assert ollama.received("nomic-embed-text") == ["search_query: 地域の歴史"]
        assert_vectors_come_from_the_recorded_model(index, ollama)


def test_migrating_to_the_recorded_model_does_nothing(tmp_path: Path, ollama: LocalOllama) -> None:
    build(tmp_path, ollama)
    with RagIndex(tmp_path, base_url=ollama.url) as index:
        ollama.reset_counters()
        report = index.migrate("bge-m3")
    assert report.chunks_embedded == 0
    assert ollama.request_count("bge-m3") == 0


@pytest.mark.reliability
def test_a_failed_migration_keeps_the_old_index_and_resumes(
    tmp_path: Path, fresh_ollama: LocalOllama
) -> None:
    total = build(tmp_path, fresh_ollama, batch_size=4, retries=0)
    with RagIndex(tmp_path, base_url=fresh_ollama.url, batch_size=4, retries=0) as index:
        fresh_ollama.fail_next(3, status="drop")
        with pytest.raises(OllamaUnavailableError):
            index.migrate("mxbai-embed-large")
        assert index.model == "bge-m3:latest"  # still whole and usable with the old model
        assert index.search("歴史", k=1)
        first = len(fresh_ollama.received("mxbai-embed-large"))
        fresh_ollama.reset()
        report = index.migrate("mxbai-embed-large")
        assert index.model == "mxbai-embed-large:latest"
        assert index.count() == total
        assert_vectors_come_from_the_recorded_model(index, fresh_ollama)
    assert report.chunks_skipped > 0  # chunks finished before the failure were kept
    assert report.chunks_embedded < total
    assert first >= 0


def test_a_re_pulled_model_is_detected_and_migrated_on_request(
    tmp_path: Path, fresh_ollama: LocalOllama
) -> None:
    total = build(tmp_path, fresh_ollama)
    # The same tag re-pulled with different weights: a new digest and new vectors.
    fresh_ollama.remove_model("bge-m3")
    fresh_ollama.add_model("bge-m3", HashEmbeddingModel(dimension=1024, seed=99))
    with pytest.raises(EmbeddingModelMismatchError, match="re-pulled") as err:
        RagIndex(tmp_path, base_url=fresh_ollama.url)
    assert "on_mismatch='migrate'" in str(err.value)
    with RagIndex(tmp_path, base_url=fresh_ollama.url, on_mismatch="migrate") as index:
        assert index.manifest.digest == fresh_ollama.digest("bge-m3")
        assert index.count() == total
        assert_vectors_come_from_the_recorded_model(index, fresh_ollama)


def test_migrating_to_a_shorter_context_splits_chunks_instead_of_truncating(
    tmp_path: Path,
) -> None:
    models = {
        "long": HashEmbeddingModel(dimension=64, context_length=8192, seed=1),
        "short": HashEmbeddingModel(dimension=64, context_length=24, seed=2),
    }
    with LocalOllama(models) as server:
        with RagIndex(tmp_path, model="long", base_url=server.url, chunk_size=120) as index:
            index.add_texts([TEXTS["doc1.md"]], source="doc1.md")
            before = index.count()
            index.migrate("short")
            stored = index.vectorstore.get(include=["documents", "metadatas"])
        assert len(stored["ids"]) > before
        spec = server.spec("short:latest")
        assert all(spec.count_tokens(d) <= 24 for d in stored["documents"])
        for text, meta in zip(stored["documents"], stored["metadatas"], strict=True):
            assert TEXTS["doc1.md"][meta["start_index"] : meta["end_index"]] == text


CRASH_SCRIPT = textwrap.dedent(
    """
    import os, signal, sys
    import chromadb.api.client
    from ollama_rag import RagIndex
    from ollama_rag.storage import chroma

    db, url, point = sys.argv[1:4]
    calls = {"rename": 0}
    real_rename = chroma.rename
    real_delete = chromadb.api.client.Client.delete_collection

    def die():
        os.kill(os.getpid(), signal.SIGKILL)

    def rename(collection, name):
        calls["rename"] += 1
        if (point, calls["rename"]) in {("after-complete", 1), ("between-renames", 2)}:
            die()
        real_rename(collection, name)

    def delete_collection(self, name):
        if point == "before-delete" and name.endswith(".retired"):
            die()
        real_delete(self, name)

    chroma.rename = rename
    chromadb.api.client.Client.delete_collection = delete_collection

    # The same points in a FAISS index's switch, which is one transaction: before it, and
    # after its commit (before the old collection's file is removed).
    if os.environ.get("OLLAMA_RAG_STORE") == "faiss":
        from ollama_rag.storage.faiss import FaissStore

        real_switch, real_forget = FaissStore.switch, FaissStore._forget

        def switch(self, side):
            if point == "after-complete":
                die()
            real_switch(self, side)

        def forget(self, uid):
            if point in ("between-renames", "before-delete"):
                die()
            real_forget(self, uid)

        FaissStore.switch, FaissStore._forget = switch, forget
    with RagIndex(db, base_url=url, batch_size=4) as index:
        index.migrate("mxbai-embed-large")
    """
)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("point", "switched"),
    [
        ("during-copy", False),
        ("after-complete", False),
        ("between-renames", True),
        ("before-delete", True),
    ],
)
@pytest.mark.reliability
def test_killed_migration_leaves_one_whole_index_and_resumes(
    tmp_path: Path, fresh_ollama: LocalOllama, point: str, switched: bool
) -> None:
    total = build(tmp_path, fresh_ollama)
    if point == "during-copy":
        fresh_ollama.set_delay(per_input=0.02)
    child = subprocess.Popen(
        [sys.executable, "-c", CRASH_SCRIPT, str(tmp_path), fresh_ollama.url, point],
        stderr=subprocess.PIPE,
        text=True,
    )
    if point == "during-copy":
        deadline = time.monotonic() + 60
        # Half the chunks sent means (with two requests in flight) earlier batches are stored.
        while len(fresh_ollama.received("mxbai-embed-large")) < total // 2:
            assert child.poll() is None, child.stderr.read() if child.stderr else ""
            assert time.monotonic() < deadline
            time.sleep(0.01)
        child.kill()
    child.wait(timeout=120)
    assert child.returncode == -9, child.stderr.read() if child.stderr else ""
    fresh_ollama.reset()

    with RagIndex(tmp_path, base_url=fresh_ollama.url) as index:
        expected = "mxbai-embed-large:latest" if switched else "bge-m3:latest"
        assert index.model == expected  # one model, never a mix
        assert index.count() == total
        assert_vectors_come_from_the_recorded_model(index, fresh_ollama)
        assert index.search("歴史", k=1)
        if not switched:
            fresh_ollama.reset_counters()
            report = index.migrate("mxbai-embed-large")
            assert index.model == "mxbai-embed-large:latest"
            assert report.chunks_skipped > 0  # resumed: finished chunks were not redone
            assert_vectors_come_from_the_recorded_model(index, fresh_ollama)
    assert collection_names(tmp_path) == {"default"}


def test_a_resumed_migration_does_not_bring_back_chunks_deleted_in_between(
    tmp_path: Path, fresh_ollama: LocalOllama
) -> None:
    build(tmp_path, fresh_ollama)
    with RagIndex(tmp_path, base_url=fresh_ollama.url, batch_size=4, retries=0) as index:
        fresh_ollama.fail_next(3, status="drop")
        with pytest.raises(OllamaUnavailableError):
            index.migrate("mxbai-embed-large")
        fresh_ollama.reset()
        index.delete(source="doc0.md")  # the old index changes before the resume
        remaining = index.count()
        index.migrate("mxbai-embed-large")
        sources = {m["source"] for m in index.vectorstore.get(include=["metadatas"])["metadatas"]}
        assert index.count() == remaining
    assert "doc0.md" not in sources


@pytest.mark.filterwarnings("ignore:.*English-only")
def test_changing_prefixes_is_a_migration_too(tmp_path: Path, ollama: LocalOllama) -> None:
    total = build(tmp_path, ollama, model="nomic-embed-text")
    with RagIndex(tmp_path, base_url=ollama.url) as index:
        report = index.migrate("nomic-embed-text", document_prefix="", query_prefix="")
        assert report.chunks_embedded == total
        assert (index.manifest.document_prefix, index.manifest.query_prefix) == ("", "")
        assert_vectors_come_from_the_recorded_model(index, ollama)


def test_migrating_to_a_shorter_context_shrinks_future_chunks(tmp_path: Path) -> None:
    models = {
        "long": HashEmbeddingModel(dimension=32, context_length=8192, seed=1),
        "short": HashEmbeddingModel(dimension=32, context_length=128, seed=2),
    }
    with (
        LocalOllama(models) as server,
        RagIndex(tmp_path, model="long", base_url=server.url) as index,
    ):
        created = index.manifest.created_at
        index.add_texts([TEXTS["doc2.md"]])
        index.migrate("short")
        assert index.manifest.chunk_size < 128
        assert index.manifest.created_at == created
