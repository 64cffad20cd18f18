"""``ollama-rag serve-local``: model spec strings and the blocking server loop."""

from __future__ import annotations

import logging
import signal
import sys
import threading
from types import FrameType

from ollama_rag.testing._models import (
    CHAT_DEFAULTS,
    HASH_DEFAULTS,
    ExtractiveChatModel,
    HashEmbeddingModel,
    ModelSpec,
    MultilingualUSEModel,
)
from ollama_rag.testing._server import LocalOllama
from ollama_rag.testing._wire import display_name

__all__ = ["SPEC_GRAMMAR", "parse_model_spec", "run_server"]

SPEC_GRAMMAR = (
    "NAME=hash:DIM[:CONTEXT[:SEED]], NAME=use[:CONTEXT], NAME=chat[:CONTEXT], "
    "or a default model: use-multilingual, hash-1024, hash-768, qwen2.5"
)


def _int(spec: str, label: str, text: str, minimum: int) -> int:
    try:
        value = int(text)
    except ValueError:
        value = minimum - 1
    if value < minimum:
        msg = f"invalid model spec {spec!r}: {label} must be an integer >= {minimum}, got {text!r}"
        raise ValueError(msg)
    return value


def parse_model_spec(text: str) -> tuple[str, ModelSpec]:
    """Parse one ``--model`` value of ``ollama-rag serve-local``.

    Grammar: ``NAME=hash:DIM[:CONTEXT[:SEED]]``, ``NAME=use[:CONTEXT]``,
    ``NAME=chat[:CONTEXT]`` (an :class:`ExtractiveChatModel`), or the bare name of a default
    model (``use-multilingual``, ``hash-1024``, ``hash-768``, ``qwen2.5``). A hash model without
    SEED gets one derived from NAME.

    >>> name, spec = parse_model_spec("bge-m3=hash:1024:8192")
    >>> name, spec.dimension, spec.context_length
    ('bge-m3', 1024, 8192)

    Raises:
        ValueError: Naming the bad part and the grammar.
        MissingExtraError: For a ``use`` model without the ``[local]`` extra.
    """
    spec = text.strip()
    name, sep, kind = spec.partition("=")
    name = name.strip()
    if not sep:
        if name == "use-multilingual":
            return name, MultilingualUSEModel()
        defaults = {**HASH_DEFAULTS, **CHAT_DEFAULTS}
        if name in defaults:
            return name, defaults[name]
        msg = f"invalid model spec {text!r}: expected {SPEC_GRAMMAR}"
        raise ValueError(msg)
    if not name or any(c.isspace() for c in name):
        msg = f"invalid model spec {text!r}: NAME must be non-empty without spaces"
        raise ValueError(msg)
    head, *args = kind.strip().split(":")
    if head == "hash" and 1 <= len(args) <= 3:
        dimension = _int(text, "DIM", args[0], 1)
        context = _int(text, "CONTEXT", args[1], 3) if len(args) > 1 else 8192
        seed = _int(text, "SEED", args[2], 0) if len(args) > 2 else None
        return name, HashEmbeddingModel(dimension=dimension, context_length=context, seed=seed)
    if head == "use" and len(args) <= 1:
        context = _int(text, "CONTEXT", args[0], 3) if args else 512
        return name, MultilingualUSEModel(context_length=context)
    if head == "chat" and len(args) <= 1:
        context = _int(text, "CONTEXT", args[0], 3) if args else 131072
        return name, ExtractiveChatModel(context_length=context)
    msg = f"invalid model spec {text!r}: expected {SPEC_GRAMMAR}"
    raise ValueError(msg)


def run_server(*, host: str, port: int, model_specs: list[str]) -> None:
    """Serve until SIGINT or SIGTERM; what ``ollama-rag serve-local`` runs.

    Prints one line, e.g. ``LocalOllama serving hash-1024, hash-768, qwen2.5 on
    http://127.0.0.1:11434 (Ctrl-C to stop)``, with the real port when ``port`` is 0.

    Args:
        host: Address to bind.
        port: Port to bind (0 = any free port).
        model_specs: ``--model`` values (see :func:`parse_model_spec`); empty = defaults.

    Raises:
        ValueError: For a malformed spec.
        OSError: If the address cannot be bound.
    """
    models = dict(parse_model_spec(s) for s in model_specs) if model_specs else None
    server = LocalOllama(models, host=host, port=port)
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    # Access log lines like Ollama's [GIN] log, for a user watching the terminal.
    log_handler = logging.StreamHandler(sys.stderr)
    log_handler.setFormatter(logging.Formatter("[LocalOllama] %(asctime)s | %(message)s"))
    logger = logging.getLogger("ollama_rag.testing")
    logger.addHandler(log_handler)
    logger.setLevel(logging.INFO)
    previous = {}
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            previous[sig] = signal.signal(sig, on_signal)
    server.start()
    try:
        names = ", ".join(display_name(n) for n in server.models)
        print(f"LocalOllama serving {names} on {server.url} (Ctrl-C to stop)", flush=True)
        # A timed wait lets the signal handler run promptly on every platform.
        while not stop.wait(0.5):
            pass
    finally:
        server.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        logger.removeHandler(log_handler)
    print("LocalOllama stopped", file=sys.stderr, flush=True)
