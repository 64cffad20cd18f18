"""Odd files are indexed or reported, never fatal, never silent, never opened when they could hang.

Everything here is real: named pipes from ``os.mkfifo``, a socket bound on a path, a device node
from ``os.mknod`` (a symlink to ``/dev/null`` where that is not allowed), symlink loops, file
names that are not UTF-8, and a folder that cannot be listed. Tests run as root, where
``chmod 000`` does not stop reading, so the unlistable folder is one whose absolute path is
longer than the kernel's ``PATH_MAX``: ``scandir`` refuses it with ``ENAMETOOLONG`` whoever asks.
"""

from __future__ import annotations

import codecs
import doctest
import os
import re
import shutil
import socket
import stat
import sys
from pathlib import Path
from typing import Any

import pytest
from pytest_mock import MockerFixture

from ollama_rag import ConfigError, DocumentLoadError, RagIndex
from ollama_rag.loading import (
    classify,
    discover,
    escape_name,
    read_bytes,
    read_document,
    unescape_name,
)
from ollama_rag.loading import discovery as discovery_module
from ollama_rag.loading import encoding as encoding_module
from ollama_rag.loading.discovery import NAME_CLASH_MESSAGE
from ollama_rag.loading.encoding import find_surrogate
from ollama_rag.testing import LocalOllama

pytestmark = [
    pytest.mark.reliability,
    pytest.mark.skipif(
        sys.platform == "win32", reason="pipes, sockets, devices and byte file names are POSIX"
    ),
]

FUJI = "富士山は日本で一番高い山です。"
NILE = "ナイル川は世界で最も長い川の一つです。"
# Kanji, kana and 、。 only: in UTF-16 without a byte order mark there is no NUL byte to
# recognise it by, and 、。 give control bytes, so detection calls it binary.
UTF16_TEXT = "東京は日本の首都です、人口は約千四百万人です。富士山は静岡と山梨にあります。"


def open_index(tmp_path: Path, server: LocalOllama) -> RagIndex:
    return RagIndex(tmp_path / "db", model="bge-m3", base_url=server.url, chunk_size=40)


def stored(index: RagIndex) -> dict[str, list[str]]:
    got = index.vectorstore.get(include=["metadatas", "documents"])
    by_source: dict[str, list[str]] = {}
    for meta, doc in zip(got["metadatas"], got["documents"], strict=True):
        by_source.setdefault(str(meta["source"]), []).append(doc)
    return by_source


def bytes_path(folder: Path, name: bytes) -> Path:
    """A path whose last part is the raw bytes ``name`` (as Python spells undecodable bytes)."""
    return folder / os.fsdecode(name)


def make_device(path: Path) -> str:
    """A character device node like /dev/null at ``path``; the reason it should be skipped."""
    try:
        os.mknod(path, 0o644 | stat.S_IFCHR, os.makedev(1, 3))
    except PermissionError:  # not root: a link to the real one
        path.symlink_to("/dev/null")
        return "symlink to a character device, not a regular file"
    return "character device, not a regular file"


