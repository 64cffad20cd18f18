"""Processes against one index: fork()ed children, and what a refused process is told.

Real processes throughout (multiprocessing with the ``fork`` start method, subprocesses);
``docs/reliability.md`` lists these scenarios with the others.
"""

from __future__ import annotations

import json
import multiprocessing
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from ollama_rag import (
    IndexForkedError,
    IndexLockedError,
    IndexNotFoundError,
    IndexReadOnlyError,
    RagIndex,
)
from ollama_rag.storage.lock import OWNER_FILE
from ollama_rag.testing import LocalOllama

pytestmark = [pytest.mark.reliability, pytest.mark.usefixtures("store_kind")]

TEXTS = [f"第{i}章。富士山は日本で一番高い山で、標高は3776メートルです。" for i in range(3)]


def _use_in_child(index: RagIndex, how: str, answers: Any) -> None:
    try:
        if how == "search":
            index.search("富士山", k=1)
        elif how == "retriever":
            index.as_retriever().invoke("富士山")
        else:
            index.add_texts(["子プロセスの文章。"])
        answers.put(("no error", ""))
    except IndexForkedError as err:
        answers.put((type(err).__name__, str(err)))
    except Exception as err:  # reported, so the assertion shows what happened instead
        answers.put((type(err).__name__, str(err)))


@pytest.mark.skipif(sys.platform == "win32", reason="fork() exists on POSIX only")
@pytest.mark.parametrize("how", ["search", "retriever", "add"])
def test_an_index_used_in_a_forked_child_is_refused_not_hung(
    tmp_path: Path, ollama: LocalOllama, how: str
) -> None:
    with RagIndex(tmp_path / "db", model="bge-m3", base_url=ollama.url) as index:
        index.add_texts(TEXTS, source="fuji.md")
        context = multiprocessing.get_context("fork")
        answers = context.Queue()
        child = context.Process(target=_use_in_child, args=(index, how, answers))
        child.start()
        child.join(timeout=60)
        hung = child.is_alive()
        if hung:
            child.kill()
        assert not hung, "the forked child hung on its first call"
        assert child.exitcode == 0
        kind, message = answers.get(timeout=5)
        assert kind == "IndexForkedError"
        assert f"opened in process {index._store._pid}" in message
        assert f"process {child.pid}" in message
        assert "get_context('spawn')" in message
        # The parent is untouched by its child's attempt.
        assert index.search("富士山", k=1)[0].metadata["source"] == "fuji.md"
        assert index.count() == len(TEXTS)


HOLDER = """
import sys
from ollama_rag import RagIndex
index = RagIndex(sys.argv[1], model="bge-m3", base_url=sys.argv[2])
texts = [f"第{i}段落。長い取り込みの途中です。" for i in range(40)]
print("writing", flush=True)
index.add_texts(texts, source="long.md")
print("done", flush=True)
sys.stdin.read()
index.close()
"""


def test_a_refused_process_is_told_what_the_holder_is_doing(
    tmp_path: Path, fresh_ollama: LocalOllama
) -> None:
    db = tmp_path / "db"
    RagIndex(db, model="bge-m3", base_url=fresh_ollama.url).close()
    fresh_ollama.pause()  # the ingest waits for its answers until the refusal has been seen
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(db), fresh_ollama.url],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "writing"
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:  # the note is written as the ingest starts
            owner = json.loads((db / OWNER_FILE).read_text(encoding="utf-8"))
            if owner.get("doing"):
                break
            time.sleep(0.05)
        with pytest.raises(IndexLockedError) as busy:
            RagIndex(db, base_url=fresh_ollama.url)
        assert f"pid {holder.pid}" in str(busy.value)
        assert "adding texts since" in str(busy.value)
        fresh_ollama.resume()
        assert holder.stdout.readline().strip() == "done"
        with pytest.raises(IndexLockedError) as idle:
            RagIndex(db, base_url=fresh_ollama.url)
        assert f"pid {holder.pid}" in str(idle.value)
        assert ", idle." in str(idle.value)
    finally:
        fresh_ollama.resume()
        holder.communicate("\n", timeout=60)
    assert holder.returncode == 0
    with RagIndex(db, base_url=fresh_ollama.url) as index:
        assert index.count() == 40


def _open_in_child(parent_db: Path, other_db: Path, url: str, answers: Any) -> None:
    try:
        RagIndex(parent_db, base_url=url)
        answers.put(("parent's index", "opened: the lock did not hold"))
    except IndexLockedError as err:
        answers.put(("parent's index", str(err)))
    with RagIndex(other_db, model="bge-m3", base_url=url) as own:  # a new client works
        own.add_texts(["子プロセスの索引。"], source="child.md")
        answers.put(("own index", str(own.count())))


