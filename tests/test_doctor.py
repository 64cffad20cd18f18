"""doctor and ``ollama-rag doctor``, against real LocalOllama servers.

Every failure doctor can report is produced for real: a closed port, a missing model, a chat
model, an old server, something that is not Ollama, an injected 500, an unwritable path, an
index held by another process, an index whose model is gone.
"""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from click.testing import CliRunner

from ollama_rag import RagIndex
from ollama_rag.cli import cli
from ollama_rag.doctor import DoctorCheck, DoctorReport, doctor
from ollama_rag.sqlite_compat import SqliteBackend
from ollama_rag.testing import ChatOnlyModel, HashEmbeddingModel, LocalOllama

# The package re-exports the function doctor under its module's name, so ollama_rag.doctor (and
# `import ollama_rag.doctor as m`) is the function; import_module returns the module.
doctor_module = importlib.import_module("ollama_rag.doctor")

CHECKS = ["server", "model", "registry", "embedding", "sqlite3", "chromadb", "path", "index"]


# ----------------------------------------------------------------------------------- doctor


def test_doctor_all_green(ollama: LocalOllama, tmp_path: Path) -> None:
    report = doctor(base_url=ollama.url, model="bge-m3", path=tmp_path)
    assert report.ok, str(report)
    assert [c.name for c in report.checks] == CHECKS
    assert report.model == "bge-m3:latest"
    assert report.base_url == ollama.url
    assert all(c.ok for c in report.checks if c.name != "index")
    assert report["index"].ok is None  # an empty directory holds no index yet
    assert report["server"].detail == f"Ollama 0.20.0 at {ollama.url}"
    assert "1024-d" in report["model"].detail
    assert "context 2048 tokens (trained 8192)" in report["model"].detail
    assert "multilingual" in report["registry"].detail
    assert "unit-length" in report["embedding"].detail
    assert "SQLite" in report["sqlite3"].detail
    assert "chromadb 1." in report["chromadb"].detail
    assert "writable" in report["path"].detail
    assert not any(c.fix for c in report.checks)
    assert ollama.request_count("bge-m3") == 1  # exactly one test embedding

    text = str(report)
    assert text.splitlines()[0] == f"ollama-rag doctor (Ollama at {ollama.url})"
    assert f"✓ server: Ollama 0.20.0 at {ollama.url}" in text
    assert "– index: no index in" in text
    assert text.endswith("All checks passed.")
    page = report._repr_html_()
    assert page.count("<tr>") == len(CHECKS)
    assert "All checks passed." in page


def test_doctor_reports_registry_prefixes_and_english_only(ollama: LocalOllama) -> None:
    report = doctor(base_url=ollama.url, model="nomic-embed-text")
    assert report.ok
    registry = report["registry"].detail
    assert "'search_document: '" in registry
    assert "'search_query: '" in registry
    assert "English only" in registry
    assert report["path"].ok is None
    assert "index" not in report


def test_doctor_unknown_model_comes_from_show() -> None:
    models = {"team/embedder:v2": HashEmbeddingModel(dimension=256, context_length=1024)}
    with LocalOllama(models) as server:
        report = doctor(base_url=server.url, model="team/embedder:v2")
    assert report.ok, str(report)
    assert "256-d, context 1024 tokens" in report["model"].detail
    assert report["registry"].ok is None
    assert "not in ollama-rag's registry" in report["registry"].detail


def test_doctor_defaults_to_bge_m3(ollama: LocalOllama) -> None:
    report = doctor(base_url=ollama.url)
    assert report.model == "bge-m3:latest"
    assert "first embedding model" not in report["model"].detail


def test_doctor_picks_the_first_embedding_model_and_says_so() -> None:
    models = {
        "qwen2.5": ChatOnlyModel(),
        "nomic-embed-text": HashEmbeddingModel(dimension=768, context_length=2048),
    }
    with LocalOllama(models) as server:
        report = doctor(base_url=server.url)
    assert report.ok, str(report)
    assert report.model == "nomic-embed-text:latest"
    assert "bge-m3 is not pulled" in report["model"].detail
    assert "first embedding model on the server" in report["model"].detail


