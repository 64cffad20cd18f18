"""LocalOllama: a threaded HTTP/1.1 server in front of :class:`OllamaAPI`."""

from __future__ import annotations

import contextlib
import logging
import socket
import sys
import threading
from collections.abc import Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit

from ollama_rag.testing._api import OLLAMA_VERSION, Failure, OllamaAPI, Response
from ollama_rag.testing._models import ModelSpec, default_models
from ollama_rag.testing._wire import json_bytes

__all__ = ["LocalOllama"]

logger = logging.getLogger("ollama_rag.testing")

# Bound to every interface: the URL a client should use is loopback.
_WILDCARD_HOSTS = {"", "0.0.0.0", "::"}


class _HTTPServer(ThreadingHTTPServer):
    """Tracks open connections so ``stop()`` can close idle keep-alive sockets at once."""

    daemon_threads = True

    def __init__(self, address: tuple[str, int], api: OllamaAPI) -> None:
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        self.api = api
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        super().__init__(address, _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._connections_lock:
            self._connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._connections_lock:
            self._connections.discard(request)
        super().shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # socketserver prints a traceback to stderr; a client resetting its connection is
        # routine for a test server, anything else is logged.
        if isinstance(sys.exc_info()[1], ConnectionError):
            logger.debug("connection from %s reset", client_address)
        else:
            logger.exception("LocalOllama failed serving %s", client_address)

    def close_connections(self) -> None:
        """Shut down every open connection; handler threads blocked reading then exit."""
        with self._connections_lock:
            connections = list(self._connections)
        for conn in connections:
            with contextlib.suppress(OSError):  # already closed by the peer
                conn.shutdown(socket.SHUT_RDWR)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, which httpx clients rely on
    # Headers and body go out in separate writes; with Nagle on, the body waits for the
    # client's delayed ACK and every request costs ~40 ms.
    disable_nagle_algorithm = True
    server_version = "LocalOllama"
    server: _HTTPServer

    # One dispatcher for every method: the API answers 405 for a wrong one, like gin.
    def do_GET(self) -> None:
        self._serve()

    def do_HEAD(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        self._serve()

    def do_PUT(self) -> None:
        self._serve()

    def do_DELETE(self) -> None:
        self._serve()

    def do_PATCH(self) -> None:
        self._serve()

    def do_OPTIONS(self) -> None:
        self._serve()

    def _read_body(self) -> bytes | None:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            parts: list[bytes] = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    return b"".join(parts)
                parts.append(self.rfile.read(size))
                self.rfile.readline()
        length = self.headers.get("Content-Length")
        if length is None:
            return b""
        try:
            return self.rfile.read(int(length))
        except ValueError:
            return None

    def _serve(self) -> None:
        try:
            body = self._read_body()
        except ValueError:
            body = None
        if body is None:
            self.close_connection = True
            self._write(Response(400, b"400 Bad Request", "text/plain"))
            return
        path = urlsplit(self.path).path
        self.server.api.note_headers(path, dict(self.headers.items()))
        try:
            response = self.server.api.handle(self.command, path, body)
        except Exception as err:  # a bug here must not hang the client
            logger.exception("LocalOllama failed on %s %s", self.command, path)
            response = Response(500, json_bytes({"error": f"{type(err).__name__}: {err}"}))
        if response.drop:
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        self._write(response)

    def _write(self, response: Response) -> None:
        try:
            self.send_response(response.status)
            self.send_header("Content-Type", response.content_type)
            if response.chunks is None:
                self.send_header("Content-Length", str(len(response.body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(response.body)
                return
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for chunk in response.chunks:
                self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                self.wfile.flush()  # NDJSON progress must reach the client line by line
            self.wfile.write(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True  # the client went away; nothing left to tell it

    def log_message(self, format: str, *args: Any) -> None:
        logger.info("%s %s", self.address_string(), format % args)


class LocalOllama:
    """A real HTTP server speaking Ollama's API, for tests, CI and demos without Ollama.

    Point the official ``ollama`` client, ``langchain_ollama.OllamaEmbeddings`` or
    ``ChatOllama`` at :attr:`url`; routes, bodies, status codes and error texts follow Ollama's.

    Example:
        >>> from ollama_rag.testing import HashEmbeddingModel, LocalOllama
        >>> with LocalOllama({"bge-m3": HashEmbeddingModel(dimension=1024)}) as server:
        ...     server.url.startswith("http://127.0.0.1:")
        True

    Args:
        models: Model name -> spec (:class:`HashEmbeddingModel`, :class:`MultilingualUSEModel`,
            :class:`ExtractiveChatModel`). Names may carry a tag; without one ``:latest`` is
            implied. ``None`` serves :func:`default_models`.
        host: Address to bind.
        port: Port to bind; 0 picks a free one.
        pullable: Models the server does not have yet but can "pull": they are missing from
            ``/api/tags`` (embedding them gives 404) until ``/api/pull`` installs them.
        version: What ``/api/version`` reports.
    """

    def __init__(
        self,
        models: Mapping[str, ModelSpec] | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        pullable: Mapping[str, ModelSpec] | None = None,
        version: str = OLLAMA_VERSION,
    ) -> None:
        self._api = OllamaAPI(version=version)
        for name, spec in (default_models() if models is None else models).items():
            self._api.add_model(name, spec)
        for name, spec in (pullable or {}).items():
            self._api.add_model(name, spec, installed=False)
        self._host = host
        self._port = port
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ----- lifecycle ----------------------------------------------------------------------

    def start(self) -> LocalOllama:
        """Bind and serve in a background thread; returns ``self``.

        Raises:
            RuntimeError: If it is already running.
            OSError: If the address cannot be bound (e.g. the port is taken).
        """
        if self._httpd is not None:
            msg = "LocalOllama is already running"
            raise RuntimeError(msg)
        self._api.stopping.clear()
        httpd = _HTTPServer((self._host, self._port), self._api)
        # A short poll interval makes shutdown() return within ~50 ms instead of 0.5 s.
        thread = threading.Thread(
            target=httpd.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"LocalOllama:{httpd.server_address[1]}",
            daemon=True,
        )
        thread.start()
        self._httpd, self._thread = httpd, thread
        return self

    def stop(self) -> None:
        """Stop serving and close every connection (idle keep-alive ones included)."""
        httpd, thread = self._httpd, self._thread
        if httpd is None or thread is None:
            return
        self._api.stopping.set()  # wakes requests sleeping in a simulated delay
        httpd.shutdown()
        httpd.close_connections()
        httpd.server_close()
        thread.join(timeout=5)
        self._httpd = self._thread = None

    def __enter__(self) -> LocalOllama:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        """Whether the server is serving."""
        return self._httpd is not None

    @property
    def host(self) -> str:
        """The bound address."""
        return self._host if self._httpd is None else str(self._httpd.server_address[0])

    @property
    def port(self) -> int:
        """The bound port (the real one when 0 was asked for)."""
        if self._httpd is None:
            msg = "LocalOllama is not running: call start() or use it as a context manager"
            raise RuntimeError(msg)
        return int(self._httpd.server_address[1])

    @property
    def url(self) -> str:
        """``http://HOST:PORT`` to give a client (loopback when bound to all interfaces)."""
        port = self.port
        host = self._host
        if host in _WILDCARD_HOSTS:
            host = "::1" if ":" in host else "127.0.0.1"
        return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"

    # ----- models -------------------------------------------------------------------------

    @property
    def models(self) -> list[str]:
        """Installed models' canonical names (``name:tag``), in registration order."""
        return self._api.installed_names()

    def add_model(self, name: str, spec: ModelSpec, *, installed: bool = True) -> str:
        """Register a model at runtime (``installed=False``: pullable only).

        Returns:
            The canonical name, e.g. ``"bge-m3:latest"``.
        """
        return self._api.add_model(name, spec, installed=installed)

    def remove_model(self, name: str) -> None:
        """Uninstall a model, like ``ollama rm``: gone from ``/api/tags``, still pullable.

        Raises:
            KeyError: If no such model is installed.
        """
        self._api.remove_model(name)

    def spec(self, name: str) -> ModelSpec:
        """The spec served under ``name`` (a hash model's seed is pinned here).

        ``server.spec("bge-m3").embed(texts)`` gives exactly what ``/api/embed`` returns.
        """
        return self._api.model_entry(name)[1]

    def digest(self, name: str) -> str:
        """The model's digest as ``/api/tags`` shows it (64 hex characters, no prefix)."""
        return self._api.model_entry(name)[2]

    def set_digest(self, name: str, digest: str) -> None:
        """Change a model's digest (and modified_at), simulating a re-pull of a new version.

        Args:
            name: The model, with or without tag.
            digest: 64 hex characters, optionally prefixed with ``sha256:``.
        """
        self._api.set_digest(name, digest)

    # ----- test hooks ---------------------------------------------------------------------

    def request_count(self, model: str) -> int:
        """Requests naming ``model`` to a model route (embed, embeddings, chat, generate).

        Every request counts, whether it succeeded, failed validation or got an injected
        failure; ``bge-m3`` and ``bge-m3:latest`` are the same model.

        Raises:
            KeyError: If the server has no such model (catches typos in tests).
        """
        return self._api.request_count(model)

    def received(self, model: str) -> list[str]:
        """A copy of every input text sent to ``model``, in order, exactly as decoded.

        Texts are recorded before truncation; ``input: ""`` (no input for Ollama) records none.
        For ``/api/chat`` each non-empty message content is one text; for ``/api/generate``
        ``system`` and ``prompt`` are.
        """
        return self._api.received(model)

    def request_headers(self, path: str = "/api/embed") -> list[dict[str, str]]:
        """The HTTP headers of every request to ``path`` since the last reset, in order.

        For checking what a client sends besides the body: an ``authorization`` header from a
        URL with credentials, headers from ``client_kwargs``, the client's ``user-agent``.
        Names are lower-case (HTTP header names are case-insensitive).
        """
        return self._api.request_headers(path)

    def reset_counters(self) -> None:
        """Zero request counts, received inputs, headers, busy time and peak concurrency."""
        self._api.reset_counters()

    def reset(self) -> None:
        """:meth:`reset_counters`, clear queued failures, remove any delay (slots=1), resume."""
        self._api.reset_counters()
        self._api.clear_failures()
        self._api.set_delay()
        self._api.resume()

    def set_delay(self, per_request: float = 0.0, per_input: float = 0.0, slots: int = 1) -> None:
        """Simulate a slow CPU server.

        An embedding request holds one of ``slots`` compute slots (Ollama loads embedding
        models with parallel=1, hence the default) for ``per_request + per_input * inputs``
        seconds plus the real compute; other requests queue for a slot. A chat or generate
        request holds a slot like an embedding request of one input, then streams its answer.

        Raises:
            ValueError: For negative delays or fewer than 1 slot.
        """
        self._api.set_delay(per_request=per_request, per_input=per_input, slots=slots)

    def pause(self) -> None:
        """Hold every model request, counted but unanswered, until :meth:`resume`.

        For a client that must stay busy mid-request for as long as a test needs, however
        slow the machine: a process indexing holds its index open until the test resumes the
        server, instead of for a fixed delay it might outlive or finish before. Held requests
        take no compute slot; :meth:`request_count` shows that they arrived.
        """
        self._api.pause()

    def resume(self) -> None:
        """Answer the requests held by :meth:`pause`, and serve later ones at once again."""
        self._api.resume()

    def fail_next(self, n: int = 1, status: Failure = 500) -> None:
        """Make the next ``n`` requests to a model route fail.

        Only ``/api/embed``, ``/api/embeddings``, ``/api/chat`` and ``/api/generate`` consume
        failures (``/api/tags``, ``/api/show``, ``/api/ps`` and ``/api/pull`` are unaffected),
        whatever the request contains. Calls queue up.

        Args:
            n: How many requests fail.
            status: ``500`` (``llama runner process has terminated: exit status 2``),
                ``503`` (Ollama's queue-full text) or ``"drop"`` (the connection closes
                without an answer; httpx raises ``RemoteProtocolError``).

        Raises:
            ValueError: For another status or a negative ``n``.
        """
        self._api.fail_next(n, status)

    @property
    def pending_failures(self) -> int:
        """Failures queued by :meth:`fail_next` that no request has consumed yet."""
        return self._api.pending_failures

    @property
    def busy_seconds(self) -> float:
        """Total seconds model requests held a compute slot (for throughput figures)."""
        return self._api.busy_seconds

    @property
    def peak_concurrency(self) -> int:
        """Most model requests holding a slot at once since the last reset."""
        return self._api.peak_concurrency

    def __repr__(self) -> str:
        where = self.url if self.running else "stopped"
        return f"<LocalOllama {where} models={self.models}>"
