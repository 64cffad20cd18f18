"""Chroma's filter language evaluated in Python gives exactly Chroma's answers.

Every filter in the table runs against a real Chroma collection and through
``ollama_rag.storage.filters``; the matching ids must be the same.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import pytest
from pytest_mock import MockerFixture

from ollama_rag import IndexRepairedWarning, RagIndex
from ollama_rag.errors import ConfigError
from ollama_rag.storage import matches, matches_document
from ollama_rag.storage.filters import normalized
from ollama_rag.testing import LocalOllama

pytestmark = pytest.mark.usefixtures("store_kind")

ROWS: dict[str, tuple[str, dict[str, Any]]] = {
    "a": (
        "富士山は日本で一番高い山です。",
        {"source": "a.md", "page": 1, "lang": "ja", "ok": True},
    ),
    "b": ("长江是中国最长的河流。", {"source": "b.txt", "page": 2, "lang": "zh", "ok": False}),
    "c": ("The bicycle has two wheels.", {"source": "c.txt", "page": 3, "score": 0.5}),
    "d": ("登山の季節は夏です。", {"source": "a.md", "page": 4, "lang": "ja", "tags": ["x", "y"]}),
    "e": (
        "Tea from Hangzhou 龙井.",
        {"source": "e.md", "weight": 2.5, "tags": ["y"], "nums": [1, 2]},
    ),
}

WHERE = [
    {"source": "a.md"},
    {"source": {"$eq": "b.txt"}},
    {"source": {"$ne": "a.md"}},
    {"lang": {"$ne": "ja"}},
    {"page": {"$gt": 2}},
    {"page": {"$gte": 2}},
    {"page": {"$lt": 3}},
    {"page": {"$lte": 1}},
    {"weight": {"$gt": 2}},
    {"source": {"$in": ["a.md", "e.md"]}},
    {"source": {"$nin": ["a.md", "e.md"]}},
    {"lang": {"$nin": ["ja"]}},
    {"ok": True},
    {"ok": {"$ne": True}},
    {"tags": {"$contains": "y"}},
    {"tags": {"$not_contains": "x"}},
    {"tags": {"$ne": "x"}},
    {"tags": {"$in": ["x"]}},
    {"tags": {"$nin": ["x"]}},
    {"tags": "y"},
    {"$and": [{"source": "a.md"}, {"page": {"$gt": 1}}]},
    {"$or": [{"lang": "zh"}, {"page": 3}]},
    {"$or": [{"$and": [{"lang": "ja"}, {"page": 1}]}, {"weight": {"$lte": 2.5}}]},
    # $contains on a scalar value finds nothing (only lists hold items), and its negation passes
    {"source": {"$contains": "a.md"}},
    {"page": {"$contains": 1}},
    {"lang": {"$not_contains": "ja"}},
    # a list's items are typed: an int list holds 2 but not 2.0
    {"nums": {"$contains": 2}},
    {"nums": {"$contains": 2.0}},
    {"nums": {"$not_contains": 2.0}},
    # a bool equals only a bool; ints and floats compare as numbers; orderings skip bools
    {"ok": 1},
    {"ok": {"$ne": 1}},
    {"ok": {"$in": [1]}},
    {"ok": {"$gte": 0}},
    {"page": 2.0},
    {"page": {"$in": [2.0, 3.0]}},
    {"weight": {"$gte": 2}},
]
WHERE_DOCUMENT = [
    {"$contains": "山"},
    {"$not_contains": "山"},
    {"$contains": "Hangzhou"},
    {"$regex": "[\u4e00-\u9fff]{3}"},
    {"$regex": "(?i)tea"},
    {"$regex": "^The"},
    {"$not_regex": "[0-9]"},
    {"$and": [{"$contains": "の"}, {"$not_contains": "富士"}]},
    {"$or": [{"$contains": "河"}, {"$contains": "茶"}, {"$contains": "Tea"}]},
]


@pytest.fixture(scope="module")
def collection() -> Iterator[Any]:
    import chromadb

    database = f"filters_{uuid.uuid4().hex}"
    chromadb.AdminClient(chromadb.config.Settings(is_persistent=False)).create_database(database)
    client = chromadb.EphemeralClient(database=database)
    rows = client.create_collection("filters", embedding_function=None)
    rows.add(
        ids=list(ROWS),
        documents=[t for t, _ in ROWS.values()],
        metadatas=[m for _, m in ROWS.values()],
        embeddings=[[float(i), 1.0] for i in range(len(ROWS))],
    )
    yield rows
    client.delete_collection("filters")


@pytest.mark.parametrize("where", WHERE, ids=str)
def test_where_matches_chroma(collection: Any, where: dict[str, Any]) -> None:
    chroma = set(collection.get(where=where, include=[])["ids"])
    ours = {cid for cid, (_, meta) in ROWS.items() if matches(where, meta)}
    assert ours == chroma


@pytest.mark.parametrize("where_document", WHERE_DOCUMENT, ids=str)
def test_where_document_matches_chroma(collection: Any, where_document: dict[str, Any]) -> None:
    chroma = set(collection.get(where_document=where_document, include=[])["ids"])
    ours = {cid for cid, (text, _) in ROWS.items() if matches_document(where_document, text)}
    assert ours == chroma


def test_no_filter_passes_everything() -> None:
    assert matches(None, {})
    assert matches({}, {"a": 1})
    assert matches_document(None, "")


@pytest.mark.parametrize(
    "bad",
    [{"page": {"$gt": 1, "$lt": 3}}, {"page": {"$near": 1}}, {"$and": []}, {"$xor": [{"a": 1}]}],
    ids=str,
)
def test_malformed_filters_are_refused_with_the_filter_named(bad: dict[str, Any]) -> None:
    with pytest.raises(ConfigError, match="Invalid filter"):
        matches(bad, {"page": 2, "a": 1})


# Filters Chroma refuses. Each is refused by ``normalized`` too, before any store sees it, so a
# mistake reads the same on every store (and a FAISS index never answers a filter Chroma refuses).
REFUSED_WHERE: list[dict[str, Any]] = [
    {"page": {"$gt": "a"}},
    {"page": {"$lte": True}},
    {"page": {"$lt": float("inf")}},
    {"page": {"$in": [float("nan")]}},
    {"page": {"$gt": [1]}},
    {"page": {"$in": 3}},
    {"page": {"$in": []}},
    {"page": {"$in": [3, "a"]}},
    {"page": {"$nin": [[1]]}},
    {"page": {"$eq": [1]}},
    {"page": {"$ne": None}},
    {"page": None},
    {"tags": {"$contains": ["x"]}},
    {"page": {"$gt": 1, "$lt": 3}},
    {"page": {"$near": 1}},
    {"$or": []},
    {"$xor": [{"a": 1}]},
    {"$contains": "x"},
]
REFUSED_DOCUMENT: list[dict[str, Any]] = [
    {"$contains": ""},
    {"$contains": 3},
    {"$regex": "["},
    # Python's re takes these, Chroma's (Rust) regex syntax does not
    {"$regex": "山(?=は)"},
    {"$not_regex": "(?<!富士)山"},
    {"$regex": "(の).*\\1"},
    {"$regex": "です。\\Z"},
    {"$regex": "a{,2}"},
    {"$near": "x"},
    {"$and": []},
]


@pytest.mark.parametrize("where", REFUSED_WHERE, ids=str)
def test_filters_chroma_refuses_are_refused_with_the_filter_named(
    collection: Any, where: dict[str, Any]
) -> None:
    with pytest.raises(Exception):  # noqa: B017, PT011 - Chroma raises ValueError or its own
        collection.get(where=where, include=[])
    with pytest.raises(ConfigError, match="Invalid filter") as refused:
        normalized(where, None)
    assert repr(where) in str(refused.value)


@pytest.mark.parametrize("where_document", REFUSED_DOCUMENT, ids=str)
def test_document_filters_chroma_refuses_are_refused(
    collection: Any, where_document: dict[str, Any]
) -> None:
    with pytest.raises(Exception):  # noqa: B017, PT011
        collection.get(where_document=where_document, include=[])
    with pytest.raises(ConfigError, match="Invalid filter"):
        normalized(None, where_document)


# Forms only this library takes: several keys in one dict, a one-item $and/$or, nested.
LENIENT: list[dict[str, Any]] = [
    {"source": "a.md", "page": {"$gte": 2}},
    {"$and": [{"lang": "ja"}]},
    {"$or": [{"source": "e.md", "weight": 2.5}, {"page": 1}]},
    {"$and": [{"lang": "ja", "source": "a.md"}], "page": {"$lt": 4}},
]


@pytest.mark.parametrize("where", LENIENT, ids=str)
def test_lenient_forms_become_what_chroma_takes(collection: Any, where: dict[str, Any]) -> None:
    with pytest.raises(Exception):  # noqa: B017, PT011 - Chroma takes one key, two-item $and
        collection.get(where=where, include=[])
    checked, _ = normalized(where, None)
    chroma = set(collection.get(where=checked, include=[])["ids"])
    assert chroma == {cid for cid, (_, meta) in ROWS.items() if matches(where, meta)}
    assert chroma  # each form matches something, so an empty answer cannot pass by accident


def test_valid_filters_pass_through_unchanged() -> None:
    for where in WHERE:
        assert normalized(where, None) == (where, None)
    for where_document in WHERE_DOCUMENT:
        assert normalized(None, where_document) == (None, where_document)
    assert normalized({}, {}) == (None, None)


@pytest.fixture
def index(ollama: LocalOllama, tmp_path: Path) -> Iterator[RagIndex]:
    """The rows above in an index of the test's store (``score`` is a key the library keeps)."""
    with RagIndex(tmp_path / "db", model="bge-m3", base_url=ollama.url) as built:
        built.add_texts(
            [text for text, _ in ROWS.values()],
            [{k: v for k, v in meta.items() if k != "score"} for _, meta in ROWS.values()],
        )
        yield built


