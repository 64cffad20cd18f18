"""The FAISS docstore's SQL: filters narrowed in SQLite, lookups that read only what they need.

A FAISS index keeps metadata as JSON in its docstore; :func:`prefilter` turns a Chroma filter
into a SQLite condition so that a search reads only the rows that can pass. It must never
exclude a row :func:`matches` passes (whatever the metadata's types), it must narrow the usual
filters exactly, and the store's answers must be the same as checking every row. And a search
or a page of rows must not read the whole collection to find a few rows (SQLite's planner,
without statistics, prefers an index on ``uid`` over the primary key).
"""

from __future__ import annotations

import json
import math
import random
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from ollama_rag.errors import ConfigError
from ollama_rag.manifest import new_manifest
from ollama_rag.ollama import ModelInfo
from ollama_rag.storage.base import ChunkRow, ChunkStore, SourceWrite
from ollama_rag.storage.docstore import DocStore
from ollama_rag.storage.filters import matches, matches_document, normalized, prefilter
from ollama_rag.storage.kinds import open_store
from ollama_rag.storage.schema import CONTENT_HASH, SOURCE, chunk_id, sha256
from tests.test_filters import ROWS, WHERE, WHERE_DOCUMENT

KEYS = ["source", "page", "lang", "ok", "score", "tags", "著者", "a.b", 'q"k', "x y"]
SCALARS: list[Any] = [
    0,
    1,
    -1,
    2,
    3,
    2.5,
    0.1,
    10,
    True,
    False,
    "",
    "1",
    "5",
    "a.md",
    "b.txt",
    "ja",
    "zh",
    "富士",
    "x",
    "y",
]
Rows = list[tuple[int, dict[str, Any], str]]  # FAISS id, metadata, text
Stored = tuple[DocStore, str, Rows]
TEXTS = ["富士山は高い。", "长江很长。", "The bicycle has 2 wheels.", "登山の季節は夏。", "", "x"]


# Filter operands may be anything; stored metadata is what check_metadata lets through.
OPERANDS = [*SCALARS, 2**70, None, [1, 2]]


def random_value(r: random.Random) -> Any:
    value = r.choice(SCALARS)
    if r.random() < 0.2:  # a list of one type (the library refuses mixed lists)
        return [v for v in SCALARS if type(v) is type(value)][: r.randint(1, 3)]
    return value


def random_metadata(r: random.Random) -> dict[str, Any]:
    meta = {key: random_value(r) for key in KEYS if r.random() < 0.6}
    meta["source"] = r.choice(["a.md", "b.txt", "c.txt", "10"])  # the library stores str()
    return meta


def random_where(r: random.Random, depth: int = 0) -> dict[str, Any]:
    if depth < 2 and r.random() < 0.3:
        return {r.choice(["$and", "$or"]): [random_where(r, depth + 1) for _ in range(2)]}
    key = r.choice(KEYS)
    op = r.choice(["$eq", "$ne", "$gt", "$gte", "$lt", "$lte", "$in", "$nin", "$contains"])
    op = r.choice([op, "$not_contains", "implicit"]) if r.random() < 0.2 else op
    if op in ("$in", "$nin"):
        return {key: {op: [r.choice(OPERANDS[:-2]) for _ in range(r.randint(0, 3))]}}
    operand = r.choice(OPERANDS)
    if op == "implicit":
        return {key: operand}
    return {key: {op: operand}}


def random_document_filter(r: random.Random, depth: int = 0) -> dict[str, Any]:
    if depth < 2 and r.random() < 0.3:
        return {r.choice(["$and", "$or"]): [random_document_filter(r, depth + 1) for _ in "ab"]}
    op = r.choice(["$contains", "$not_contains", "$regex", "$not_regex"])
    operand = r.choice(["富士", "山", "", "长", "bicycle", "[0-9]", "^x$", "高い"])
    return {op: operand}


