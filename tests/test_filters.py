"""Chroma's filter language evaluated in Python gives exactly Chroma's answers.

Every filter in the table runs against a real Chroma collection and through
``ollama_rag.storage.filters``; the matching ids must be the same.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from ollama_rag.errors import ConfigError
from ollama_rag.storage import matches, matches_document

pytestmark = pytest.mark.usefixtures("store_kind")

ROWS: dict[str, tuple[str, dict[str, Any]]] = {
    "a": (
        "富士山は日本で一番高い山です。",
        {"source": "a.md", "page": 1, "lang": "ja", "ok": True},
    ),
    "b": ("长江是中国最长的河流。", {"source": "b.txt", "page": 2, "lang": "zh", "ok": False}),
    "c": ("The bicycle has two wheels.", {"source": "c.txt", "page": 3, "score": 0.5}),
    "d": ("登山の季節は夏です。", {"source": "a.md", "page": 4, "lang": "ja", "tags": ["x", "y"]}),
    "e": ("Tea from Hangzhou 龙井.", {"source": "e.md", "weight": 2.5, "tags": ["y"]}),
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
]
WHERE_DOCUMENT = [
    {"$contains": "山"},
    {"$not_contains": "山"},
    {"$contains": "Hangzhou"},
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
