"""Shared fixtures. Every piece of state a test makes lives under its ``tmp_path``.

``ollama`` is one real LocalOllama HTTP server per test session (per xdist worker) serving
stand-ins for the models users pull; tests that change the server (digests, models, faults)
use ``fresh_ollama`` instead, so nothing leaks between tests.
"""

from __future__ import annotations

import os
import shutil
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from ollama_rag.testing import (
    ExtractiveChatModel,
    HashEmbeddingModel,
    LocalOllama,
    ModelSpec,
    MultilingualUSEModel,
)


def model_zoo() -> dict[str, ModelSpec]:
    """Stand-ins with the real models' names, dimensions and contexts (reference/ollama-api.md §4).

    bge-m3 and mxbai-embed-large are both 1024-d but different models (different seeds, so
    different vectors and digests): exactly the pair the guard must tell apart.
    """
    return {
        "bge-m3": HashEmbeddingModel(dimension=1024, context_length=8192, seed=1),
        "mxbai-embed-large": HashEmbeddingModel(dimension=1024, context_length=512, seed=2),
        "nomic-embed-text": HashEmbeddingModel(dimension=768, context_length=2048, seed=3),
        "use-multilingual": MultilingualUSEModel(),
        "qwen2.5": ExtractiveChatModel(),
    }


@pytest.fixture(autouse=True)
def _clean_environ(
    monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """Keep the user's OLLAMA_* / CHROMA_* settings from leaking into tests.

    The lexical indexes of server-mode indexes go to a cache folder of the test's own.
    """
    for key in list(os.environ):
        if key.startswith(("OLLAMA_", "CHROMA_")):
            monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("OLLAMA_RAG_CACHE", str(tmp_path_factory.mktemp("cache")))


@pytest.fixture(scope="session")
def _session_ollama() -> Iterator[LocalOllama]:
    with LocalOllama(model_zoo()) as server:
        yield server


@pytest.fixture
def ollama(_session_ollama: LocalOllama) -> LocalOllama:
    """The shared server, with counters zeroed and no delay, for tests that only read it."""
    _session_ollama.reset_counters()
    _session_ollama.set_delay(per_request=0.0, per_input=0.0, slots=1)
    _session_ollama.resume()
    return _session_ollama


@pytest.fixture
def fresh_ollama() -> Iterator[LocalOllama]:
    """A server of the test's own, for tests that change digests, models or inject faults."""
    with LocalOllama(model_zoo()) as server:
        yield server


@pytest.fixture
def closed_port_url() -> str:
    """A loopback URL nothing listens on (the port was free a moment ago)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


@pytest.fixture
def samples(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, ollama: LocalOllama) -> Path:
    """A working directory whose ``docs/`` holds the demo samples; Ollama is the test server.

    For tests of the ``ollama-rag`` command, which reads ``OLLAMA_HOST`` like a user's shell.
    """
    from ollama_rag.demo import DATA_DIR

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("OLLAMA_HOST", ollama.url)
    shutil.copytree(DATA_DIR, tmp_path / "docs", ignore=shutil.ignore_patterns("*.json"))
    return tmp_path


@pytest.fixture
def indexed(samples: Path) -> Path:
    """:func:`samples`, indexed with ``ollama-rag index docs --db db --model bge-m3``."""
    from click.testing import CliRunner

    from ollama_rag.cli import cli

    result = CliRunner().invoke(cli, ["index", "docs", "--db", "db", "--model", "bge-m3", "-q"])
    assert result.exit_code == 0, result.output
    return samples


@pytest.fixture(params=["chroma", "faiss"])
def store_kind(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """The store new indexes get (through ``$OLLAMA_RAG_STORE``, which subprocesses inherit).

    A suite that uses it (``pytestmark = pytest.mark.usefixtures("store_kind")``) runs once
    per store: the same tests prove both behave the same.
    """
    if request.param == "faiss":
        if request.node.get_closest_marker("chroma_only"):
            pytest.skip("tests Chroma itself")
        pytest.importorskip("faiss")
    monkeypatch.setenv("OLLAMA_RAG_STORE", request.param)
    return str(request.param)