@pytest.fixture(scope="module")
def docstore(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[DocStore, str, Rows]]:
    """A real docstore holding 400 rows of mixed metadata; yields it, its uid and the rows."""
    from ollama_rag.ingest.documents import check_metadata

    r = random.Random(7)
    db = DocStore(str(tmp_path_factory.mktemp("docstore") / "faiss.sqlite3"))
    uid = db.add_collection("default", "current", {})
    rows = []
    with db.transaction() as connection:
        for n in range(400):
            meta, text = check_metadata(random_metadata(r), "row"), r.choice(TEXTS)
            fid = DocStore.insert(connection, uid, f"id{n}", text, meta, b"\0\0\0\0")
            rows.append((fid, meta, text))
    yield db, uid, rows
    db.close()


def narrowed(db: DocStore, uid: str, where: Any, where_document: Any) -> set[int]:
    condition = prefilter(where, where_document, columns={SOURCE: "source"})
    found: set[int] = set()
    db.each_row(uid, "fid", condition, lambda row: found.add(int(row[0])))
    return found


def passing(rows: Rows, where: Any, where_document: Any) -> set[int]:
    return {f for f, m, t in rows if matches(where, m) and matches_document(where_document, t)}


def test_sql_never_drops_a_row_the_filter_passes(docstore: Stored) -> None:
    db, uid, rows = docstore
    r = random.Random(11)
    narrowing = 0
    refused = 0
    for _ in range(1500):
        where = random_where(r) if r.random() < 0.85 else None
        document = random_document_filter(r) if r.random() < 0.3 else None
        try:
            normalized(where, document)
        except ConfigError:  # what Chroma refuses: no SQL is made of it either
            with pytest.raises(ConfigError):
                narrowed(db, uid, where, document)
            refused += 1
            continue
        exact = passing(rows, where, document)
        sql = narrowed(db, uid, where, document)
        assert exact <= sql, (where, document, exact - sql)
        narrowing += len(sql) < len(rows)
    assert 100 < refused < 1000
    assert narrowing > 300  # most valid filters read fewer rows than the whole collection


@pytest.mark.parametrize(
    "where",
    [
        {"source": "a.md"},
        {"source": {"$in": ["a.md", "10"]}},
        {"page": {"$gt": 1}},
        {"page": {"$lte": 2.5}},
        {"lang": "ja"},
        {"tags": {"$contains": "x"}},
        {"$and": [{"source": "b.txt"}, {"score": {"$gte": 1}}]},
        {"$or": [{"lang": "zh"}, {"page": 0}]},
        {"ok": True},
        {"ok": {"$in": [False]}},
        {"page": {"$in": [1, 2]}},
        {"page": 2.0},
    ],
    ids=str,
)
def test_usual_filters_are_narrowed_exactly_in_sql(docstore: Stored, where: dict[str, Any]) -> None:
    db, uid, rows = docstore
    assert narrowed(db, uid, where, None) == passing(rows, where, None)


@pytest.mark.parametrize("document", [{"$contains": "富士"}, {"$not_contains": "山"}], ids=str)
def test_document_substrings_are_narrowed_exactly_in_sql(
    docstore: Stored, document: dict[str, Any]
) -> None:
    db, uid, rows = docstore
    assert narrowed(db, uid, None, document) == passing(rows, None, document)


def test_a_source_filter_uses_the_source_index(docstore: Stored) -> None:
    db, uid, _ = docstore
    condition, args = prefilter({"source": "a.md"}, None, columns={SOURCE: "source"})
    plan = db.select(
        f"EXPLAIN QUERY PLAN SELECT fid FROM chunks WHERE uid=? AND ({condition})", (uid, *args)
    )
    assert any("chunks_source" in str(step) for step in plan), plan


def test_reading_every_row_in_pages_never_sorts_the_table(
    docstore: Stored,
) -> None:
    """Each page reads on along the primary key: no page sorts the rows left (quadratic)."""
    db, uid, rows = docstore
    statements: list[str] = []
    db._db.set_trace_callback(statements.append)
    try:
        fids = [f for page in db.pages(uid, "fid", batch=64) for (f,) in page]
    finally:
        db._db.set_trace_callback(None)
    assert fids == sorted(f for f, _, _ in rows)
    sql = next(s for s in statements if s.startswith("SELECT"))
    plan = str(db.select(f"EXPLAIN QUERY PLAN {sql}"))
    assert "PRIMARY KEY" in plan, plan
    assert "TEMP B-TREE" not in plan, plan