@pytest.mark.skipif(sys.platform == "win32", reason="fork() exists on POSIX only")
def test_a_forked_child_can_open_indexes_itself_and_the_parent_keeps_its_lock(
    tmp_path: Path, ollama: LocalOllama
) -> None:
    db, other = tmp_path / "db", tmp_path / "other"
    with RagIndex(db, model="bge-m3", base_url=ollama.url) as index:
        index.add_texts(TEXTS, source="fuji.md")
        context = multiprocessing.get_context("fork")
        answers = context.Queue()
        child = context.Process(target=_open_in_child, args=(db, other, ollama.url, answers))
        child.start()
        child.join(timeout=60)
        hung = child.is_alive()
        if hung:
            child.kill()
        assert not hung
        assert child.exitcode == 0
        got = dict(answers.get(timeout=5) for _ in range(2))
        assert "is open for writing by pid" in got["parent's index"]
        assert got["own index"] == "1"
        # The child's exit took neither the parent's lock nor its owner record.
        assert (db / OWNER_FILE).exists()
        probe = subprocess.run(
            [sys.executable, "-c", OPENER, str(db), ollama.url],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert "IndexLockedError" in probe.stdout
        assert index.count() == len(TEXTS)


OPENER = """
import sys
from ollama_rag import IndexLockedError, RagIndex
try:
    RagIndex(sys.argv[1], base_url=sys.argv[2]).close()
    print("opened")
except IndexLockedError:
    print("IndexLockedError")
"""

FORKER = """
import os, sys
from ollama_rag import IndexForkedError, RagIndex
index = RagIndex(sys.argv[1], model="bge-m3", base_url=sys.argv[2])
index.add_texts(["富士山は日本で一番高い山です。"], source="fuji.md")
pid = os.fork()
if pid == 0:
    try:
        index.search("富士山")
        print("child: no error", flush=True)
    except IndexForkedError:
        print("child: refused", flush=True)
    sys.exit(0)  # a normal exit: finalisers run, which used to block forever
_, status = os.waitpid(pid, 0)
print("parent: child exit", os.waitstatus_to_exitcode(status), flush=True)
print("parent: count", index.count(), flush=True)
index.close()
"""


@pytest.mark.skipif(sys.platform == "win32", reason="fork() exists on POSIX only")
def test_a_plain_fork_child_exits_normally(tmp_path: Path, ollama: LocalOllama) -> None:
    done = subprocess.run(
        [sys.executable, "-c", FORKER, str(tmp_path / "db"), ollama.url],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "child: refused",
        "parent: child exit 0",
        "parent: count 1",
    ]


READER = """
import json, sys, time
from ollama_rag import IndexReadOnlyError, RagIndex
seen = []
deadline = time.monotonic() + 120
while time.monotonic() < deadline:
    with RagIndex(sys.argv[1], base_url=sys.argv[2], read_only=True) as index:
        hits = index.search("富士山", k=3)
        seen.append(index.count())
        try:
            index.add_texts(["読み取り専用への書き込み。"])
            print("written", flush=True)
        except IndexReadOnlyError:
            pass
    if sys.stdin.readline().strip() == "stop":
        break
print(json.dumps(seen), flush=True)
"""


def test_read_only_opens_search_while_another_process_ingests(
    tmp_path: Path, fresh_ollama: LocalOllama
) -> None:
    db = tmp_path / "db"
    with RagIndex(db, model="bge-m3", base_url=fresh_ollama.url) as index:
        index.add_texts(TEXTS, source="fuji.md")
    fresh_ollama.set_delay(per_input=0.01)
    with RagIndex(db, base_url=fresh_ollama.url) as writer:
        reader = subprocess.Popen(
            [sys.executable, "-c", READER, str(db), fresh_ollama.url],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert reader.stdin is not None
        try:
            for batch in range(6):  # writes in progress while the reader opens snapshots
                writer.add_texts(
                    [f"第{batch}回の追加、{i}番目の文。" for i in range(60)], source=f"b{batch}.md"
                )
                reader.stdin.write("go\n")
                reader.stdin.flush()
            reader.stdin.write("stop\n")
            reader.stdin.flush()
            out, err = reader.communicate(timeout=180)
        finally:
            if reader.poll() is None:
                reader.kill()
        assert reader.returncode == 0, err
        assert "written" not in out
        seen = json.loads(out.splitlines()[-1])
        # Every snapshot opened and answered; each saw at least what was there before.
        assert len(seen) == 7
        assert seen == sorted(seen)
        assert len(TEXTS) <= seen[0]
        assert seen[-1] <= len(TEXTS) + 6 * 60
        assert writer.count() == len(TEXTS) + 6 * 60
    with RagIndex(db, base_url=fresh_ollama.url) as after:  # the writer's index is sound
        assert after.count() == len(TEXTS) + 6 * 60
        assert after.search("第5回の追加、59番目の文。", k=1)[0].metadata["source"] == "b5.md"


def test_read_only_refuses_writes_and_creates_nothing(tmp_path: Path, ollama: LocalOllama) -> None:
    missing = tmp_path / "missing"
    with pytest.raises(IndexNotFoundError, match=r"\(without read_only=True\)"):
        RagIndex(missing, model="bge-m3", base_url=ollama.url, read_only=True)
    assert not missing.exists()
    db = tmp_path / "db"
    with RagIndex(db, model="bge-m3", base_url=ollama.url) as index:
        index.add_texts(TEXTS, source="fuji.md")
    with RagIndex(db, base_url=ollama.url, read_only=True) as reader:
        with pytest.raises(IndexReadOnlyError, match="open it without read_only"):
            reader.add_texts(["書き込み"])
        with pytest.raises(IndexReadOnlyError):
            reader.delete(source="fuji.md")
        with pytest.raises(IndexReadOnlyError):
            reader.vectorstore.add_texts(["書き込み"])
        assert reader.count() == len(TEXTS)
        # A writer may open the directory while the reader has it open.
        with RagIndex(db, base_url=ollama.url) as writer:
            writer.add_texts(["後から追加。"], source="later.md")
        assert reader.count() == len(TEXTS)  # a snapshot: later writes are not seen
    with RagIndex(db, base_url=ollama.url, read_only=True) as again:
        assert again.count() == len(TEXTS) + 1
