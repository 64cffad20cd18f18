"""Run the real Ollama client path with no Ollama installed.

:class:`LocalOllama` is an HTTP server that speaks Ollama's API (``/api/embed``,
``/api/embeddings``, ``/api/chat``, ``/api/generate``, ``/api/tags``, ``/api/show``,
``/api/ps``, ``/api/pull``, ``/api/version``) with Ollama's status codes and error texts, so
the unmodified ``ollama`` client, ``langchain_ollama.OllamaEmbeddings`` and ``ChatOllama``
work against it::

    from ollama_rag.testing import HashEmbeddingModel, LocalOllama

    with LocalOllama({"bge-m3": HashEmbeddingModel(dimension=1024)}) as server:
        ...  # OllamaEmbeddings(model="bge-m3", base_url=server.url)

It serves deterministic hash embedders (:class:`HashEmbeddingModel`), a real multilingual
model (:class:`MultilingualUSEModel`, the ``[local]`` extra) and a deterministic chat model
that answers by quoting its context (:class:`ExtractiveChatModel`, formerly
``ChatOnlyModel``), and has hooks for tests: request counts, received inputs,
delays and compute slots, injected failures and digest changes. ``ollama-rag serve-local``
runs it as a process (see :func:`run_server`). :func:`chroma_server` runs a real
``chroma run`` for tests of server mode. :func:`loop_stalls` measures how long awaited work
keeps an event loop from running.
"""

from __future__ import annotations

from ollama_rag.testing._api import OLLAMA_VERSION
from ollama_rag.testing._chroma import chroma_server
from ollama_rag.testing._cli import parse_model_spec, run_server
from ollama_rag.testing._extractive import NO_ANSWER
from ollama_rag.testing._loop import LoopStalls, loop_stalls
from ollama_rag.testing._models import (
    ChatOnlyModel,
    ExtractiveChatModel,
    HashEmbeddingModel,
    ModelSpec,
    MultilingualUSEModel,
    default_models,
)
from ollama_rag.testing._server import LocalOllama

__all__ = [
    "NO_ANSWER",
    "OLLAMA_VERSION",
    "ChatOnlyModel",
    "ExtractiveChatModel",
    "HashEmbeddingModel",
    "LocalOllama",
    "LoopStalls",
    "ModelSpec",
    "MultilingualUSEModel",
    "chroma_server",
    "default_models",
    "loop_stalls",
    "parse_model_spec",
    "run_server",
]