@pytest.mark.parametrize("mode", ["dense", "lexical", "hybrid"])
def test_searches_refuse_bad_filters_alike_and_keep_the_lexical_index(
    index: RagIndex, mode: Literal["dense", "lexical", "hybrid"], recwarn: pytest.WarningsRecorder
) -> None:
    for where in REFUSED_WHERE:
        with pytest.raises(ConfigError, match="Invalid filter"):
            index.search("山", k=3, filter=where, mode=mode)
    for where_document in REFUSED_DOCUMENT:
        with pytest.raises(ConfigError, match="Invalid filter"):
            index.search("山", k=3, where_document=where_document, mode=mode)
    assert not [w for w in recwarn if issubclass(w.category, IndexRepairedWarning)]


@pytest.mark.parametrize("where", LENIENT, ids=str)
def test_lenient_forms_answer_alike_on_every_store(index: RagIndex, where: dict[str, Any]) -> None:
    expected = {text for text, meta in ROWS.values() if matches(where, meta)}
    for mode in ("dense", "lexical", "hybrid"):
        # A lexical search finds only rows sharing a term with the query; ask with every row's text.
        found = {
            doc.page_content
            for text in expected
            for doc in index.search(text, k=len(ROWS), filter=where, mode=mode)
        }
        assert found == expected, mode