@pytest.mark.parametrize(
    "bad",
    [
        {"page": {"$gt": 1, "$lt": 3}},
        {"page": {"$near": 1}},
        {"$and": []},
        {"$xor": [{"a": 1}]},
        {"$or": [{"page": 1}, {"page": {"$between": [1, 2]}}]},
        {"page": {"$ne": 1}, "$nand": []},
    ],
    ids=str,
)
def test_invalid_filters_are_refused_before_any_row_is_read(bad: dict[str, Any]) -> None:
    with pytest.raises(ConfigError, match="Invalid filter"):
        prefilter(bad, None)


def test_invalid_document_filters_are_refused() -> None:
    with pytest.raises(ConfigError, match="Invalid filter"):
        prefilter(None, {"$near": "x"})


# ---------------------------------------------------------------- through the FAISS store

DIMENSION = 8


def faiss_store(
    path: Path,
    rows: dict[str, tuple[str, dict[str, Any]]],
    *,
    index: str = "flat",
    vectors: Any = None,
) -> ChunkStore:
    pytest.importorskip("faiss")
    info = ModelInfo("m", "0" * 64, DIMENSION, 512, 512, "bert")
    store = open_store("faiss", path, collection="default", faiss_index=index)
    store.create(new_manifest(info, chunk_size=100, chunk_overlap=0))
    if vectors is None:
        vectors = np.random.default_rng(3).standard_normal((len(rows), DIMENSION))
    writes = []
    for (name, (text, meta)), vector in zip(rows.items(), vectors, strict=True):
        digest = sha256(text)
        stored = {**meta, CONTENT_HASH: digest}
        row = ChunkRow(chunk_id(name, digest, 0), text, stored, vector.tolist())
        writes.append(SourceWrite(name, [row], marker=None))
    with store.writing():
        store.write(writes)
    return store


