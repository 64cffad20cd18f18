"""What the one ingestion pipeline does when things fail, whichever entry point feeds it."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from pytest_mock import MockerFixture

from ollama_rag import OllamaError, RagIndex
from ollama_rag.fusion import Calibration
from ollama_rag.testing import LocalOllama


def story(i: int) -> str:
    return "".join(f"第{i}巻第{j}節では、地域の歴史と文化について説明する。" for j in range(6))


def write_folder(folder: Path, files: int) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(files):
        (folder / f"doc{i:02d}.txt").write_text(story(i), encoding="utf-8")
    return folder


def complete_sources(index: RagIndex) -> set[str]:
    firsts = index.vectorstore.get(where={"chunk_index": 0}, include=["metadatas"])
    return {str(m["source"]) for m in firsts["metadatas"] if "complete_hash" in m}


@pytest.mark.parametrize("entry", ["add_files", "add_texts", "aadd_texts"])
def test_a_batch_that_fails_for_good_keeps_the_work_of_the_others(
    tmp_path: Path, fresh_ollama: LocalOllama, entry: str
) -> None:
    folder = write_folder(tmp_path / "docs", 12)
    texts = [story(i) for i in range(12)]
    with RagIndex(
        tmp_path / "db",
        model="bge-m3",
        base_url=fresh_ollama.url,
        chunk_size=40,
        batch_size=4,
        retries=0,
    ) as index:

        def ingest() -> Any:
            if entry == "add_files":
                return index.add_files(folder, progress=False)
            if entry == "aadd_texts":
                return asyncio.run(index.aadd_texts(texts))
            return index.add_texts(texts)

        fresh_ollama.fail_next(1, status=500)
        with pytest.raises(OllamaError, match="status 500"):
            ingest()
        kept = complete_sources(index)
        assert kept  # the queued batches still ran, and the sources they completed were kept
        total = len(index.vectorstore.get(include=[])["ids"])
        fresh_ollama.reset_counters()
        ingest()  # the re-run embeds only what is missing
        calibration = Calibration.from_text(index.manifest.fusion)
        queries = calibration.queries if calibration is not None else 0  # after the re-run only
        embedded = len(fresh_ollama.received("bge-m3")) - queries
        assert len(complete_sources(index)) == 12
        assert embedded == index.count() - total
        assert embedded < index.count()


def test_a_store_write_that_fails_leaves_sources_unmarked_and_a_rerun_completes_them(
    tmp_path: Path, ollama: LocalOllama, mocker: MockerFixture
) -> None:
    folder = write_folder(tmp_path / "docs", 8)
    with RagIndex(tmp_path / "db", model="bge-m3", base_url=ollama.url, chunk_size=40) as index:
        store = index._store
        real_write = store.write
        calls = {"n": 0}

        def failing_disk(group: Any) -> None:
            # A full disk under Chroma cannot be produced here for real; the second write fails.
            calls["n"] += 1
            if calls["n"] == 2:
                raise OSError(28, "No space left on device")
            real_write(group)

        mocker.patch.object(store, "write", side_effect=failing_disk)
        mocker.patch("ollama_rag.ingest.pipeline.FLUSH_ROWS", 8)  # several writes for 8 files
        with pytest.raises(OSError, match="No space left"):
            index.add_files(folder, progress=False)
        mocker.stopall()
        marked = complete_sources(index)
        assert 0 < len(marked) < 8
        report = index.add_files(folder, progress=False)
    assert report.files_unchanged == len(marked)
    assert report.files_added + report.files_updated == 8 - len(marked)


def test_finished_sources_are_written_while_slow_batches_are_still_running(
    tmp_path: Path, fresh_ollama: LocalOllama
) -> None:
    texts = [story(i) for i in range(6)]
    fresh_ollama.set_delay(per_request=0.3)
    with RagIndex(
        tmp_path, model="bge-m3", base_url=fresh_ollama.url, chunk_size=1000, batch_size=4
    ) as index:
        done = threading.Event()
        seen_during_run: list[int] = []

        def run() -> None:
            try:
                index.add_texts(texts)
            finally:
                done.set()

        worker = threading.Thread(target=run)
        worker.start()
        while not done.is_set():
            seen_during_run.append(index.count())
            time.sleep(0.05)
        worker.join()
        assert index.count() == 6
    # Sources were stored one by one as their batches came back, not all at the end.
    assert any(0 < n < 6 for n in seen_during_run)


def test_close_refuses_new_calls_at_once_but_lets_a_running_write_finish(
    tmp_path: Path, fresh_ollama: LocalOllama
) -> None:
    from ollama_rag import IndexClosedError

    texts = [story(i) for i in range(6)]
    fresh_ollama.set_delay(per_request=0.2)
    index = RagIndex(tmp_path, model="bge-m3", base_url=fresh_ollama.url, batch_size=2)
    errors: list[BaseException] = []

    def write() -> None:
        try:
            index.add_texts(texts)
        except BaseException as err:  # reported to the test thread
            errors.append(err)

    worker = threading.Thread(target=write)
    worker.start()
    while not fresh_ollama.request_count("bge-m3"):
        time.sleep(0.01)
    index.close()  # returns only once the write in the other thread is done
    assert not worker.is_alive()
    worker.join()
    assert errors == []
    with pytest.raises(IndexClosedError, match="closed"):
        index.add_texts(["もう一つ。"])
    with pytest.raises(IndexClosedError, match="closed"):
        index.search("歴史")
    fresh_ollama.reset()
    with RagIndex(tmp_path, base_url=fresh_ollama.url) as again:
        assert len(complete_sources(again)) == 6


def test_a_long_source_is_written_as_it_is_embedded_and_committed_last(
    tmp_path: Path, fresh_ollama: LocalOllama, monkeypatch: pytest.MonkeyPatch
) -> None:
    import ollama_rag.ingest.pipeline as pipeline

    monkeypatch.setattr(pipeline, "FLUSH_ROWS", 8)  # a "long" source is 8 chunks here
    text = "".join(story(i) for i in range(8))
    with RagIndex(
        tmp_path, model="bge-m3", base_url=fresh_ollama.url, chunk_size=40, batch_size=4
    ) as index:
        index.add_texts([text], source="big.txt")
        total = index.count()
        assert total > 24
        # Rewrite it (every chunk changed) on a slow server, watching from another thread.
        fresh_ollama.set_delay(per_request=0.15)
        changed = text.replace("巻", "冊")
        done = threading.Event()
        seen: list[tuple[int, bool, int]] = []

        def rewrite() -> None:
            try:
                index.add_texts([changed], source="big.txt")
            finally:
                done.set()

        worker = threading.Thread(target=rewrite)
        worker.start()
        while not done.is_set():
            # The count on both sides of the marker: the write can move on between two reads
            # (the old marker still set as the first batch lands, or the commit ending just
            # after a count), so a state is only taken as seen when both counts agree with it.
            before = index.count()
            marked = "big.txt" in complete_sources(index)
            seen.append((before, marked, index.count()))
            time.sleep(0.02)
        worker.join()
        stored = index.vectorstore.get(where={"source": "big.txt"}, include=["documents"])
        firsts = complete_sources(index)
    # While the new chunks were being written the source was never taken for complete...
    assert any(min(a, b) > total and not marked for a, marked, b in seen)
    assert not any(min(a, b) > total and marked for a, marked, b in seen)
    # ...and once committed it holds exactly its new chunks, marked.
    assert "big.txt" in firsts
    assert sorted(stored["documents"]) == sorted(index.splitter.split_text(changed))