def test_a_store_error_inside_a_lexical_search_does_not_rebuild_the_lexical_index(
    index: RagIndex, mocker: MockerFixture, recwarn: pytest.WarningsRecorder
) -> None:
    """A ``ValueError`` from the vector store is the store's, not a sign of a damaged index.

    Tantivy reports an unreadable folder with ``ValueError`` too; before the lexical reads were
    told apart, a filter Chroma refused had the lexical index removed and rebuilt. No filter
    reaches a store unchecked now, so the store's error is injected.
    """
    settled = index.search("山", k=3, filter={"lang": "ja"}, mode="lexical")  # writes all done
    store = index._store
    folder = store.lexical_folder
    assert folder is not None
    assert folder.is_dir()
    files = sorted(p.name for p in folder.iterdir())
    mocker.patch.object(store.vectors, "ids_where", side_effect=ValueError("refused by the store"))
    with pytest.raises(ValueError, match="refused by the store"):
        index.search("山", k=3, filter={"lang": "ja"}, mode="lexical")
    assert not [w for w in recwarn if issubclass(w.category, IndexRepairedWarning)]
    assert sorted(p.name for p in folder.iterdir()) == files
    mocker.stopall()
    assert index.search("山", k=3, filter={"lang": "ja"}, mode="lexical") == settled
    assert settled
