"""``ollama-rag demo``: index the bundled samples, answer queries, show the guard refusing a model.

Uses a real Ollama when one is reachable with the model pulled; otherwise starts
:class:`~ollama_rag.testing.LocalOllama` with the real multilingual model and says so.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import ollama

from ollama_rag.demo import DATA_DIR, sample_queries
from ollama_rag.errors import EmbeddingModelMismatchError, MissingExtraError, OllamaError
from ollama_rag.index import RagIndex
from ollama_rag.ollama import probe_model, resolve_base_url

__all__ = ["NO_BACKEND_MESSAGE", "DemoResult", "run_demo"]

REAL_MODEL = "bge-m3"
LOCAL_MODEL = "use-multilingual"
# A model the guard must refuse; the name check needs no server, so it need not be pulled.
OTHER_MODEL = "nomic-embed-text"
NO_BACKEND_MESSAGE = (
    "No usable Ollama ({error}), and the demo's offline model needs the [local] extra: "
    "pip install 'ollama-rag[local]'"
)


@dataclass
class DemoResult:
    """What the demo did, for tests and for the closing summary."""

    backend: str
    model: str
    documents: int = 0
    chunks: int = 0
    queries: int = 0
    top1_hits: int = 0
    re_add_requests: int | None = None
    guard_message: str = ""
    seconds: float = 0.0
    misses: list[str] = field(default_factory=list)


@contextmanager
def _embedding_server(
    model: str | None, base_url: str | None, echo: Callable[[str], None]
) -> Iterator[tuple[str, str, object]]:
    """Yield (url, model, local server or None): a real Ollama if usable, else LocalOllama."""
    url = resolve_base_url(base_url)
    wanted = model or REAL_MODEL
    try:
        with ollama.Client(host=url, timeout=3) as client:
            probe_model(client, wanted, url=url)
    except OllamaError as err:
        if base_url is not None or model is not None:
            raise  # the user asked for this server/model: do not quietly use another
        from ollama_rag.testing import LocalOllama, MultilingualUSEModel

        try:
            offline = MultilingualUSEModel()
        except MissingExtraError as missing:
            msg = NO_BACKEND_MESSAGE.format(error=err)
            raise MissingExtraError(msg, extra="local", package=missing.package) from missing
        echo(f"No usable Ollama: {err}")
        echo(
            f"Using LocalOllama instead: an Ollama-protocol server in this process serving "
            f'"{LOCAL_MODEL}" (Universal Sentence Encoder multilingual v3, a real 512-d model).'
        )
        with LocalOllama({LOCAL_MODEL: offline}) as server:
            yield server.url, LOCAL_MODEL, server
        return
    echo(f'Using Ollama at {url} with "{wanted}".')
    yield url, wanted, None


def run_demo(
    *,
    model: str | None = None,
    base_url: str | None = None,
    echo: Callable[[str], None] = print,
) -> DemoResult:
    """Index the sample documents into a temporary index and answer the sample queries.

    Args:
        model: Embedding model on a real Ollama (default ``bge-m3``, else LocalOllama).
        base_url: Ollama URL (default ``OLLAMA_HOST`` or localhost).
        echo: Where lines of output go.

    Returns:
        A :class:`DemoResult` summary.
    """
    started = time.perf_counter()
    files = sorted(p for p in DATA_DIR.iterdir() if p.suffix == ".md")
    queries = sample_queries()
    with (
        _embedding_server(model, base_url, echo) as (url, chosen, local),
        tempfile.TemporaryDirectory(prefix="ollama-rag-demo-") as tmp,
    ):
        path = Path(tmp) / "index"
        result = DemoResult(backend="LocalOllama" if local else "Ollama", model=chosen)
        with RagIndex(path, model=chosen, base_url=url) as index:
            echo(f"\nIndexing {len(files)} documents into {path} ...")
            for file in files:
                ids = index.add_texts([file.read_text(encoding="utf-8")], source=file.name)
                echo(f"  {file.name:<28} {len(ids):>3} chunks")
            result.documents = len(files)
            result.chunks = index.count()
            echo(f"  {result.chunks} chunks, {index.manifest.model_label}")

            echo("\nQueries (top 3: score, source, text):")
            for q in queries:
                hits = index.search_with_scores(q.query, k=3)
                ok = bool(hits) and hits[0][0].metadata["source"] == q.expected_source
                result.queries += 1
                result.top1_hits += ok
                if not ok:
                    result.misses.append(q.query)
                mark = "✓" if ok else f"✗ expected {q.expected_source}"
                echo(f"\n[{q.language}] {q.query}  {mark}")
                for doc, score in hits:
                    snippet = " ".join(doc.page_content.split())[:60]
                    echo(f"   {score:5.3f}  {doc.metadata['source']:<24} {snippet}")

            if local is not None:
                local.reset_counters()  # type: ignore[attr-defined]
                for file in files:
                    index.add_texts([file.read_text(encoding="utf-8")], source=file.name)
                result.re_add_requests = local.request_count(chosen)  # type: ignore[attr-defined]
                echo(
                    f"\nRe-adding all {len(files)} documents made "
                    f"{result.re_add_requests} embedding requests (nothing is embedded twice)."
                )

        echo(f'\nOpening the same index with "{OTHER_MODEL}" instead of "{chosen}":')
        try:
            RagIndex(path, model=OTHER_MODEL, base_url=url).close()
        except EmbeddingModelMismatchError as err:
            result.guard_message = str(err)
            echo(f"  refused: {err}")
    result.seconds = time.perf_counter() - started
    echo(
        f"\nTop-1 source correct for {result.top1_hits}/{result.queries} queries; "
        f"done in {result.seconds:.1f} s."
    )
    return result
