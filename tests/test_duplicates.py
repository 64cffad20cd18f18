"""Repeated text does not blind the index, and every copy of it is still stored and found.

A file of one character, a divider, a sentence or a paragraph repeated hundreds of times splits
into as many identical chunks, and a folder's boilerplate repeats one header and footer in every
file. With every copy in Chroma's HNSW graph, search finds nothing else (the control test below).
``ChromaStore`` keeps at most ``GRAPH_COPIES`` rows of a text in the graph and the others in a
companion collection: recall of unrelated passages stays what it is without the repetition, and
every row is still counted, found by a filtered search, deleted, promoted into the graph when its
text's graph rows go, migrated, and seen by the LangChain view.

Real LocalOllama (the hash model: distinct texts get distinct vectors, equal texts equal ones) and
real embedded Chroma under ``tmp_path``.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from fake_store import MemoryStore
from langchain_core.documents import Document

import ollama_rag.storage.chroma as chroma
from ollama_rag import RagIndex
from ollama_rag.storage import ChromaStore
from ollama_rag.storage.chroma import GRAPH_COPIES, REBALANCE, read_collections
from ollama_rag.testing import LocalOllama

CHUNK = 80
PASSAGES = 30
COPIES = 300
_KANJI = (
    "日月火水木金土山川田人口目耳手足力心天気雨雪風花草竹米肉魚鳥犬馬牛車電話学校先生本文字名前"
    "年時分半午後朝昼夜春夏秋冬東西南北左右上下中外内大小長高安新古多少早強弱明暗白黒赤青海空石"
    "糸音楽歌語読書話聞見行来出入立休食飲買売作使"
)
HEADER = "Copyright (c) 2024 Example Corp. Licensed under the Apache License 2.0."
FOOTER = "―― 本資料の無断転載を禁じます。お問い合わせは総務部まで。――"

# One file, COPIES identical chunks of CHUNK characters at most: each shape as a user's file has it.
SHAPES: dict[str, Callable[[int], str]] = {
    "one character": lambda n: "あ" * (CHUNK * n),
    "divider line": lambda n: ("-" * 60 + "\n") * n,
    "repeated sentence": lambda n: "同じ文がここで何度も繰り返されます。" * (4 * n),
    "repeated paragraph": lambda n: (
        "この段落は毎回同じ内容で、文書の区切りごとに現れます。改行の後に同じ段落がまた続きます。\n\n"
        * n
    ),
}


def passage(i: int) -> str:
    """A text unrelated to every other (random characters: shared bigrams are rare)."""
    r = random.Random(i)
    return "".join(r.choice(_KANJI) for _ in range(60)) + "。"


def open_index(path: Path, server: LocalOllama, **kwargs: Any) -> RagIndex:
    return RagIndex(path, base_url=server.url, chunk_size=CHUNK, chunk_overlap=0, **kwargs)


def recall(index: RagIndex, texts: dict[str, str], k: int = 3) -> float:
    """How many texts a query (their first half) finds among the top ``k``, over all of them."""
    found = 0
    for source, text in texts.items():
        hits = index.search(text[:30], k=k, mode="dense")
        found += any(hit.metadata["source"] == source for hit in hits)
    return found / len(texts)


def graph_copies(store: ChromaStore) -> Counter[str]:
    """Rows per text in the HNSW graph."""
    got = store.collection.get(include=["metadatas"])
    return Counter(str(m["content_hash"]) for m in got["metadatas"] or [])


def copy_ids(store: ChromaStore) -> set[str]:
    copies = store._copies()
    return set(copies.get(include=[])["ids"]) if copies is not None else set()


def assert_consistent(store: ChromaStore) -> None:
    """At most GRAPH_COPIES rows of a text in the graph, copies only of full texts, no id twice."""
    held = graph_copies(store)
    assert max(held.values(), default=0) <= GRAPH_COPIES
    copies = store._copies()
    if copies is None:
        return
    got = copies.get(include=["metadatas"])
    for meta in got["metadatas"] or []:
        assert held[str(meta["content_hash"])] == GRAPH_COPIES
    assert not set(got["ids"]) & set(store.collection.get(include=[])["ids"])
    assert REBALANCE not in (copies.metadata or {})


def unrelated() -> dict[str, str]:
    return {f"p{i}.txt": passage(i) for i in range(PASSAGES)}


def add_by_source(index: RagIndex, texts: dict[str, str]) -> dict[str, str]:
    index.add_documents([Document(text, metadata={"source": s}) for s, text in texts.items()])
    return texts


def add_unrelated(index: RagIndex) -> dict[str, str]:
    return add_by_source(index, unrelated())


# ---------------------------------------------------------------- one file, repeated


@pytest.mark.parametrize("shape", list(SHAPES))
def test_one_file_of_repetition_leaves_the_other_texts_findable(
    tmp_path: Path, ollama: LocalOllama, shape: str
) -> None:
    text = SHAPES[shape](COPIES)
    with open_index(tmp_path, ollama, model="bge-m3") as index:
        texts = add_unrelated(index)
        before = recall(index, texts)
        ids = index.add_texts([text], source="flood.txt")
        chunks = index.vectorstore.get(where={"source": "flood.txt"})["documents"]
        repeated, n = Counter(chunks).most_common(1)[0]

        assert before == 1.0
        assert recall(index, texts) == before
        assert n >= COPIES - 1  # the shape really is COPIES identical chunks
        assert index.count() == PASSAGES + len(ids)
        assert_consistent(index._store.vectors)
        # Every copy is still there for a filtered search, scored as the text it is.
        hits = index.search_with_scores(
            repeated, k=len(ids), filter={"source": "flood.txt"}, mode="dense"
        )
        assert sorted(doc.id for doc, _ in hits) == sorted(ids)
        assert [round(s, 4) for doc, s in hits if doc.page_content == repeated] == [1.0] * n
        # Without a filter a search sees more than the graph's copies when asked for them.
        top = index.search(repeated, k=2 * GRAPH_COPIES, mode="dense")
        assert [doc.page_content for doc in top] == [repeated] * (2 * GRAPH_COPIES)


def test_without_the_cap_repetition_blinds_the_graph(
    tmp_path: Path, ollama: LocalOllama, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The failure the cap prevents: every copy in the graph, and search finds little else.
    monkeypatch.setattr(chroma, "GRAPH_COPIES", 10**9)
    with open_index(tmp_path, ollama, model="bge-m3") as index:
        texts = add_unrelated(index)
        index.add_texts([SHAPES["divider line"](COPIES)], source="flood.txt")
        assert index._store.vectors._copies() is None
        assert recall(index, texts) <= 0.5


# ---------------------------------------------------------------- many files, one boilerplate


def write_folder(folder: Path, files: int, *, boilerplate: bool = True) -> dict[str, str]:
    """``files`` files of a unique body, with the same header and footer around it."""
    folder.mkdir(parents=True, exist_ok=True)
    bodies = {}
    for i in range(files):
        body = passage(1000 + i)
        text = f"{HEADER}\n\n{body}\n\n{FOOTER}\n" if boilerplate else body
        (folder / f"doc{i:03d}.txt").write_text(text, encoding="utf-8")
        bodies[f"doc{i:03d}.txt"] = body
    return bodies


@pytest.mark.slow
def test_boilerplate_in_every_file_of_a_folder_keeps_recall(
    tmp_path: Path, ollama: LocalOllama
) -> None:
    bodies = write_folder(tmp_path / "docs", 300)
    sample = dict(list(bodies.items())[::5])  # 60 queries: a search costs ~10 ms
    with open_index(tmp_path / "plain", ollama, model="bge-m3") as plain:
        add_by_source(plain, bodies)
        baseline = recall(plain, sample)
    with open_index(tmp_path / "db", ollama, model="bge-m3") as index:
        index.add_files(tmp_path / "docs", progress=False)
        store = index._store.vectors

        assert baseline == 1.0
        assert recall(index, sample) == baseline
        assert index.count() == 3 * 300
        assert_consistent(store)
        held = graph_copies(store)
        assert sorted(held.values())[-2:] == [GRAPH_COPIES, GRAPH_COPIES]  # header, footer
        assert len(copy_ids(store)) == 2 * (300 - GRAPH_COPIES)
        # A file whose header is among the copies: found by a filter, scored like the graph's.
        (header_score,) = {
            round(s, 4) for _, s in index.search_with_scores(HEADER, k=4, mode="dense")
        }
        in_copies = store._copies().get(where={"chunk_index": 0}, limit=1)  # type: ignore[union-attr]
        source = in_copies["metadatas"][0]["source"]
        hits = index.search_with_scores(HEADER, k=3, filter={"source": source}, mode="dense")
        assert (hits[0][0].page_content, round(hits[0][1], 4)) == (HEADER, header_score)
        assert {d.metadata["source"] for d, _ in hits} == {source}
        assert len(hits) == 3  # header, body, footer: every chunk of the file
        by_content = index.search(
            "Apache", k=5, where_document={"$contains": "Apache"}, mode="dense"
        )
        assert len(by_content) == 5
        assert {d.page_content for d in by_content} == {HEADER}


def test_every_copy_is_found_with_its_own_source_and_offsets(
    tmp_path: Path, ollama: LocalOllama
) -> None:
    write_folder(tmp_path / "docs", 30)
    with open_index(tmp_path / "db", ollama, model="bge-m3") as index:
        index.add_files(tmp_path / "docs", progress=False)
        for i in range(30):
            source = f"doc{i:03d}.txt"
            text = (tmp_path / "docs" / source).read_text(encoding="utf-8")
            hits = index.search(FOOTER, k=1, filter={"source": source}, mode="dense")
            assert hits[0].page_content == FOOTER
            start, end = hits[0].metadata["start_index"], hits[0].metadata["end_index"]
            assert text[start:end] == FOOTER


# ---------------------------------------------------------------- deleting, replacing, syncing


def graph_sources_of(store: ChromaStore, text: str) -> list[str]:
    got = store.collection.get(where_document={"$contains": text}, include=["metadatas"])
    return sorted({str(m["source"]) for m in got["metadatas"] or []})


def test_copies_take_the_place_of_deleted_graph_rows(tmp_path: Path, ollama: LocalOllama) -> None:
    write_folder(tmp_path / "docs", 20)
    with open_index(tmp_path / "db", ollama, model="bge-m3") as index:
        index.add_files(tmp_path / "docs", progress=False)
        store = index._store.vectors
        holders = graph_sources_of(store, HEADER)
        assert len(holders) == GRAPH_COPIES

        deleted = sum(index.delete(source=s) for s in holders)

        assert deleted == 3 * GRAPH_COPIES
        assert index.count() == 3 * (20 - GRAPH_COPIES)
        assert_consistent(store)
        assert len(graph_sources_of(store, HEADER)) == GRAPH_COPIES
        assert not set(graph_sources_of(store, HEADER)) & set(holders)
        assert index.search(HEADER, k=1, mode="dense")[0].page_content == HEADER
        # Deleting by id works the same.
        ids = [d.id for d in index.search(FOOTER, k=GRAPH_COPIES, mode="dense")]
        assert index.delete(ids=[i for i in ids if i is not None]) == GRAPH_COPIES
        assert index.count() == 3 * (20 - GRAPH_COPIES) - GRAPH_COPIES
        assert_consistent(store)
        assert index.search(FOOTER, k=1, mode="dense")[0].page_content == FOOTER


def test_replacing_and_syncing_files_keeps_the_rest_findable(
    tmp_path: Path, ollama: LocalOllama
) -> None:
    docs = tmp_path / "docs"
    bodies = write_folder(docs, 24)
    with open_index(tmp_path / "db", ollama, model="bge-m3") as index:
        index.add_files(docs, progress=False)
        store = index._store.vectors
        holders = graph_sources_of(store, HEADER)
        # Rewritten without their boilerplate: their graph rows of it are stale and go.
        for source in holders[:4]:
            (docs / source).write_text(bodies[source], encoding="utf-8")
        for source in holders[4:]:
            (docs / source).unlink()
        report = index.sync(docs, progress=False)

        assert (report.files_updated, report.files_deleted) == (4, GRAPH_COPIES - 4)
        remaining = 24 - (GRAPH_COPIES - 4)
        assert index.count() == 3 * remaining - 2 * 4
        assert_consistent(store)
        assert len(graph_sources_of(store, HEADER)) == GRAPH_COPIES
        assert recall(index, {s: b for s, b in bodies.items() if (docs / s).exists()}) == 1.0
        # Re-running changes nothing and embeds nothing.
        ollama.reset_counters()
        again = index.sync(docs, progress=False)
        assert again.files_unchanged == remaining
        assert ollama.request_count("bge-m3") == 0


def test_an_interrupted_delete_is_finished_on_the_next_open(
    tmp_path: Path, ollama: LocalOllama, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_folder(tmp_path / "docs", 20)
    with open_index(tmp_path, ollama, model="bge-m3") as index:
        index.add_files(tmp_path / "docs", progress=False)
        total = index.count()
        holders = graph_sources_of(index._store.vectors, HEADER)
        copies = index._store.vectors._copies()
        assert copies is not None
        real_delete = copies.delete

        def crash(**kwargs: Any) -> None:
            # Killed mid-move: the first copy moved into the graph is still among the copies.
            if kwargs.get("ids"):
                raise KeyboardInterrupt
            real_delete(**kwargs)

        monkeypatch.setattr(copies, "delete", crash)
        with pytest.raises(KeyboardInterrupt):
            index.delete(source=holders[0])
        monkeypatch.undo()
        assert REBALANCE in (index._store.vectors._copies().metadata or {})  # type: ignore[union-attr]

    with open_index(tmp_path, ollama) as index:
        assert index.count() == total - 3
        assert_consistent(index._store.vectors)
        assert len(graph_sources_of(index._store.vectors, HEADER)) == GRAPH_COPIES


# ---------------------------------------------------------------- migration, LangChain, doctor


def test_migration_copies_every_row_and_keeps_the_cap(tmp_path: Path, ollama: LocalOllama) -> None:
    write_folder(tmp_path / "docs", 20)
    with open_index(tmp_path, ollama, model="bge-m3") as index:
        texts = add_unrelated(index)
        index.add_files(tmp_path / "docs", progress=False)
        index.add_texts([SHAPES["divider line"](COPIES)], source="flood.txt")
        total = index.count()
        old = index._store.vectors.collection.id

        index.migrate("mxbai-embed-large")

        store = index._store.vectors
        assert index.count() == total
        assert_consistent(store)
        assert recall(index, texts) == 1.0
        assert len(index.search(HEADER, k=20, filter={"source": {"$ne": "x"}}, mode="dense")) == 20
        names = {name for name, _, _ in read_collections_while_open(store)}
        assert names == {"default", f"{store.collection.id}.copies"}
        assert f"{old}.copies" not in names


def read_collections_while_open(store: ChromaStore) -> list[tuple[str, dict[str, Any], int]]:
    return [(c.name, dict(c.metadata or {}), c.count()) for c in store.client.list_collections()]


def test_the_langchain_view_reads_and_searches_the_copies(
    tmp_path: Path, ollama: LocalOllama
) -> None:
    with open_index(tmp_path, ollama, model="bge-m3") as index:
        add_unrelated(index)
        ids = index.add_texts([SHAPES["repeated sentence"](50)], source="flood.txt")
        view = index.vectorstore

        assert sorted(view.get(where={"source": "flood.txt"})["ids"]) == sorted(ids)
        assert len(view.get(include=[])["ids"]) == index.count()
        paged = [view.get(limit=7, offset=o, include=[])["ids"] for o in range(0, 100, 7)]
        every = [i for page in paged for i in page]
        assert len(every) == len(set(every)) == index.count()
        assert len(view.get(ids=ids)["ids"]) == len(ids)
        found = view.similarity_search("同じ文", k=len(ids), filter={"source": "flood.txt"})
        assert len(found) == len(ids)
        mmr = view.max_marginal_relevance_search(
            "同じ文", k=3, fetch_k=30, filter={"source": "flood.txt"}
        )
        assert len(mmr) == 3


def test_results_match_a_store_without_a_graph(tmp_path: Path, ollama: LocalOllama) -> None:
    # The second store searches exhaustively: the cap must not change what a search returns.
    write_folder(tmp_path / "docs", 20)
    results = {}
    for kind in ("chroma", "fake"):
        where: dict[str, Any] = (
            {"store": MemoryStore()} if kind == "fake" else {"path": tmp_path / "db"}
        )
        with RagIndex(
            **where, model="bge-m3", base_url=ollama.url, chunk_size=CHUNK, chunk_overlap=0
        ) as index:
            index.add_files(tmp_path / "docs", progress=False)
            found: dict[str, Any] = {"count": index.count()}
            for query, k, filter, contains in (
                (HEADER, 30, None, None),  # 20 headers (8 in the graph), 10 others
                (HEADER, 12, None, None),
                (FOOTER, 5, {"source": "doc013.txt"}, None),
                (HEADER, 25, {"chunk_index": 0}, None),
                (FOOTER, 60, {"source": {"$ne": "none"}}, None),  # copies of two texts
                (FOOTER, 60, None, "Apache"),
                (FOOTER, 60, {"chunk_index": {"$gt": 0}}, "―"),
            ):
                hits = (
                    index.search_with_scores(
                        query,
                        k=k,
                        filter=filter,
                        where_document={"$contains": contains},
                        mode="dense",
                    )
                    if contains
                    else index.search_with_scores(query, k=k, filter=filter, mode="dense")
                )
                found[f"{query[:9]} {k} {filter} {contains}"] = sorted(
                    (d.page_content, d.metadata["source"] if k >= 20 else "", round(s, 4))
                    for d, s in hits
                )
            results[kind] = found
    # Ties among copies may come back in another order (so from other sources) when not all
    # of them fit in k; texts and scores may not differ.
    assert results["chroma"] == results["fake"]


def test_doctor_counts_the_copies_with_their_index(tmp_path: Path, ollama: LocalOllama) -> None:
    write_folder(tmp_path / "docs", 20)
    with open_index(tmp_path, ollama, model="bge-m3") as index:
        index.add_files(tmp_path / "docs", progress=False)
        total = index.count()
    (found,) = read_collections(tmp_path)
    assert (found[0], found[2]) == ("default", total)


@pytest.mark.slow
def test_a_second_client_of_a_chroma_server_sees_copies_written_after_it_opened(
    tmp_path: Path, ollama: LocalOllama
) -> None:
    import chromadb

    from ollama_rag.testing import chroma_server

    with chroma_server(tmp_path / "server") as port:
        first = chromadb.HttpClient(host="127.0.0.1", port=port)
        second = chromadb.HttpClient(host="127.0.0.1", port=port)
        with (
            RagIndex(
                client=first, model="bge-m3", base_url=ollama.url, chunk_size=CHUNK, chunk_overlap=0
            ) as writer,
            RagIndex(client=second, base_url=ollama.url) as reader,
        ):
            texts = add_unrelated(writer)
            assert reader.count() == PASSAGES  # the reader has looked: no copies yet
            ids = writer.add_texts([SHAPES["divider line"](COPIES)], source="flood.txt")

            assert reader.count() == PASSAGES + len(ids)
            found = reader.search(
                "-" * 60, k=len(ids), filter={"source": "flood.txt"}, mode="dense"
            )
            assert len(found) == len(ids)
            assert recall(reader, texts) == 1.0