def test_doctor_server_without_embedding_models() -> None:
    with LocalOllama({"qwen2.5": ChatOnlyModel()}) as server:
        report = doctor(base_url=server.url)
    assert not report.ok
    assert report.model is None
    assert report["model"].ok is False
    assert "no embedding model on the server (it has qwen2.5:latest)" in report["model"].detail
    assert report["model"].fix == "ollama pull bge-m3"
    assert report["embedding"].ok is None


def test_doctor_server_down_skips_what_depends_on_it(tmp_path: Path, closed_port_url: str) -> None:
    url = closed_port_url
    report = doctor(base_url=url, model="bge-m3", path=tmp_path)
    assert not report.ok
    assert report.failed == (report["server"],)
    assert "not reachable" in report["server"].detail
    assert report["server"].fix.startswith("ollama serve")
    for name in ("model", "embedding"):
        assert report[name].ok is None
        assert report[name].detail.startswith("skipped: Ollama is not reachable")
    assert report["registry"].ok  # the registry needs no server
    assert report["sqlite3"].ok
    assert report["path"].ok
    text = str(report)
    assert f"✗ server: Ollama is not reachable at {url}" in text
    assert "\n    fix: ollama serve" in text
    assert "– model: skipped" in text
    assert text.endswith("1 problem found.")