def make_unlistable_folder(parent: Path) -> str:
    """Folders nested until one's absolute path is over PATH_MAX; return its relative path."""
    name = "d" * 250
    fd = os.open(parent, os.O_RDONLY | os.O_DIRECTORY)
    length, parts = len(os.fsencode(parent.resolve())), []
    try:
        while length <= 4096:
            os.mkdir(name, dir_fd=fd)
            inner = os.open(name, os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
            os.close(fd)
            fd, length = inner, length + 1 + len(name)
            parts.append(name)
    finally:
        os.close(fd)
    return "/".join(parts)


@pytest.mark.timeout(60)  # a named pipe that was opened would block until then
def test_every_entry_that_is_not_indexed_is_reported_with_its_reason(
    tmp_path: Path, ollama: LocalOllama, monkeypatch: pytest.MonkeyPatch
) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "a.txt").write_text(FUJI, encoding="utf-8")
    os.mkfifo(docs / "pipe.txt")
    monkeypatch.chdir(docs)  # AF_UNIX paths are limited to ~108 bytes: bind a short one
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind("sock.md")
    device_reason = make_device(docs / "null.txt")
    (docs / "0alias.txt").symlink_to(docs / "a.txt")  # sorts first, still not the indexed name
    (docs / "broken.txt").symlink_to(docs / "missing.txt")
    (docs / "ping.txt").symlink_to(docs / "pong.txt")
    (docs / "pong.txt").symlink_to(docs / "ping.txt")
    (docs / "up").symlink_to(docs, target_is_directory=True)
    (docs / "deep").mkdir()
    unlistable = "deep/" + make_unlistable_folder(docs / "deep")
    loop = "symlink loop: following it never reaches a file or folder"

    with open_index(tmp_path, ollama) as index:
        report = index.add_files(docs, progress=False)
        again = index.add_files(docs, progress=False)
        chunks = stored(index)

    assert chunks == {"a.txt": [FUJI]}
    assert report.files_added == 1
    assert dict(report.skipped) == {
        "0alias.txt": "same file as a.txt, indexed under that name",
        "broken.txt": f"broken symlink: its target {docs / 'missing.txt'} does not exist",
        "null.txt": device_reason,
        "ping.txt": loop,
        "pipe.txt": "named pipe (FIFO), not a regular file",
        "pong.txt": loop,
        "sock.md": "socket, not a regular file",
        "up": f"symlink loop: it points to {docs.resolve().as_posix()}, a folder it is in",
    }
    # A folder whose files could not even be found is a failure: the CLI exits with 1.
    assert report.files_failed == 1
    ((source, reason),) = report.failed
    assert source == unlistable
    assert "cannot be listed (File name too long)" in reason
    assert reason.endswith("or leave it out with exclude=")
    # Nothing changes on a second run: the same report, nothing embedded.
    assert (again.files_unchanged, again.embedding_requests) == (1, 0)
    assert again.skipped == report.skipped
    assert again.failed == report.failed
    shutil.rmtree(docs / "deep")  # fd-based, so the too-long path is no obstacle


def test_a_file_reached_by_several_paths_is_indexed_once_under_its_own_name(
    tmp_path: Path, ollama: LocalOllama
) -> None:
    outside = tmp_path / "outside"
    (outside / "nested").mkdir(parents=True)
    (outside / "nested" / "nile.txt").write_text(NILE, encoding="utf-8")
    docs = tmp_path / "docs"
    (docs / "sub").mkdir(parents=True)
    (docs / "sub" / "fuji.txt").write_text(FUJI, encoding="utf-8")
    (docs / "a_link").symlink_to(docs / "sub", target_is_directory=True)  # walked before sub/
    (docs / "ext").symlink_to(outside, target_is_directory=True)
    (docs / "ext2").symlink_to(outside / "nested", target_is_directory=True)

    with open_index(tmp_path, ollama) as index:
        report = index.add_files(docs, progress=False)
        chunks = stored(index)

    # Inside the folder the path without links wins; outside it the first in walk order.
    assert chunks == {"sub/fuji.txt": [FUJI], "ext/nested/nile.txt": [NILE]}
    assert dict(report.skipped) == {
        "a_link": "same folder as sub, indexed under that name",
        "ext2": "same folder as ext/nested, indexed under that name",
    }
    assert report.files_added == 2


def test_names_that_are_not_utf8_are_indexed_escaped_and_synced(
    tmp_path: Path, ollama: LocalOllama
) -> None:
    docs = bytes_path(tmp_path, b"r\xe9sum\xe9s")  # the folder added is not UTF-8 either
    docs.mkdir()
    bytes_path(docs, b"caf\xe9.txt").write_text(FUJI, encoding="utf-8")
    sub = bytes_path(docs, b"\xff\xfe")
    sub.mkdir()
    (sub / "日本.txt").write_text(NILE, encoding="utf-8")
    root = escape_name(docs.resolve().as_posix())
    assert "\\xe9" in root  # the name really is not UTF-8

    with open_index(tmp_path, ollama) as index:
        first = index.add_files(docs, progress=False)
        metas = index.vectorstore.get(include=["metadatas"])["metadatas"]
        for meta in metas:  # every stored string is valid Unicode, and maps back to the file
            assert all(str(v).encode("utf-8") for v in meta.values())
            assert (Path(unescape_name(root)) / unescape_name(str(meta["source"]))).exists()
        ollama.reset_counters()
        again = index.sync(docs, progress=False)
        assert (again.files_unchanged, again.embedding_requests) == (2, 0)
        bytes_path(docs, b"caf\xe9.txt").unlink()
        gone = index.sync(docs, progress=False)
        left = stored(index)

    assert (first.files_added, first.failed, first.skipped) == (2, [], [])
    assert {m["source"] for m in metas} == {"caf\\xe9.txt", "\\xff\\xfe/日本.txt"}
    assert {m["root"] for m in metas} == {root}
    assert gone.files_deleted == 1
    assert left == {"\\xff\\xfe/日本.txt": [NILE]}


