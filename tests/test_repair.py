"""An index whose vector files a crash left damaged repairs itself on open, losing nothing.

Each test damages a real Chroma directory the way a killed write can (reference/chroma.md §6,
docs/reliability.md): files emptied, truncated, missing or stale. The long kill loop is
``python -m benchmarks reliability``.
"""

from __future__ import annotations

import random
import shutil
import sqlite3
import warnings
from collections.abc import Callable
from pathlib import Path

import pytest

from ollama_rag import IndexDamagedError, IndexRepairedWarning, RagIndex
from ollama_rag.storage import chroma_files
from ollama_rag.storage.chroma import GRAPH_COPIES
from ollama_rag.testing import LocalOllama

pytestmark = pytest.mark.reliability

WORDS = [
    "富士山",
    "長江",
    "新幹線",
    "図書館",
    "台風",
    "味噌汁",
    "将棋",
    "桜",
    "港",
    "砂漠",
    "火山",
    "氷河",
    "牧場",
    "寺院",
    "市場",
    "灯台",
    "稲作",
    "祭り",
    "温泉",
    "宇宙",
    "電池",
    "地震",
    "鉄道",
    "茶道",
    "書道",
    "熊猫",
    "长城",
    "黄河",
    "饺子",
    "京剧",
    "丝绸",
    "瓷器",
    "竹林",
    "茉莉",
    "普洱",
    "太极",
    "高铁",
    "沙漠",
    "草原",
    "湖泊",
]


def passage(i: int) -> str:
    """A passage of its own words (one seeded draw each), so no two are alike."""
    picked = random.Random(i).sample(WORDS, 8)
    return f"第{i}節。" + "、".join(picked) + "について。"


# Enough rows for Chroma to save its vector files several times (it does every 100).
TEXTS = [passage(i) for i in range(320)]


def build(db: Path, server: LocalOllama, texts: list[str] = TEXTS) -> dict[str, str]:
    with RagIndex(db, model="bge-m3", base_url=server.url, chunk_size=200) as index:
        index.add_texts(texts, metadatas=[{"n": i, "tags": ["a", "b"]} for i in range(len(texts))])
        got = index.vectorstore.get(include=["documents"])
    return dict(zip(got["ids"], got["documents"], strict=True))


@pytest.fixture(scope="module")
def _built(
    tmp_path_factory: pytest.TempPathFactory, _session_ollama: LocalOllama
) -> tuple[Path, dict[str, str]]:
    """One whole index of ``TEXTS`` (closed) and its chunks, for tests to copy and damage."""
    db = tmp_path_factory.mktemp("built") / "db"
    return db, build(db, _session_ollama)


@pytest.fixture
def built(tmp_path: Path, _built: tuple[Path, dict[str, str]]) -> tuple[Path, dict[str, str]]:
    """A copy of :func:`_built` of the test's own under ``tmp_path``: what ``build`` would make."""
    template, before = _built
    db = tmp_path / "db"
    shutil.copytree(template, db)
    return db, dict(before)


def segment(db: Path) -> Path:
    (folder,) = [p for p in db.iterdir() if p.is_dir() and p.name != "lexical"]
    return folder


def truncate(path: Path, fraction: float) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * fraction)])


DAMAGE: dict[str, Callable[[Path], None]] = {
    "pickle empty": lambda s: truncate(s / "index_metadata.pickle", 0),
    "pickle truncated": lambda s: truncate(s / "index_metadata.pickle", 0.5),
    "pickle missing": lambda s: (s / "index_metadata.pickle").unlink(),
    "header empty": lambda s: truncate(s / "header.bin", 0),
    "vectors truncated": lambda s: truncate(s / "data_level0.bin", 0.5),
    "vectors missing": lambda s: (s / "data_level0.bin").unlink(),
    "links empty": lambda s: truncate(s / "link_lists.bin", 0),
    "folder missing": shutil.rmtree,
}


def open_repaired(db: Path, server: LocalOllama) -> tuple[RagIndex, list[str]]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        index = RagIndex(db, base_url=server.url)
    repaired = [str(w.message) for w in caught if issubclass(w.category, IndexRepairedWarning)]
    return index, repaired


def assert_whole(index: RagIndex, before: dict[str, str]) -> None:
    got = index.vectorstore.get(include=["documents", "metadatas"])
    assert len(got["ids"]) == len(set(got["ids"])) == index.count() == len(before)
    assert dict(zip(got["ids"], got["documents"], strict=True)) == before
    assert all(m["tags"] == ["a", "b"] for m in got["metadatas"])
    for cid in list(before)[::40]:  # every chunk's vector is its own: it finds itself first
        assert index.search(before[cid], k=1)[0].id == cid


