"""add_files / sync on real folders: reports, incremental sync, metadata, bad files."""

from __future__ import annotations

from pathlib import Path

import pytest

from ollama_rag import IngestReport, RagIndex
from ollama_rag.testing import LocalOllama

pytestmark = pytest.mark.usefixtures("store_kind")

FUJI = (
    "# 富士山\n\n富士山は日本で一番高い山です。標高は3776メートルです。\n\n"
    "## 登山\n\n夏には多くの人が登ります。"
)
TEA = "中国茶有很多种类，例如绿茶、红茶和乌龙茶。喝茶是中国人的日常习惯。"
BIKE = "<html><head><title>Bicycles</title><script>alert(1)</script></head>"
BIKE += "<body><p>The bicycle was invented in 1817.</p><p>Pedals came later.</p></body></html>"


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    root = tmp_path / "docs"
    (root / "ja").mkdir(parents=True)
    (root / "ja" / "fuji.md").write_text(FUJI, encoding="utf-8")
    (root / "tea.txt").write_bytes(TEA.encode("gb18030"))
    (root / "bike.html").write_text(BIKE, encoding="utf-8")
    (root / "image.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)))
    (root / "empty.txt").write_text("", encoding="utf-8")
    (root / ".git").mkdir()
    (root / ".git" / "HEAD").write_text("ref: refs/heads/main", encoding="utf-8")
    return root


def open_index(tmp_path: Path, server: LocalOllama) -> RagIndex:
    return RagIndex(tmp_path / "db", model="bge-m3", base_url=server.url, chunk_size=40)


def test_add_folder_reports_and_indexes_with_metadata(
    tmp_path: Path, corpus: Path, ollama: LocalOllama
) -> None:
    with open_index(tmp_path, ollama) as index:
        report = index.add_files(corpus, progress=False)
        metas = index.vectorstore.get(include=["metadatas", "documents"])

    assert isinstance(report, IngestReport)
    assert report.files_added == 3
    assert report.files_failed == 0
    assert dict(report.skipped).keys() == {"image.png", "empty.txt"}
    assert report.chunks_embedded == len(metas["ids"])
    assert report.embedding_requests >= 1
    by_source: dict[str, list[dict[str, object]]] = {}
    for meta in metas["metadatas"]:
        by_source.setdefault(str(meta["source"]), []).append(meta)
    assert set(by_source) == {"ja/fuji.md", "tea.txt", "bike.html"}
    assert {m["encoding"] for m in by_source["tea.txt"]} <= {"gb18030", "gbk", "gb2312"}
    assert any(m.get("heading") == "富士山 > 登山" for m in by_source["ja/fuji.md"])
    assert by_source["bike.html"][0]["title"] == "Bicycles"
    assert not any("alert" in d for d in metas["documents"])
    for meta in by_source["ja/fuji.md"]:
        assert {"chunk_index", "start_index", "end_index", "content_hash"} <= meta.keys()
    assert "Bicycles" in str(report) or "3 added" in str(report)


def test_unchanged_files_cost_nothing_and_changes_replace_exactly_their_chunks(
    tmp_path: Path, corpus: Path, ollama: LocalOllama
) -> None:
    with open_index(tmp_path, ollama) as index:
        index.add_files(corpus, progress=False)
        tea_ids = index.vectorstore.get(where={"source": "tea.txt"})["ids"]
        ollama.reset_counters()
        again = index.add_files(corpus, progress=False)
        assert again.files_unchanged == 3
        assert again.embedding_requests == 0
        assert ollama.request_count("bge-m3") == 0

        new_text = FUJI + "\n\n冬は雪に覆われます。"
        (corpus / "ja" / "fuji.md").write_text(new_text, encoding="utf-8")
        changed = index.add_files(corpus, progress=False)
        assert changed.files_updated == 1
        assert changed.files_unchanged == 2
        new_chunks = index.splitter.split_text(new_text)
        fresh = [c for c in new_chunks if c not in index.splitter.split_text(FUJI)]
        assert ollama.received("bge-m3") == fresh  # only the changed chunk is embedded
        assert index.vectorstore.get(where={"source": "ja/fuji.md"})["documents"] == new_chunks
        assert index.vectorstore.get(where={"source": "tea.txt"})["ids"] == tea_ids


def test_sync_deletes_chunks_of_files_that_disappeared(
    tmp_path: Path, corpus: Path, ollama: LocalOllama
) -> None:
    with open_index(tmp_path, ollama) as index:
        index.add_files(corpus, progress=False)
        index.add_texts(["手で追加した文章です。"], source="manual")
        (corpus / "tea.txt").unlink()
        report = index.sync(corpus, progress=False)
        sources = {m["source"] for m in index.vectorstore.get(include=["metadatas"])["metadatas"]}
    assert report.files_deleted == 1
    assert sources == {"ja/fuji.md", "bike.html", "manual"}


def test_a_file_given_directly_uses_its_name_as_source(
    tmp_path: Path, corpus: Path, ollama: LocalOllama
) -> None:
    with open_index(tmp_path, ollama) as index:
        report = index.add_files(corpus / "ja" / "fuji.md", progress=False)
        sources = {m["source"] for m in index.vectorstore.get(include=["metadatas"])["metadatas"]}
    assert report.files_added == 1
    assert sources == {"fuji.md"}


@pytest.mark.reliability
def test_undecodable_file_is_reported_by_name_and_others_still_indexed(
    tmp_path: Path, corpus: Path, ollama: LocalOllama
) -> None:
    (corpus / "broken.txt").write_bytes(b"\x81\xff\xfe\x80" * 50)
    with open_index(tmp_path, ollama) as index:
        report = index.add_files(corpus, progress=False)
    problems = dict(report.failed) | dict(report.skipped)
    assert "broken.txt" in problems
    assert report.files_added == 3


def test_missing_path_is_a_clear_error(tmp_path: Path, ollama: LocalOllama) -> None:
    from ollama_rag import DocumentLoadError

    with open_index(tmp_path, ollama) as index, pytest.raises(DocumentLoadError, match="nope"):
        index.add_files(tmp_path / "nope")


def test_progress_bar_is_shown_for_large_jobs(
    tmp_path: Path, ollama: LocalOllama, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "many"
    folder.mkdir()
    for i in range(25):
        (folder / f"{i}.txt").write_text(f"文書{i}です。", encoding="utf-8")
    with open_index(tmp_path, ollama) as index:
        index.add_files(folder)
        assert "25/25" in capsys.readouterr().err
        index.add_files(folder, progress=False)
        assert capsys.readouterr().err == ""


@pytest.mark.reliability
def test_same_relative_path_in_two_folders_is_refused_not_overwritten(
    tmp_path: Path, ollama: LocalOllama
) -> None:
    for project in ("projA", "projB"):
        (tmp_path / project).mkdir()
        (tmp_path / project / "README.md").write_text(f"{project} の説明です。", encoding="utf-8")
    with open_index(tmp_path, ollama) as index:
        both = index.add_files([tmp_path / "projA", tmp_path / "projB"], progress=False)
        alone = index.add_files(tmp_path / "projB", progress=False)
        stored = index.vectorstore.get(include=["documents"])["documents"]
    assert both.files_added == 1
    assert both.files_failed == 1
    assert "same source name" in both.failed[0][1]
    assert "common parent folder" in both.failed[0][1]
    assert alone.files_failed == 1  # projB alone would still replace projA's file
    assert stored == ["projA の説明です。"]


def test_a_moved_folder_replaces_its_old_copy(tmp_path: Path, ollama: LocalOllama) -> None:
    old = tmp_path / "old"
    old.mkdir()
    (old / "a.txt").write_text("移動する前の文書です。", encoding="utf-8")
    with open_index(tmp_path, ollama) as index:
        index.add_files(old, progress=False)
        new = old.rename(tmp_path / "new")
        report = index.add_files(new, progress=False)
        roots = {m["root"] for m in index.vectorstore.get(include=["metadatas"])["metadatas"]}
    assert report.files_failed == 0
    assert roots == {new.resolve().as_posix()}


def test_re_running_with_an_encoding_fixes_a_file(tmp_path: Path, ollama: LocalOllama) -> None:
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "a.txt").write_bytes("ＦＵＪＩ山".encode())
    with open_index(tmp_path, ollama) as index:
        index.add_files(folder, progress=False)
        report = index.add_files(folder, progress=False, normalize=True)
        stored = index.vectorstore.get(include=["documents"])["documents"]
    assert report.files_updated == 1
    assert stored == ["FUJI山"]