def test_a_name_that_escapes_to_another_files_name_is_reported_not_overwritten(
    tmp_path: Path, ollama: LocalOllama
) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "\\xff.txt").write_text(FUJI, encoding="utf-8")  # a real backslash in the name
    bytes_path(docs, b"\xff.txt").write_text(NILE, encoding="utf-8")

    with open_index(tmp_path, ollama) as index:
        report = index.add_files(docs, progress=False)
        chunks = stored(index)

    assert chunks == {"\\xff.txt": [FUJI]}
    root = docs.resolve().as_posix()
    assert report.failed == [
        ("\\xff.txt", NAME_CLASH_MESSAGE.format(source="\\xff.txt", root=root))
    ]


def test_an_explicit_encoding_is_honoured_before_the_binary_sniff(
    tmp_path: Path, ollama: LocalOllama
) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "tokyo.txt").write_bytes(UTF16_TEXT.encode("utf-16-le"))  # no byte order mark
    (docs / "image.txt").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(64))  # still binary

    with open_index(tmp_path, ollama) as index:
        guessed = index.add_files(docs, progress=False)
        told = index.add_files(docs, progress=False, encoding="utf-16-le")
        got = index.vectorstore.get(include=["metadatas", "documents"])

    assert dict(guessed.skipped) == {"tokyo.txt": "binary file", "image.txt": "binary file"}
    assert told.files_added == 1
    assert dict(told.skipped) == {"image.txt": "binary file (a NUL character at offset 4)"}
    assert "".join(got["documents"]) == UTF16_TEXT
    assert {m["encoding"] for m in got["metadatas"]} == {"utf-16-le"}


NUL_RULE_CASES = [
    # (name, bytes, encoding, reason): a NUL in the decoded text, wherever it is, is binary.
    ("late.txt", b"x" * 9000 + b"\x00tail", None, "binary file (a NUL byte at offset 9000)"),
    ("early.md", b"# t\x00itle\n", None, "binary file"),
    ("bom.txt", codecs.BOM_UTF16_LE + ("x" * 9000 + "\x00y").encode("utf-16-le"), None,
     "binary file (a NUL character at offset 9000)"),
    ("forced.html", ("<p>" + "x" * 9000 + "\x00</p>").encode("utf-16-le"), "utf-16-le",
     "binary file (a NUL character at offset 9003)"),
    ("forced_ok.txt", UTF16_TEXT.encode("utf-16-be"), "utf-16-be", None),
    ("ctl.txt", ("\x01\x02\x03text" * 50).encode("utf-16-le"), "utf-16-le", "binary file"),
    ("undecodable.txt", b"\xff\xfe\xfd plain text", "utf-8", None),  # fails to decode instead
    ("blank.txt", " \n ".encode("utf-16-le"), "utf-16-le", "empty file"),
]  # fmt: skip


@pytest.mark.parametrize(("name", "data", "encoding", "reason"), NUL_RULE_CASES)
def test_the_binary_rule_is_on_the_decoded_text(
    tmp_path: Path, name: str, data: bytes, encoding: str | None, reason: str | None
) -> None:
    (tmp_path / name).write_bytes(data)
    (entry,) = discover(tmp_path)
    assert classify(entry, encoding=encoding) == reason
    if reason is not None:
        with pytest.raises(DocumentLoadError, match=re.escape(reason)):
            read_document(entry, encoding=encoding)


def test_no_nul_byte_reaches_the_index(tmp_path: Path, ollama: LocalOllama) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "ok.txt").write_text(FUJI, encoding="utf-8")
    (docs / "late.txt").write_bytes(FUJI.encode() * 1000 + b"\x00" + NILE.encode())
    with open_index(tmp_path, ollama) as index:
        report = index.add_files(docs, progress=False)
        documents = index.vectorstore.get(include=["documents"])["documents"]
    assert dict(report.skipped) == {"late.txt": "binary file (a NUL byte at offset 45000)"}
    assert documents == [FUJI]


def test_lone_surrogates_from_a_decoder_become_replacement_characters(
    tmp_path: Path, ollama: LocalOllama
) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    # UTF-7 can spell half a surrogate pair (+2DQ- is U+D834 alone), as a PDF's broken
    # character map can; a pair spelled in two halves (+2DQ-+3R4-) is joined.
    (docs / "seven.md").write_bytes(b"# Title +2DQ-\n\nalone +2DQ- pair +2DQ-+3R4-\n")
    with open_index(tmp_path, ollama) as index:
        report = index.add_files(docs, progress=False, encoding="utf-7")
        got = index.vectorstore.get(include=["metadatas", "documents"])
    assert report.files_added == 1
    text = "\n".join(got["documents"])
    assert "alone \ufffd pair \U0001d11e" in text
    assert find_surrogate(text) == -1
    assert {m.get("heading") for m in got["metadatas"]} == {"Title \ufffd"}