@pytest.mark.parametrize("broad", [False, True], ids=["restricted", "ranked-first"])
@pytest.mark.parametrize("nan", [False, True], ids=["json", "nan-in-metadata"])
def test_faiss_searches_and_lookups_equal_checking_every_row(
    tmp_path: Path, nan: bool, broad: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Both ways a filtered search can go give the best passing rows of all, exactly."""
    from ollama_rag.storage import faiss

    if broad:  # every filter counts as broad: rank first, then keep the passing rows
        monkeypatch.setattr(faiss, "FILTER_FIRST_ROWS", 0)
        monkeypatch.setattr(faiss, "RANK_FIRST_FACTOR", 1)  # and widen the ranking
    rows = dict(ROWS)
    if nan:  # json.dumps writes NaN, which SQLite's JSON functions refuse: every row checked
        rows["n"] = ("NaN の行です。", {"source": "n.md", "page": math.nan})
    store = faiss_store(tmp_path / "db", rows)
    try:
        every = {chunk.id: chunk for page in store.iter_chunks() for chunk in page}
        assert len(every) == len(rows)
        query = [1.0] * DIMENSION
        cases: list[tuple[Any, Any]] = [(w, None) for w in WHERE]
        cases += [(None, d) for d in WHERE_DOCUMENT]
        cases += [({"page": {"$gte": 2}}, {"$contains": "の"}), ({"source": "n.md"}, None)]
        for where, document in cases:
            expected = {
                cid
                for cid, c in every.items()
                if matches(where, c.metadata) and matches_document(document, c.text)
            }
            hits = store.query(query, len(rows), where=where, where_document=document)
            assert {h.id for h in hits} == expected, (where, document)
            best = [h.id for h in store.query(query, len(rows)) if h.id in expected][:2]
            top = store.query(query, 2, where=where, where_document=document)
            assert [h.id for h in top] == best, (where, document)
            found = store.ids_where(where, document, limit=len(rows))
            assert found is not None
            assert set(found) == expected, (where, document)
            if len(expected) > 1:
                assert store.ids_where(where, document, limit=len(expected) - 1) is None
        with pytest.raises(ConfigError, match="Invalid filter"):  # refused, rows or not
            store.query(query, 3, where={"$and": [{"source": "zz"}, {"page": {"$near": 1}}]})
    finally:
        store.close()


def test_a_filter_few_rows_pass_is_exact_on_an_hnsw_graph(tmp_path: Path) -> None:
    """The rows a filter allows lie far from the query: a graph walk from the query's
    neighbourhood would not reach them, yet all of them come back, best first."""
    count = 3000
    vectors = np.random.default_rng(5).standard_normal((count, DIMENSION))
    rows = {f"r{i}": (f"本文{i}。", {"source": f"r{i}.md"}) for i in range(count)}
    store = faiss_store(tmp_path / "db", rows, index="hnsw", vectors=vectors)
    try:
        query = vectors[0] / np.linalg.norm(vectors[0])
        cosines = (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)) @ query
        farthest = [int(i) for i in np.argsort(cosines)[:5]]
        allowed = {"source": {"$in": [f"r{i}.md" for i in farthest]}}
        hits = store.query(query.tolist(), 5, where=allowed)
        expected = sorted(farthest, key=lambda i: -cosines[i])
        assert [h.metadata["source"] for h in hits] == [f"r{i}.md" for i in expected]
        assert [h.score for h in hits] == pytest.approx([cosines[i] for i in expected], abs=1e-5)
    finally:
        store.close()


def test_the_json_the_docstore_writes_is_what_the_sql_reads(tmp_path: Path) -> None:
    """A non-ASCII key is escaped in the stored JSON: the filter on it is checked in Python."""
    store = faiss_store(tmp_path / "db", {"k": ("本文。", {"source": "k.md", "著者": "夏目"})})
    try:
        (stored,) = store._db.select("SELECT metadata FROM chunks")  # type: ignore[attr-defined]
        assert "\\u8457" in stored[0]
        assert json.loads(stored[0])["著者"] == "夏目"
        hits = store.query([1.0] * DIMENSION, 5, where={"著者": "夏目"})
        assert [h.metadata["著者"] for h in hits] == ["夏目"]
        assert store.query([1.0] * DIMENSION, 5, where={"著者": "漱石"}) == []
    finally:
        store.close()


def _plans(store: ChunkStore, run: Any) -> list[str]:
    """The query plans of the SELECTs the docstore runs during ``run()``."""
    db = store._db  # type: ignore[attr-defined]
    statements: list[str] = []
    db._db.set_trace_callback(statements.append)
    try:
        run()
    finally:
        db._db.set_trace_callback(None)
    selects = [s for s in statements if s.lstrip().upper().startswith("SELECT")]
    assert selects
    return [str(db.select(f"EXPLAIN QUERY PLAN {sql}")) for sql in selects]


def test_searches_and_lookups_read_only_the_rows_they_return(tmp_path: Path) -> None:
    rows = {f"s{i}": (f"第{i}節の本文。", {"source": f"s{i}.md", "page": i}) for i in range(300)}
    store = faiss_store(tmp_path / "db", rows)
    ids = [c.id for page in store.iter_chunks() for c in page][:5]
    query = [1.0] * DIMENSION
    try:
        for run in (
            lambda: store.query(query, 10),
            lambda: store.query(query, 10, where={"source": "s7.md"}),
            lambda: store.query(query, 10, where={"source": {"$in": ["s1.md", "s2.md"]}}),
            lambda: store.fetch(ids),
            lambda: store.stored_sources(["s3.md"]),
            lambda: list(store.iter_chunks(batch=50)),
        ):
            for plan in _plans(store, run):
                assert "TEMP B-TREE" not in plan, plan  # no sorting the collection
                assert not re.search(r"chunks USING \w* ?INDEX \w+ \(uid=\?\)", plan), plan
    finally:
        store.close()