def test_doctor_reads_ollama_host(ollama: LocalOllama, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OLLAMA_HOST", ollama.url)
    assert doctor(model="bge-m3").ok


def test_doctor_invalid_base_url_is_reported_not_raised() -> None:
    report = doctor(base_url="ftp://example.com")
    assert report["server"].ok is False
    assert "http or https" in report["server"].detail
    assert report["server"].fix


def test_doctor_model_not_pulled(ollama: LocalOllama) -> None:
    report = doctor(base_url=ollama.url, model="all-minilm")
    assert report.failed == (report["model"],)
    assert "all-minilm is not pulled" in report["model"].detail
    assert "bge-m3:latest" in report["model"].detail  # what the server does have
    assert report["model"].fix == "ollama pull all-minilm"
    assert report["embedding"].ok is None
    assert "    fix: ollama pull all-minilm" in str(report)


def test_doctor_chat_model(ollama: LocalOllama) -> None:
    report = doctor(base_url=ollama.url, model="qwen2.5")
    assert report.failed == (report["model"],)
    assert "cannot embed" in report["model"].detail
    assert report["model"].fix == 'ollama pull bge-m3, then use model="bge-m3" (--model bge-m3)'


def test_doctor_embedding_failure_names_the_log(fresh_ollama: LocalOllama) -> None:
    fresh_ollama.fail_next(1, 500)
    report = doctor(base_url=fresh_ollama.url, model="bge-m3")
    assert report.failed == (report["embedding"],)
    assert "llama runner process has terminated" in report["embedding"].detail
    assert "server log" in report["embedding"].fix


def test_doctor_old_ollama() -> None:
    models = {"bge-m3": HashEmbeddingModel(dimension=1024, context_length=8192)}
    with LocalOllama(models, version="0.1.48") as server:
        report = doctor(base_url=server.url, model="bge-m3")
    assert report["server"].ok is False
    assert "too old" in report["server"].detail
    assert "ollama.com/download" in report["server"].fix
    assert report["model"].ok is None


def test_doctor_something_else_on_the_port() -> None:
    class NotOllama(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            pass

    with ThreadingHTTPServer(("127.0.0.1", 0), NotOllama) as httpd:
        thread = threading.Thread(
            target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        thread.start()
        try:
            report = doctor(base_url=f"http://127.0.0.1:{httpd.server_address[1]}")
        finally:
            httpd.shutdown()
    assert report["server"].ok is False
    assert "not as Ollama does (GET /api/version gave HTTP 404)" in report["server"].detail
    assert "OLLAMA_HOST" in report["server"].fix


def test_doctor_old_sqlite_is_reported(
    ollama: LocalOllama, monkeypatch: pytest.MonkeyPatch
) -> None:
    old = SqliteBackend(
        module="sqlite3", version="3.31.1", version_info=(3, 31, 1), system_version="3.31.1"
    )
    monkeypatch.setattr(doctor_module, "current_backend", lambda: old)
    report = doctor(base_url=ollama.url, model="bge-m3")
    assert report.failed == (report["sqlite3"],)
    assert "SQLite 3.31.1; Chroma needs >= 3.35.0" in report["sqlite3"].detail
    assert "pip install pysqlite3-binary" in report["sqlite3"].fix


def test_doctor_chromadb_import_failure_is_reported(
    ollama: LocalOllama, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "chromadb", None)  # makes `import chromadb` fail
    report = doctor(base_url=ollama.url, model="bge-m3", path=tmp_path)
    assert report.failed == (report["chromadb"],)
    assert "is installed but importing it fails" in report["chromadb"].detail
    assert "pip install --force-reinstall" in report["chromadb"].fix
    assert report["index"].ok is None
    assert "chromadb cannot be imported" in report["index"].detail


def test_doctor_path_that_does_not_exist_is_not_created(
    ollama: LocalOllama, tmp_path: Path
) -> None:
    target = tmp_path / "new" / "rag_db"
    report = doctor(base_url=ollama.url, model="bge-m3", path=target)
    assert report.ok
    assert "does not exist yet; it will be created" in report["path"].detail
    assert not (tmp_path / "new").exists()
    assert list(tmp_path.iterdir()) == []  # the probe file was deleted too


def test_doctor_path_that_is_a_file(ollama: LocalOllama, tmp_path: Path) -> None:
    target = tmp_path / "notes.txt"
    target.write_text("x", encoding="utf-8")
    report = doctor(base_url=ollama.url, model="bge-m3", path=target)
    assert report.failed == (report["path"],)
    assert "is a file" in report["path"].detail
    assert report["index"].ok is None


def test_doctor_path_under_a_regular_file(ollama: LocalOllama, tmp_path: Path) -> None:
    blocker = tmp_path / "blocker"
    blocker.write_text("x", encoding="utf-8")
    report = doctor(base_url=ollama.url, model="bge-m3", path=blocker / "rag_db")
    assert report.failed == (report["path"],)
    assert f"cannot be created: {blocker} is a file" in report["path"].detail
    assert report["path"].fix


def test_doctor_unwritable_directory(ollama: LocalOllama, tmp_path: Path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        try:
            (locked / "probe").write_text("x", encoding="utf-8")
        except PermissionError:
            target = locked  # an ordinary user: the mode stops the write
        else:
            # root ignores the mode bits, so make the write impossible another way.
            (locked / "probe").unlink()
            blocker = tmp_path / "blocker"
            blocker.write_text("x", encoding="utf-8")
            target = blocker / "sub"
        report = doctor(base_url=ollama.url, model="bge-m3", path=target)
    finally:
        locked.chmod(0o700)
    assert report.failed == (report["path"],)
    assert "not writable" in report["path"].detail or "is a file" in report["path"].detail
    assert report["path"].fix
    assert report["index"].ok is None


def test_doctor_lists_the_collections_of_an_index(
    fresh_ollama: LocalOllama, tmp_path: Path
) -> None:
    index = RagIndex(tmp_path, model="bge-m3", base_url=fresh_ollama.url)
    try:
        index.add_texts(["富士山は日本で一番高い山です。"], source="fuji.txt")
        # While this process holds it, doctor says so instead of opening a second client.
        held = doctor(base_url=fresh_ollama.url, model="bge-m3", path=tmp_path)
        assert held["index"].ok is True
        assert f"pid {os.getpid()}" in held["index"].detail
        assert "open in this process" in held["index"].detail
    finally:
        index.close()
    report = doctor(base_url=fresh_ollama.url, model="bge-m3", path=tmp_path)
    assert report.ok, str(report)
    assert "1 collection(s): 'default': bge-m3:latest, 1024-d, 1 chunk" in report["index"].detail

    fresh_ollama.remove_model("bge-m3")  # the index's model is gone from the server
    gone = doctor(base_url=fresh_ollama.url, model="nomic-embed-text", path=tmp_path)
    assert gone.failed == (gone["index"],)
    assert "recorded model(s) not on the server: bge-m3:latest" in gone["index"].detail
    assert gone["index"].fix == "ollama pull bge-m3"
    # Reading it did not lock it: it opens again.
    RagIndex(
        tmp_path, model="nomic-embed-text", base_url=fresh_ollama.url, collection="other"
    ).close()


def test_doctor_index_held_by_another_process(ollama: LocalOllama, tmp_path: Path) -> None:
    holder = (
        "import sys; from ollama_rag.storage.chroma import ChromaStore; "
        "store = ChromaStore.open(sys.argv[1]); print('ready', flush=True); sys.stdin.read()"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", holder, str(tmp_path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "ready"
        report = doctor(base_url=ollama.url, model="bge-m3", path=tmp_path)
    finally:
        assert proc.stdin is not None
        proc.stdin.close()
        proc.wait(timeout=30)
    assert report.failed == (report["index"],)
    assert f"in use by pid {proc.pid}" in report["index"].detail
    assert "collections were not read" in report["index"].detail
    assert "close the index in that process" in report["index"].fix


def test_report_api() -> None:
    checks = (
        DoctorCheck("a", True, "fine"),
        DoctorCheck("b", None, "skipped: x"),
        DoctorCheck("c", False, "broken <b>", fix="do <this>"),
    )
    report = DoctorReport(checks, base_url="http://h:1")
    assert not report.ok
    assert report.failed == (checks[2],)
    assert report["b"] is checks[1]
    assert "c" in report
    assert "z" not in report
    with pytest.raises(KeyError):
        report["z"]
    assert [c.symbol for c in checks] == ["✓", "–", "✗"]
    assert str(checks[2]) == "✗ c: broken <b>\n    fix: do <this>"
    assert "broken &lt;b&gt;" in report._repr_html_()
    assert "do &lt;this&gt;" in report._repr_html_()
    assert DoctorReport(checks[:2], base_url="x").ok  # skipped checks are not failures


# -------------------------------------------------------------------------------------- CLI


def test_cli_doctor_exit_codes(ollama: LocalOllama, tmp_path: Path) -> None:
    runner = CliRunner()
    good = runner.invoke(
        cli, ["doctor", "--base-url", ollama.url, "--model", "bge-m3", "--path", str(tmp_path)]
    )
    assert good.exit_code == 0, good.output
    assert f"✓ server: Ollama 0.20.0 at {ollama.url}" in good.output
    assert good.output.rstrip().endswith("All checks passed.")

    bad = runner.invoke(cli, ["doctor", "--base-url", ollama.url, "--model", "no-such-model"])
    assert bad.exit_code == 1
    assert "✗ model: no-such-model is not pulled" in bad.output
    assert "    fix: ollama pull no-such-model" in bad.output


def test_cli_doctor_as_a_real_process(tmp_path: Path, closed_port_url: str) -> None:
    env = {**os.environ, "PYTHONIOENCODING": "utf-8"}
    env.pop("OLLAMA_HOST", None)
    url = closed_port_url
    done = subprocess.run(
        [sys.executable, "-m", "ollama_rag", "doctor", "--base-url", url, "--path", str(tmp_path)],
        capture_output=True,
        text=True,
        encoding="utf-8",
        env=env,
        timeout=60,
        check=False,
    )
    assert done.returncode == 1, done.stdout + done.stderr
    assert f"✗ server: Ollama is not reachable at {url}" in done.stdout
    assert "    fix: ollama serve" in done.stdout
    assert "✓ path:" in done.stdout
    assert done.stderr == ""
