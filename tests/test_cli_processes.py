"""The ollama-rag command as real processes: Ctrl-C, a second process, a terminal.

Each test runs ``python -m ollama_rag`` in a new process against a LocalOllama of its own,
slowed down so that there is time to interrupt it or to run another command beside it.
"""

from __future__ import annotations

import fcntl
import json
import os
import pty
import select
import signal
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path

import pytest

from ollama_rag.testing import LocalOllama

pytestmark = pytest.mark.slow


def command(*args: str) -> list[str]:
    return [sys.executable, "-m", "ollama_rag", *args]


def ollama_rag(*args: str, code: int = 0) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(command(*args), capture_output=True, text=True, timeout=300)
    assert done.returncode == code, done.stderr
    assert "Traceback" not in done.stderr
    return done


def corpus(tmp_path: Path, files: int) -> tuple[Path, str]:
    """``docs/`` of ``files`` one-chunk Markdown files, and where their index goes."""
    folder = tmp_path / "docs"
    folder.mkdir()
    for n in range(files):
        (folder / f"{n:03d}.md").write_text(
            f"# 第{n}章\n\n富士山の話、その{n}。静岡県と山梨県にまたがる。", encoding="utf-8"
        )
    return folder, str(tmp_path / "db")


def start(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        command(*args), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def wait_for(condition: object, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


@pytest.mark.reliability
def test_ctrl_c_keeps_what_was_committed_and_the_same_command_resumes(
    tmp_path: Path, fresh_ollama: LocalOllama
) -> None:
    docs, db = corpus(tmp_path, 400)
    index = ["index", str(docs), "--db", db, "--model", "bge-m3", "--base-url", fresh_ollama.url]
    fresh_ollama.set_delay(per_request=0.3)
    running = start(*index)
    wait_for(lambda: fresh_ollama.request_count("bge-m3") >= 4)
    # Held from here, so the command cannot finish before the signal, however loaded the
    # machine: Ctrl-C must abort the requests in flight and report what was committed.
    fresh_ollama.pause()
    try:
        running.send_signal(signal.SIGINT)
        _, err = running.communicate(timeout=120)
    finally:
        fresh_ollama.resume()
    assert running.returncode == 130, err
    assert "Traceback" not in err
    (said,) = [line for line in err.splitlines() if line.startswith("Interrupted.")]
    kept = int(said.split("committed: ")[1].split(" file(s)")[0])
    assert 0 < kept < 400
    assert said.endswith(
        "Run the same command again to resume: committed files are skipped and nothing is "
        "embedded twice."
    )
    info = json.loads(ollama_rag("info", "--db", db, "--json").stdout)
    assert info["sources"] == kept == info["chunks"]  # one chunk per file here

    fresh_ollama.set_delay()
    fresh_ollama.reset_counters()
    resumed = json.loads(ollama_rag(*index, "--json").stdout)
    assert resumed["files_unchanged"] == kept
    assert resumed["files_added"] == 400 - kept
    assert resumed["chunks_embedded"] == 400 - kept  # nothing embedded twice
    assert resumed["chunks"] == 400


@pytest.mark.reliability
def test_reading_commands_work_while_another_process_indexes(
    tmp_path: Path, fresh_ollama: LocalOllama, ollama: LocalOllama
) -> None:
    docs, db = corpus(tmp_path, 100)
    url = ["--base-url", fresh_ollama.url]
    ollama_rag("index", str(docs / "000.md"), "--db", db, "--model", "bge-m3", *url)
    # The writer's server holds its embedding requests until the commands below have run,
    # however slow they are on a loaded machine: the writer cannot finish early. The readers
    # ask the shared server (the same models), so they do not queue behind the held requests.
    fresh_ollama.pause()
    writer = start("index", str(docs), "--db", db, *url, "--json")
    try:
        wait_for(lambda: fresh_ollama.request_count("bge-m3") >= 1)  # the index is open
        read = ["--base-url", ollama.url]
        found = [
            json.loads(x)
            for x in ollama_rag(
                "search", "富士山の話", "--db", db, *read, "--json"
            ).stdout.splitlines()
        ]
        assert found
        assert all(hit["source"].endswith(".md") for hit in found)
        lexical = ollama_rag(
            "search", "第0章", "--db", db, "--mode", "lexical", "--json", "-k", "1"
        )
        assert json.loads(lexical.stdout)["source"] == "000.md"
        chunks = json.loads(ollama_rag("info", "--db", db, "--json").stdout)["chunks"]
        assert chunks == 1  # 000.md: nothing the writer sent has been answered yet
        assert writer.poll() is None, "the writer finished while its requests were held"
        refused = ollama_rag("delete", "--db", db, "--source", "000.md", *read, code=1)
        assert f"is open for writing by pid {writer.pid} on " in refused.stderr
        assert ", adding files since " in refused.stderr
        assert "meanwhile search, info, sources, export, eval, ask and chat work" in refused.stderr
        fresh_ollama.resume()  # seen all there is to see: finish at full speed
        out, err = writer.communicate(timeout=300)
    finally:
        if writer.poll() is None:
            writer.kill()
    assert writer.returncode == 0, err
    assert json.loads(out)["chunks"] == 100


def on_a_terminal(args: list[str]) -> tuple[int, str]:
    """Run with stderr on a pseudo-terminal; return the exit status and what it showed."""
    leader, follower = pty.openpty()
    # A new pseudo-terminal is 0 columns wide, where progress bars print nothing.
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))
    process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=follower)
    os.close(follower)
    shown = b""
    while True:
        ready, _, _ = select.select([leader], [], [], 0.1)
        if ready:
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # the terminal closed with the process
                break
            if not chunk:
                break
            shown += chunk
        elif process.poll() is not None:
            break
    os.close(leader)
    return process.wait(timeout=60), shown.decode("utf-8", "replace")


def test_progress_bars_only_on_a_terminal_and_never_with_quiet(
    tmp_path: Path, ollama: LocalOllama
) -> None:
    docs, _ = corpus(tmp_path, 25)  # enough files for the library to want a bar
    base = ["index", str(docs), "--model", "bge-m3", "--base-url", ollama.url]
    code, shown = on_a_terminal(command(*base, "--db", str(tmp_path / "a")))
    assert code == 0
    assert "25/25" in shown
    assert "file" in shown
    code, shown = on_a_terminal(command(*base, "--db", str(tmp_path / "b"), "--quiet"))
    assert code == 0
    assert shown == ""
    piped = ollama_rag(*base, "--db", str(tmp_path / "c"))
    assert piped.stderr == ""  # not a terminal: no bar