@pytest.mark.timeout(30)
def test_a_file_replaced_by_a_pipe_after_the_walk_is_not_opened(tmp_path: Path) -> None:
    path = tmp_path / "a.txt"
    path.write_text(FUJI, encoding="utf-8")
    (entry,) = discover(tmp_path)
    path.unlink()
    os.mkfifo(path)  # opening it for reading, blocking, would wait for a writer forever
    with pytest.raises(DocumentLoadError, match="not a regular file any more"):
        read_bytes(entry)


def test_entries_found_but_not_indexable_are_refused_without_being_opened(
    tmp_path: Path,
) -> None:
    os.mkfifo(tmp_path / "pipe.txt")
    (entry,) = discover(tmp_path)
    assert entry.skip_reason == "named pipe (FIFO), not a regular file"
    with pytest.raises(DocumentLoadError, match=r"^pipe\.txt: named pipe .* regular files can"):
        read_document(entry)


def test_escaping_names_round_trips() -> None:
    for raw in (b"caf\xe9.txt", b"\xff\xfe/\xe6\x97\xa5.md", "日本語.txt".encode(), b"plain"):
        name = os.fsdecode(raw)
        escaped = escape_name(name)
        escaped.encode("utf-8")  # always storable
        assert os.fsencode(unescape_name(escaped)) == raw
    assert escape_name("日本語.txt") == "日本語.txt"
    assert unescape_name("a\\x41.txt") == "a\\x41.txt"  # ASCII bytes are never escaped
    assert doctest.testmod(discovery_module).failed == 0
    assert doctest.testmod(encoding_module).failed == 0


def test_sync_keeps_the_chunks_of_a_folder_it_could_not_list(
    tmp_path: Path, ollama: LocalOllama, mocker: MockerFixture
) -> None:
    # Losing the right to list a folder (chmod 000) cannot be produced as root, where these
    # tests run, so scandir refuses that one folder instead.
    docs = tmp_path / "docs"
    (docs / "kept").mkdir(parents=True)
    (docs / "kept" / "a.txt").write_text(FUJI, encoding="utf-8")
    (docs / "b.txt").write_text(FUJI + "\n\n二つ目。", encoding="utf-8")
    real_scandir = os.scandir

    def scandir(path: Any) -> Any:
        if Path(path).name == "kept":
            raise PermissionError(13, "Permission denied", str(path))
        return real_scandir(path)

    with open_index(tmp_path, ollama) as index:
        index.add_files(docs, progress=False)
        mocker.patch.object(discovery_module.os, "scandir", side_effect=scandir)
        report = index.sync(docs, progress=False)
        sources = set(stored(index))

    assert report.files_deleted == 0
    assert [source for source, _ in report.failed] == ["kept"]
    assert "Permission denied" in report.failed[0][1]
    assert sources == {"kept/a.txt", "b.txt"}


def test_lone_surrogates_in_queries_filters_and_deletes_are_refused_by_name(
    tmp_path: Path, ollama: LocalOllama
) -> None:
    bad = os.fsdecode(b"caf\xe9.txt")  # what Python makes of an undecodable file name
    with open_index(tmp_path, ollama) as index:
        index.add_texts([FUJI], source="fuji.md")
        requests = ollama.request_count("bge-m3")
        with pytest.raises(
            ConfigError, match=r"the query contains a lone surrogate .* at offset 3"
        ):
            index.search(bad)
        with pytest.raises(ConfigError, match=r"filter= contains a lone surrogate"):
            index.search("富士山", filter={"source": bad})
        with pytest.raises(ConfigError, match=r"filter= contains a lone surrogate"):
            index.as_retriever(search_kwargs={"filter": {"source": {"$in": [bad]}}}).invoke("山")
        with pytest.raises(ConfigError, match=r"delete\(\) contains a lone surrogate"):
            index.delete(source=bad)
        with pytest.raises(ConfigError, match=r"delete\(\) contains a lone surrogate"):
            index.delete(ids=[bad])
        assert ollama.request_count("bge-m3") == requests  # refused before anything was sent
        assert index.count() == 1