@pytest.mark.parametrize("mode", list(DAMAGE))
def test_a_damaged_index_is_repaired_on_open(
    built: tuple[Path, dict[str, str]], ollama: LocalOllama, mode: str
) -> None:
    db, before = built
    DAMAGE[mode](segment(db))
    assert chroma_files.check(db, "default") is not None  # found from the files alone
    index, repaired = open_repaired(db, ollama)
    with index:
        assert len(repaired) == 1
        assert "was damaged" in repaired[0]
        assert "Nothing was lost" in repaired[0]
        report = index.last_repair
        assert report is not None
        assert report.chunks_skipped + report.chunks_embedded == len(before)
        assert_whole(index, before)
        index.add_texts(["修復の後に追加した文。"], source="after.md")  # writable
        assert index.count() == len(before) + 1
    again, repaired = open_repaired(db, ollama)  # whole now: no second repair
    with again:
        assert repaired == []
        assert again.count() == len(before) + 1


def test_vectors_are_recovered_rather_than_embedded_again(
    built: tuple[Path, dict[str, str]], ollama: LocalOllama
) -> None:
    db, before = built
    DAMAGE["pickle empty"](segment(db))  # only the id map is lost: every vector survives
    ollama.reset_counters()
    index, _ = open_repaired(db, ollama)
    with index:
        assert index.last_repair is not None
        assert index.last_repair.chunks_skipped == len(before)
        assert index.last_repair.chunks_embedded == 0
        # A handful of texts embedded to check the recovered vectors, nothing more.
        assert ollama.request_count("bge-m3") <= 3
        assert_whole(index, before)


def test_a_stale_vector_folder_is_repaired(tmp_path: Path, ollama: LocalOllama) -> None:
    db = tmp_path / "db"
    build(db, ollama, TEXTS[:200])
    stale = tmp_path / "stale"
    shutil.copytree(segment(db), stale)
    with RagIndex(db, base_url=ollama.url) as index:
        index.add_texts(TEXTS[200:], metadatas=[{"n": i, "tags": ["a", "b"]} for i in range(120)])
        got = index.vectorstore.get(include=["documents"])
        before = dict(zip(got["ids"], got["documents"], strict=True))
    shutil.rmtree(segment(db))
    shutil.copytree(stale, segment_name(db))
    assert chroma_files.check(db, "default") is not None
    index, repaired = open_repaired(db, ollama)
    with index:
        assert len(repaired) == 1
        assert_whole(index, before)


def segment_name(db: Path, collection: str = "default") -> Path:
    """Where a collection's vector folder belongs (read from Chroma's database)."""
    with sqlite3.connect(db / "chroma.sqlite3") as con:
        (folder,) = con.execute(
            "SELECT s.id FROM segments s JOIN collections c ON c.id = s.collection "
            "WHERE s.scope = 'VECTOR' AND c.name = ?",
            (collection,),
        ).fetchone()
    return db / folder


def test_a_whole_index_is_not_touched(
    built: tuple[Path, dict[str, str]], ollama: LocalOllama
) -> None:
    db, before = built
    stamp = {p.name: p.stat().st_mtime_ns for p in segment(db).iterdir()}
    index, repaired = open_repaired(db, ollama)
    with index:
        assert repaired == []
        assert index.last_repair is None
        assert_whole(index, before)
    assert {p.name: p.stat().st_mtime_ns for p in segment(db).iterdir()} == stamp


def test_an_unreadable_database_names_the_fix(
    built: tuple[Path, dict[str, str]], ollama: LocalOllama
) -> None:
    db, _ = built
    DAMAGE["pickle empty"](segment(db))
    with sqlite3.connect(db / "chroma.sqlite3") as con:  # the rows themselves are gone
        con.execute("DROP TABLE embedding_metadata")
    with pytest.raises(IndexDamagedError) as err:
        RagIndex(db, base_url=ollama.url)
    message = str(err.value)
    assert "cannot be repaired" in message
    assert "index the sources again" in message


def test_copies_of_repeated_text_survive_a_repair(tmp_path: Path, ollama: LocalOllama) -> None:
    db = tmp_path / "db"
    repeated = ["同じ注意書き。"] * (GRAPH_COPIES + 5)  # beyond the graph: some in the companion
    with RagIndex(db, model="bge-m3", base_url=ollama.url, chunk_size=200) as index:
        for n, text in enumerate(repeated):
            index.add_texts([text], source=f"notice-{n}.md")
        index.add_texts(TEXTS, metadatas=[{"n": i, "tags": ["a", "b"]} for i in range(len(TEXTS))])
        total = index.count()
    DAMAGE["pickle empty"](segment_name(db))
    index, repaired = open_repaired(db, ollama)
    with index:
        assert len(repaired) == 1
        assert index.count() == total
        for n in range(len(repeated)):  # every copy is still found through its own source
            (hit,) = index.search("同じ注意書き。", k=1, filter={"source": f"notice-{n}.md"})
            assert hit.page_content == "同じ注意書き。"
