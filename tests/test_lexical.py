"""The lexical (BM25) index: ranking, and staying in step with the vectors in every path.

Every test checks the lexical index against what the vector store holds
(``lexical_ids() == ids in Chroma``) after the operation, and that lexical search finds what
it should; the crash tests kill a real process at the worst instant.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import pytest
from fake_store import MemoryStore

from ollama_rag import IndexRepairedWarning, RagIndex
from ollama_rag.lexical.analysis import get_analyzer
from ollama_rag.lexical.index import LexicalIndex
from ollama_rag.storage import hybrid as hybrid_store
from ollama_rag.storage.hybrid import HybridStore
from ollama_rag.testing import LocalOllama

pytestmark = pytest.mark.usefixtures("store_kind")

TEXTS = {
    "fuji.md": "富士山は日本で一番高い山で、標高は3776メートルです。",
    "biwa.md": "琵琶湖は滋賀県にある日本最大の湖です。",
    "yangtze.md": "长江是中国最长的河流，全长约6300公里。",
    "hangang.md": "한강은 서울을 가로지르는 강입니다.",
    "english.md": "Mount Everest is the highest mountain above sea level.",
}


def store_of(index: RagIndex) -> HybridStore:
    store = index.searcher.store
    assert isinstance(store, HybridStore)
    return store


def stored_ids(index: RagIndex) -> set[str]:
    return {i for page in store_of(index).iter_ids() for i in page}


def assert_in_step(index: RagIndex) -> None:
    assert store_of(index).lexical_ids() == stored_ids(index)


def lexical_sources(index: RagIndex, query: str, k: int = 3, **kwargs: object) -> list[str]:
    hits = index.search(query, k=k, mode="lexical", **kwargs)  # type: ignore[arg-type]
    return [d.metadata["source"] for d in hits]


def build(db: Path | None, server: LocalOllama, **kwargs: object) -> RagIndex:
    index = RagIndex(db, model="bge-m3", base_url=server.url, **kwargs)  # type: ignore[arg-type]
    for source, text in TEXTS.items():
        index.add_texts([text], source=source)
    return index


# ---------------------------------------------------------------------- the BM25 index itself


def test_bm25_ranks_by_rare_terms_and_deletes_cleanly(tmp_path: Path) -> None:
    analyzer = get_analyzer()
    lexical = LexicalIndex(tmp_path / "lex")
    texts = {
        "a": "東京都の人口は多い。東京は首都です。",
        "b": "京都は古い都です。",
        "c": "大阪の食べ物はおいしい。",
        "d": "名古屋は愛知県にあります。",
    }
    lexical.apply(add=[(i, f"{i}.md", analyzer.terms(t)) for i, t in texts.items()])
    ranked = lexical.search(analyzer.query_terms("東京 首都"), limit=None)
    assert ranked[0][0] == "a"
    assert all(score > 0 for _, score in ranked)
    assert "c" not in {cid for cid, _ in ranked}
    # Adding an id again keeps one row; deleting removes it from ranking and counts.
    lexical.apply(add=[("a", "a.md", analyzer.terms(texts["a"]))])
    assert lexical.count() == 4
    lexical.apply(delete=["a", "missing"], state={"token": "t1"})
    assert lexical.count() == 3
    assert "a" not in {cid for cid, _ in lexical.search(analyzer.query_terms("東京"), limit=None)}
    assert lexical.ids_of(["b.md", "zzz"]) == {"b"}
    # Reopened from disk: the same chunks, the recorded state, the same scores.
    again = LexicalIndex(tmp_path / "lex")
    assert again.ids() == {"b", "c", "d"}
    assert again.get("token") == "t1"
    ranked = dict(again.search(analyzer.query_terms("大阪"), limit=None))
    assert again.scores(analyzer.query_terms("大阪"), ["c", "d"]) == {"c": ranked["c"]}


def test_terms_with_quotes_and_operators_are_searched_literally(tmp_path: Path) -> None:
    lexical = LexicalIndex(None)
    lexical.apply(add=[("x", "x", ['a"b', "or", "near", "*"]), ("y", "y", ["and"])])
    assert [cid for cid, _ in lexical.search(['a"b'], limit=5)] == ["x"]
    assert [cid for cid, _ in lexical.search(["and"], limit=5)] == ["y"]
    assert lexical.search([], limit=5) == []


# ---------------------------------------------------------------------- search modes


def test_each_mode_finds_the_passage_and_says_how(tmp_path: Path, ollama: LocalOllama) -> None:
    with build(tmp_path / "db", ollama) as index:
        assert lexical_sources(index, "日本で一番高い山")[0] == "fuji.md"
        assert lexical_sources(index, "中国最长的河流")[0] == "yangtze.md"
        assert lexical_sources(index, "서울 강")[0] == "hangang.md"
        assert lexical_sources(index, "HIGHEST mountain")[0] == "english.md"
        for mode in ("dense", "lexical", "hybrid"):
            doc = index.search("富士山の標高", k=1, mode=mode)[0]
            assert doc.metadata["source"] == "fuji.md"
            assert doc.metadata["found_by"] in (
                {"dense"}
                if mode == "dense"
                else {"lexical"}
                if mode == "lexical"
                else {"dense", "lexical", "both"}
            )
        hybrid = index.search("富士山の標高", k=2, mode="hybrid")
        top = hybrid[0].metadata
        assert top["found_by"] == "both"
        assert top["lexical_score"] > 0
        assert -1 <= top["dense_score"] <= 1
        # The default is hybrid.
        assert index.search("富士山の標高", k=1)[0].metadata["found_by"] == "both"
        with pytest.raises(ValueError, match="mode='fuzzy' is not one of"):
            index.search("x", mode="fuzzy")


@pytest.mark.parametrize("filter_first", [20_000, 0], ids=["listed first", "checked on ranks"])
def test_filters_apply_to_the_lexical_side(
    tmp_path: Path, ollama: LocalOllama, monkeypatch: pytest.MonkeyPatch, filter_first: int
) -> None:
    # Both ways a filter is applied: the passing ids listed before BM25 ranks (a selective
    # filter), or the ranked candidates checked a growing page at a time (a wide one).
    monkeypatch.setattr(hybrid_store, "FILTER_FIRST", filter_first)
    with RagIndex(tmp_path / "db", model="bge-m3", base_url=ollama.url) as index:
        # 300 chunks holding the query's terms; the one passing the filter ranks low.
        texts = [f"東京タワーの展望台 {i}番目の案内です。東京タワー東京タワー" for i in range(300)]
        index.add_texts(texts, metadatas=[{"group": "many"}] * 300)
        index.add_texts(["東京の郊外にある小さな公園です。"], metadatas=[{"group": "rare"}])
        hits = index.search("東京タワー", k=3, mode="lexical", filter={"group": "rare"})
        assert [d.metadata["group"] for d in hits] == ["rare"]
        hybrid = index.search("東京タワー", k=3, mode="hybrid", filter={"group": "rare"})
        assert [d.metadata["group"] for d in hybrid] == ["rare"]
        contains = index.search(
            "東京タワー", k=5, mode="lexical", where_document={"$contains": "公園"}
        )
        assert [d.page_content for d in contains] == ["東京の郊外にある小さな公園です。"]


def test_the_retriever_and_async_take_a_mode(tmp_path: Path, ollama: LocalOllama) -> None:
    import asyncio

    with build(None, ollama) as index:
        retriever = index.as_retriever(search_kwargs={"k": 1, "mode": "lexical"})
        assert retriever.invoke("琵琶湖")[0].metadata["found_by"] == "lexical"
        docs = asyncio.run(retriever.ainvoke("琵琶湖", mode="hybrid"))
        assert docs[0].metadata["source"] == "biwa.md"
        pairs = asyncio.run(index.searcher.asearch_with_scores("长江", 1, mode="lexical"))
        assert pairs[0][0].metadata["source"] == "yangtze.md"
        mmr = index.max_marginal_relevance_search("山", k=2, mode="hybrid", fetch_k=5)
        assert len(mmr) == 2


def test_search_many_matches_one_by_one(tmp_path: Path, ollama: LocalOllama) -> None:
    with build(None, ollama) as index:
        queries = ["富士山", "琵琶湖", "长江", "한강"]
        ollama.reset_counters()
        many = index.searcher.search_many(queries, k=2, mode="hybrid")
        assert ollama.request_count("bge-m3") == 1  # one batched request for four queries
        for query, docs in zip(queries, many, strict=True):
            assert [d.id for d in docs] == [d.id for d in index.search(query, k=2)]


# ---------------------------------------------------------------------- in step in every path


def test_writes_keep_the_lexical_index_in_step(tmp_path: Path, ollama: LocalOllama) -> None:
    with build(tmp_path / "db", ollama) as index:
        assert_in_step(index)
        index.add_texts(["富士山は静岡県と山梨県にまたがる。"], source="fuji.md")  # replaced
        assert_in_step(index)
        assert "fuji.md" not in lexical_sources(index, "標高3776メートル")
        assert lexical_sources(index, "山梨県")[0] == "fuji.md"
        index.delete(source="biwa.md")
        assert_in_step(index)
        assert "biwa.md" not in lexical_sources(index, "琵琶湖")
        index.delete(ids=[index.search("长江", k=1, mode="lexical")[0].id])
        assert_in_step(index)
        assert index.search("中国最长的河流", k=5, mode="lexical") == [] or all(
            d.metadata["source"] != "yangtze.md" for d in index.search("长江", k=5, mode="lexical")
        )


def test_files_and_sync_keep_it_in_step(tmp_path: Path, ollama: LocalOllama) -> None:
    folder = tmp_path / "docs"
    folder.mkdir()
    for name, text in TEXTS.items():
        (folder / name).write_text(text, encoding="utf-8")
    with RagIndex(tmp_path / "db", model="bge-m3", base_url=ollama.url) as index:
        index.add_files(folder, progress=False)
        assert_in_step(index)
        (folder / "biwa.md").unlink()
        (folder / "fuji.md").write_text("富士山の五合目まではバスで行けます。", encoding="utf-8")
        index.sync(folder, progress=False)
        assert_in_step(index)
        assert "biwa.md" not in lexical_sources(index, "琵琶湖")
        assert lexical_sources(index, "五合目")[0] == "fuji.md"


def test_migration_brings_its_own_lexical_index(tmp_path: Path, ollama: LocalOllama) -> None:
    db = tmp_path / "db"
    with build(db, ollama) as index:
        old_file = store_of(index).lexical_folder
        index.migrate("mxbai-embed-large")
        new_file = store_of(index).lexical_folder
        assert new_file is not None
        assert old_file is not None
        assert new_file != old_file
        assert new_file.exists()
        assert not old_file.exists()
        assert_in_step(index)
        assert lexical_sources(index, "琵琶湖")[0] == "biwa.md"
    assert sorted(p.name for p in (db / "lexical").iterdir()) == [new_file.name]


def test_a_memory_store_behind_the_seam_gets_lexical_search(ollama: LocalOllama) -> None:
    store = MemoryStore()
    with RagIndex(store=store, model="bge-m3", base_url=ollama.url) as index:
        index.add_texts(["琵琶湖は日本最大の湖です。", "富士山は高い。"])
        assert index.search("琵琶湖", k=1, mode="lexical")[0].page_content.startswith("琵琶湖")
        assert_in_step(index)


# ---------------------------------------------------------------------- rebuilt and caught up


def test_a_missing_lexical_index_is_built_from_the_stored_text(
    tmp_path: Path, ollama: LocalOllama
) -> None:
    db = tmp_path / "db"
    build(db, ollama).close()
    shutil.rmtree(db / "lexical")
    ollama.reset_counters()
    with RagIndex(db, base_url=ollama.url) as index:
        assert_in_step(index)
        assert lexical_sources(index, "琵琶湖")[0] == "biwa.md"
    assert ollama.request_count("bge-m3") == 0 or len(ollama.received("bge-m3")) <= 1


def test_an_unreadable_lexical_folder_is_rebuilt_with_a_warning(
    tmp_path: Path, ollama: LocalOllama
) -> None:
    db = tmp_path / "db"
    with build(db, ollama) as index:
        folder = store_of(index).lexical_folder
    assert folder is not None
    (folder / "meta.json").write_bytes(b"this is not an index" * 100)
    with pytest.warns(IndexRepairedWarning, match="could not be read"):
        index = RagIndex(db, base_url=ollama.url)
    with index:
        assert_in_step(index)
        assert lexical_sources(index, "长江")[0] == "yangtze.md"


def test_a_new_analyzer_rebuilds_without_embedding(
    tmp_path: Path, ollama: LocalOllama, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ollama_rag.lexical import analysis

    class Unigrams(analysis.Analyzer):
        name = "unigrams-test"
        version = 1

        def terms(self, text: str) -> list[str]:
            return [c for c in text.casefold() if c.isalnum()]

    monkeypatch.setattr(analysis, "ANALYZERS", {**analysis.ANALYZERS, "unigrams-test": Unigrams})
    db = tmp_path / "db"
    build(db, ollama).close()
    ollama.reset_counters()
    with RagIndex(db, base_url=ollama.url, analyzer="unigrams-test") as index:
        assert index.manifest.analyzer == "unigrams-test/1"
        assert_in_step(index)
        # One character is a term now (a bigram index has no "湖" of its own).
        assert lexical_sources(index, "湖")[0] == "biwa.md"
    assert len(ollama.received("bge-m3")) <= 1  # the probe's query at most: nothing re-embedded
    with RagIndex(db, base_url=ollama.url) as index:
        assert index.manifest.analyzer == "unigrams-test/1"  # recorded, used again
        assert lexical_sources(index, "湖")[0] == "biwa.md"


def test_an_unknown_analyzer_is_refused(tmp_path: Path, ollama: LocalOllama) -> None:
    with pytest.raises(ValueError, match="cjk-bigram"):
        RagIndex(tmp_path / "db", model="bge-m3", base_url=ollama.url, analyzer="nope")
    assert not (tmp_path / "db" / "lexical").exists()


CRASH = textwrap.dedent(
    """
    import os, signal, sys
    from ollama_rag import RagIndex
    from ollama_rag.lexical.index import LexicalIndex

    db, url, what = sys.argv[1:4]
    real = LexicalIndex.apply

    def apply(self, **kwargs):
        if kwargs.get("add") or kwargs.get("delete"):
            os.kill(os.getpid(), signal.SIGKILL)  # the vectors are written, the terms not yet
        return real(self, **kwargs)

    index = RagIndex(db, base_url=url)
    LexicalIndex.apply = apply
    if what == "add":
        index.add_texts(["奈良公園には鹿がたくさんいます。"], source="nara.md")
    elif what == "replace":
        index.add_texts(["琵琶湖の水は京都へ送られます。"], source="biwa.md")
    else:
        index.delete(source="fuji.md")
    """
)


@pytest.mark.reliability
@pytest.mark.parametrize("what", ["add", "replace", "delete"])
def test_a_kill_between_vectors_and_terms_is_caught_up_on_open(
    tmp_path: Path, ollama: LocalOllama, what: str
) -> None:
    db = tmp_path / "db"
    build(db, ollama).close()
    child = subprocess.run(
        [sys.executable, "-c", CRASH, str(db), ollama.url, what], capture_output=True, text=True
    )
    assert child.returncode == -9, child.stderr
    with warnings.catch_warnings():
        warnings.simplefilter("error", IndexRepairedWarning)  # nothing to repair: caught up
        index = RagIndex(db, base_url=ollama.url)
    with index:
        assert_in_step(index)
        if what == "add":
            assert lexical_sources(index, "奈良公園の鹿")[0] == "nara.md"
        elif what == "replace":
            assert lexical_sources(index, "京都へ送られ")[0] == "biwa.md"
            assert "biwa.md" not in lexical_sources(index, "日本最大", k=5)
        else:
            assert "fuji.md" not in lexical_sources(index, "富士山", k=5)


def test_a_read_only_open_searches_lexically(tmp_path: Path, ollama: LocalOllama) -> None:
    db = tmp_path / "db"
    with build(db, ollama), RagIndex(db, base_url=ollama.url, read_only=True) as reader:
        assert lexical_sources(reader, "琵琶湖")[0] == "biwa.md"
        assert reader.search("琵琶湖", k=1)[0].metadata["found_by"] == "both"


def test_a_chunk_only_the_lexical_side_found_is_read_and_scored(
    tmp_path: Path, ollama: LocalOllama
) -> None:
    # The fusion keeps a chunk the dense side did not return: it is fetched, with its vector,
    # so that it carries a cosine similarity like every hybrid result.
    with build(None, ollama) as index:
        target = index.search("琵琶湖", k=1, mode="lexical")[0]
        vector = index.embeddings.embed_query("琵琶湖")
        (found,) = index.searcher._fused("琵琶湖", vector, [], [(str(target.id), 7.5)], 1)
        assert found.hit.text == target.page_content
        assert found.found_by == "lexical"
        assert found.lexical == 7.5
        assert found.dense is not None
        assert -1.0 <= found.dense <= 1.0


def test_snapshots_of_a_lexical_index_that_commits_meanwhile_open_and_answer(
    tmp_path: Path, ollama: LocalOllama
) -> None:
    # Tantivy commits before a search and merges segments in its own threads, outside the write
    # gate: a snapshot copying the folder meanwhile meets temporary files that vanish and
    # meta.json files that change, and must still copy one consistent commit.
    import threading

    import tantivy

    from ollama_rag.storage.lock import LEXICAL_DIR, snapshot

    with RagIndex(tmp_path / "db", model="bge-m3", base_url=ollama.url) as index:
        index.add_texts(["富士山は日本で一番高い山です。"], source="fuji")
        assert index.search("富士山", k=1, mode="lexical")  # committed before the copies
        stop = threading.Event()

        def churn() -> None:
            n = 0
            while not stop.is_set():
                index.add_texts([f"第{n}の文章です。" * 3], source=f"s{n % 7}")
                index.search("文章", k=2, mode="lexical")  # commits the pending terms
                n += 1

        writer = threading.Thread(target=churn)
        writer.start()
        try:
            for _ in range(15):
                copy = snapshot(tmp_path / "db")
                try:
                    (folder,) = [p for p in (copy / LEXICAL_DIR).iterdir() if p.is_dir()]
                    searcher = tantivy.Index.open(str(folder)).searcher()
                    assert searcher.num_docs >= 1
                finally:
                    shutil.rmtree(copy)
        finally:
            stop.set()
            writer.join()
