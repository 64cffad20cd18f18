"""``ollama-rag demo``: index the bundled samples, answer queries, show the guard refusing a model.

The queries are answered twice: by search (the top 3 chunks) and, when the chat model is
there, by ``rag_chain`` with cited answers.

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

from ollama_rag.demo import DATA_DIR, SampleQuery, sample_queries
from ollama_rag.errors import EmbeddingModelMismatchError, MissingExtraError, OllamaError
from ollama_rag.index import RagIndex
from ollama_rag.ollama import probe_chat_model, probe_model, resolve_base_url

__all__ = ["NO_BACKEND_MESSAGE", "DemoResult", "run_demo"]

REAL_MODEL = "bge-m3"
LOCAL_MODEL = "use-multilingual"
CHAT_MODEL = "qwen2.5"
# One question per language of the samples gets a cited answer from the chat model.
CHAT_LANGUAGES = ("ja", "zh", "en", "ko")
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
    answers: list[tuple[str, str]] = field(default_factory=list)


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
        from ollama_rag.testing import ExtractiveChatModel, LocalOllama, MultilingualUSEModel

        try:
            offline = MultilingualUSEModel()
        except MissingExtraError as missing:
            msg = NO_BACKEND_MESSAGE.format(error=err)
            raise MissingExtraError(msg, extra="local", package=missing.package) from missing
        echo(f"No usable Ollama: {err}")
        echo(
            f"Using LocalOllama instead: an Ollama-protocol server in this process serving "
            f'"{LOCAL_MODEL}" (Universal Sentence Encoder multilingual v3, a real 512-d model) '
            f'and, as "{CHAT_MODEL}", a stand-in chat model that answers by quoting the passage '
            "sentence that best matches the question."
        )
        # A natural question shares fewer of its bigrams with the answer's sentence than the
        # test suite's short ones: a lower bar than the default 0.4, so the stand-in answers.
        models = {LOCAL_MODEL: offline, CHAT_MODEL: ExtractiveChatModel(min_score=0.2)}
        with LocalOllama(models) as server:
            yield server.url, LOCAL_MODEL, server
        return
    echo(f'Using Ollama at {url} with "{wanted}".')
    yield url, wanted, None


def _answer(
    index: RagIndex,
    queries: list[SampleQuery],
    url: str,
    result: DemoResult,
    echo: Callable[[str], None],
) -> None:
    """Cited answers from the chat model to one sample question per language, if it is there."""
    from langchain_ollama import ChatOllama

    from ollama_rag.chat import rag_chain

    try:
        with ollama.Client(host=url, timeout=3) as client:
            usable = probe_chat_model(client, CHAT_MODEL, url=url)
    except OllamaError as err:
        echo(f"\nNo cited answers: {err}")
        return
    if not usable:
        echo(f'\nNo cited answers: "{CHAT_MODEL}" on {url} cannot chat.')
        return
    llm = ChatOllama(model=CHAT_MODEL, base_url=url, temperature=0, keep_alive="30m")
    chain = rag_chain(index.as_retriever(search_kwargs={"k": 3}), llm)
    echo(f'\nCited answers from "{CHAT_MODEL}" (rag_chain on index.as_retriever()):')
    if result.backend == "LocalOllama":
        echo(
            "  (LocalOllama's stand-in quotes the sentences sharing most character pairs with "
            "the question, with their citation; a real chat model writes its own answer)"
        )
    for language in CHAT_LANGUAGES:
        query = next((q for q in queries if q.language == language), None)
        if query is None:
            continue
        answer = chain.invoke(query.query)
        result.answers.append((query.query, answer))
        echo(f"\n[{language}] {query.query}\n  → {answer}")


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

            _answer(index, queries, url, result, echo)

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
