"""Ollama's HTTP API as plain functions of a request: routes, bodies, status codes, texts.

Nothing here touches sockets; ``_server.py`` feeds requests in and writes :class:`Response`
out. Every status code and error text follows ollama-api.md (Ollama ``server/routes.go``);
the bodies of ``/api/chat`` and ``/api/generate`` are decoded and answered by ``_generation.py``.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Literal, TypeVar

import numpy as np

from ollama_rag.testing._generation import (
    NOT_FOUND_MESSAGE,
    TOP_LOGPROBS_MESSAGE,
    Completion,
    Route,
    Turn,
    complete,
    decode_turn,
    format_error,
    merged,
    records,
    refusal,
)
from ollama_rag.testing._models import (
    ExtractiveChatModel,
    FloatArray,
    ModelSpec,
    human_parameter_size,
    normalize_rows,
)
from ollama_rag.testing._wire import (
    DecodeError,
    canonical_name,
    decode_body,
    go_time,
    json_bytes,
    json_bytes_float32,
    parse_keep_alive,
    qualified_name,
)

__all__ = [
    "BUSY_MESSAGE",
    "CONTEXT_EXCEEDED_MESSAGE",
    "NOT_EMBEDDING_MESSAGE",
    "OLLAMA_VERSION",
    "RUNNER_FAILED_MESSAGE",
    "Failure",
    "OllamaAPI",
    "Response",
]

# Behaviour modelled: Ollama 0.20 (v0.13.3+ context texts, silent truncation by default, the
# Ollama engine's 501 for chat-only models). /api/tags also carries the details.*_length and
# capabilities fields newer servers add, since clients ignore fields they do not know.
OLLAMA_VERSION = "0.20.0"

JSON = "application/json; charset=utf-8"
TEXT = "text/plain; charset=utf-8"
NDJSON = "application/x-ndjson"

NOT_FOUND_EMBED = 'model "{model}" not found, try pulling it first'
NOT_FOUND_SHOW = "model '{model}' not found"
NOT_EMBEDDING_MESSAGE = "this model does not support embeddings"
CONTEXT_EXCEEDED_MESSAGE = "the input length exceeds the context length"
TRUNCATION_IMPOSSIBLE_MESSAGE = "input after truncation exceeds maximum context length"
BUSY_MESSAGE = "server busy, please try again.  maximum pending requests exceeded"
RUNNER_FAILED_MESSAGE = "llama runner process has terminated: exit status 2"
PULL_NOT_FOUND_MESSAGE = "pull model manifest: file does not exist"
KEEP_ALIVE_DEFAULT = 300.0  # OLLAMA_KEEP_ALIVE's default, 5m

Failure = Literal[500, 503, "drop"]
_T = TypeVar("_T")

_EMBED_FIELDS = {
    "model": "string",
    "input": "any",
    "truncate": "bool",
    "dimensions": "int",
    "keep_alive": "duration",
    "options": "map",
}
_EMBEDDINGS_FIELDS = {
    "model": "string",
    "prompt": "string",
    "keep_alive": "duration",
    "options": "map",
}
_SHOW_FIELDS = {
    "model": "string",
    "name": "string",
    "system": "string",
    "template": "string",
    "verbose": "bool",
    "options": "map",
}
_PULL_FIELDS = {
    "model": "string",
    "name": "string",
    "insecure": "bool",
    "stream": "bool",
    "username": "string",
    "password": "string",
}


@dataclass(frozen=True)
class Response:
    """One HTTP answer: a body, or NDJSON chunks streamed with chunked encoding, or a drop."""

    status: int
    body: bytes = b""
    content_type: str = JSON
    chunks: Iterator[bytes] | None = None
    drop: bool = False


def _json(status: int, payload: Any, content_type: str = JSON) -> Response:
    return Response(status, json_bytes(payload), content_type)


def _error(status: int, message: str) -> Response:
    return _json(status, {"error": message})


def _text(status: int, text: str, content_type: str = TEXT) -> Response:
    return Response(status, text.encode(), content_type)


class _ShutdownError(Exception):
    """The server stopped while the request waited or slept; its connection is dropped."""


class _RequestError(Exception):
    """Ends a request with an Ollama error answer."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass
class _Model:
    name: str  # canonical, with tag
    spec: ModelSpec
    digest: str
    modified_at: datetime
    installed: bool


def _ns(seconds: float) -> int:
    return int(seconds * 1e9)


def _omit_zero(payload: dict[str, Any]) -> dict[str, Any]:
    """Go's ``omitempty`` on the duration and count fields."""
    return {k: v for k, v in payload.items() if v != 0 or k in ("embeddings", "embedding")}


# Requests whose headers are kept (a test looks at a few; a benchmark must not grow memory).
MAX_RECORDED_HEADERS = 10_000


class OllamaAPI:
    """The state of one fake Ollama (models, counters, knobs) and its request handlers.

    Thread-safe: the HTTP server calls :meth:`handle` from one thread per connection.
    """

    def __init__(self, *, version: str = OLLAMA_VERSION) -> None:
        self.version = version
        self._lock = threading.Lock()
        self._models: dict[str, _Model] = {}
        self._requests: Counter[str] = Counter()
        self._received: dict[str, list[str]] = {}
        self._headers: list[tuple[str, dict[str, str]]] = []
        self._failures: deque[Failure] = deque()
        self._per_request = 0.0
        self._per_input = 0.0
        self._slots = threading.BoundedSemaphore(1)
        self._slot_count = 1
        self._busy = 0.0
        self._active = 0
        self._peak = 0
        self._last_modified = datetime.fromtimestamp(0, timezone.utc)
        self._loaded: dict[str, datetime] = {}  # canonical name -> when keep_alive unloads it
        self.stopping = threading.Event()
        self._open = threading.Event()  # cleared by pause(): model requests wait for resume()
        self._open.set()
        self._routes: dict[str, dict[str, Callable[[bytes], Response]]] = {
            "/": {"GET": self._root, "HEAD": self._root},
            "/api/version": {"GET": self._version, "HEAD": self._version},
            "/api/tags": {"GET": self._tags, "HEAD": self._tags},
            "/api/show": {"POST": self._show},
            "/api/embed": {"POST": self._embed},
            "/api/embeddings": {"POST": self._embeddings},
            "/api/pull": {"POST": self._pull},
            "/api/chat": {"POST": self._chat},
            "/api/generate": {"POST": self._generate},
            "/api/ps": {"GET": self._ps, "HEAD": self._ps},
        }

    # ----- registry -----------------------------------------------------------------------

    def add_model(self, name: str, spec: ModelSpec, *, installed: bool = True) -> str:
        """Register ``spec`` under ``name``; returns the canonical name (``name:latest``)."""
        canonical = canonical_name(name)
        effective = spec.for_name(canonical)
        with self._lock:
            model = _Model(canonical, effective, effective.digest(), self._now(), installed)
            self._models[canonical.lower()] = model
        return canonical

    def remove_model(self, name: str) -> None:
        """Uninstall a model like ``ollama rm``; it stays pullable."""
        with self._lock:
            model = self._find(name)
            if not model.installed:
                msg = f"model {name!r} is not installed"
                raise KeyError(msg)
            model.installed = False

    def set_digest(self, name: str, digest: str) -> None:
        """Give a model a new digest (and modification time), as a re-pull would."""
        hex_digest = digest.removeprefix("sha256:").lower()
        if len(hex_digest) != 64 or any(c not in "0123456789abcdef" for c in hex_digest):
            msg = f"a digest is 64 hex characters (optionally 'sha256:'-prefixed), got {digest!r}"
            raise ValueError(msg)
        with self._lock:
            model = self._find(name)
            model.digest = hex_digest
            model.modified_at = self._now()

    def model_entry(self, name: str) -> tuple[str, ModelSpec, str, bool]:
        """``(canonical name, effective spec, digest, installed)`` for a registered model."""
        with self._lock:
            model = self._find(name)
            return model.name, model.spec, model.digest, model.installed

    def installed_names(self) -> list[str]:
        """Canonical names of the installed models, in registration order."""
        with self._lock:
            return [m.name for m in self._models.values() if m.installed]

    def _now(self) -> datetime:
        """Now, strictly later than any earlier call (call under the lock).

        Two models registered within one clock tick must still sort deterministically
        ("most recently modified first") in /api/tags.
        """
        now = datetime.now(timezone.utc)
        if now <= self._last_modified:
            now = self._last_modified + timedelta(microseconds=1)
        self._last_modified = now
        return now

    def _find(self, name: str) -> _Model:
        model = self._models.get(canonical_name(name).lower())
        if model is None:
            known = ", ".join(m.name for m in self._models.values()) or "none"
            msg = f"LocalOllama has no model {name!r} (registered: {known})"
            raise KeyError(msg)
        return model

    def _installed(self, name: str) -> _Model | None:
        with self._lock:
            model = self._models.get(canonical_name(name).lower())
            return model if model is not None and model.installed else None

    # ----- test hooks ---------------------------------------------------------------------

    def request_count(self, name: str) -> int:
        """Model requests (embed, chat, generate) that named this model (succeeded or not)."""
        with self._lock:
            return self._requests[self._find(name).name]

    def received(self, name: str) -> list[str]:
        """A copy of every input text the model was sent, in arrival order."""
        with self._lock:
            return list(self._received.get(self._find(name).name, []))

    def note_headers(self, path: str, headers: Mapping[str, str]) -> None:
        """Record the HTTP headers of a request to ``path`` (see :meth:`request_headers`)."""
        with self._lock:
            if len(self._headers) < MAX_RECORDED_HEADERS:
                self._headers.append((path, {k.lower(): v for k, v in headers.items()}))

    def request_headers(self, path: str) -> list[dict[str, str]]:
        """The headers of the requests to ``path`` since the last reset, in order."""
        with self._lock:
            return [dict(h) for p, h in self._headers if p == path]

    def reset_counters(self) -> None:
        """Zero the request counts, received inputs, headers, busy time and peak concurrency."""
        with self._lock:
            self._requests.clear()
            self._received.clear()
            self._headers.clear()
            self._busy = 0.0
            self._peak = 0

    def set_delay(
        self, *, per_request: float = 0.0, per_input: float = 0.0, slots: int = 1
    ) -> None:
        """Simulate a slow server; see :meth:`LocalOllama.set_delay`."""
        if per_request < 0 or per_input < 0:
            msg = f"delays must be >= 0, got per_request={per_request}, per_input={per_input}"
            raise ValueError(msg)
        if slots < 1:
            msg = f"slots must be at least 1, got {slots}"
            raise ValueError(msg)
        with self._lock:
            self._per_request = per_request
            self._per_input = per_input
            if slots != self._slot_count:
                # Requests already waiting keep the old semaphore; new ones use the new size.
                self._slots = threading.BoundedSemaphore(slots)
                self._slot_count = slots

    def fail_next(self, n: int = 1, status: Failure = 500) -> None:
        """Queue ``n`` failures for the next model requests (see ``LocalOllama``)."""
        if status not in (500, 503, "drop"):
            msg = f"status must be 500, 503 or 'drop', got {status!r}"
            raise ValueError(msg)
        if n < 0:
            msg = f"n must be >= 0, got {n}"
            raise ValueError(msg)
        with self._lock:
            self._failures.extend([status] * n)

    def pause(self) -> None:
        """Hold model requests before their slot until :meth:`resume` (see ``LocalOllama``)."""
        self._open.clear()

    def resume(self) -> None:
        """Let requests held by :meth:`pause` (and later ones) go on."""
        self._open.set()

    def clear_failures(self) -> None:
        """Forget failures queued by :meth:`fail_next` that no request has consumed."""
        with self._lock:
            self._failures.clear()

    @property
    def pending_failures(self) -> int:
        """Failures queued by :meth:`fail_next` and not consumed yet."""
        with self._lock:
            return len(self._failures)

    @property
    def busy_seconds(self) -> float:
        """Total seconds model requests held a compute slot."""
        with self._lock:
            return self._busy

    @property
    def peak_concurrency(self) -> int:
        """Most model requests computing at the same time since the last reset."""
        with self._lock:
            return self._peak

    # ----- dispatch -----------------------------------------------------------------------

    def handle(self, method: str, path: str, body: bytes) -> Response:
        """Answer one request as Ollama would (gin's 404/405 for unknown routes/methods)."""
        route = self._routes.get(path)
        if route is None:
            return _text(404, "404 page not found", "text/plain")
        handler = route.get(method)
        if handler is None:
            return _text(405, "405 method not allowed", "text/plain")
        try:
            return handler(body)
        except _RequestError as err:
            return _error(err.status, err.message)
        except _ShutdownError:
            return Response(0, drop=True)

    # ----- simple routes ------------------------------------------------------------------

    def _root(self, body: bytes) -> Response:
        return _text(200, "Ollama is running")

    def _version(self, body: bytes) -> Response:
        return _json(200, {"version": self.version})

    def _tags(self, body: bytes) -> Response:
        with self._lock:
            models = [m for m in self._models.values() if m.installed]
        # Most recently modified first, like ListHandler; ties keep registration order.
        models.sort(key=lambda m: m.modified_at, reverse=True)
        entries = []
        for m in models:
            details = {
                **_details(m.spec),
                "context_length": m.spec.context_length,
                "embedding_length": m.spec.dimension,
            }
            entries.append(
                {
                    "name": m.name,
                    "model": m.name,
                    "modified_at": go_time(m.modified_at),
                    "size": m.spec.size,
                    "digest": m.digest,
                    "details": details,
                    "capabilities": list(m.spec.capabilities),
                }
            )
        return _json(200, {"models": entries})

    def _show(self, body: bytes) -> Response:
        req = _decode(body, "ShowRequest", _SHOW_FIELDS)
        sent = req.get("model") or req.get("name") or ""
        if not sent:
            raise _RequestError(400, "model is required")
        model = self._installed(sent)
        if model is None:
            raise _RequestError(404, NOT_FOUND_SHOW.format(model=sent))
        spec = model.spec
        layer = _layer_digest(model.digest, "model")
        parameters = "\n".join(f"{key:<30} {value}" for key, value in _parameters(spec))
        modelfile = (
            '# Modelfile generated by "ollama show"\n'
            "# To build a new Modelfile based on this, replace FROM with:\n"
            f"# FROM {model.name}\n\n"
            f"FROM /usr/share/ollama/.ollama/models/blobs/sha256-{layer}\n"
            f'TEMPLATE """{spec.template}"""\n'
            + "".join(f"PARAMETER {key} {value}\n" for key, value in _parameters(spec))
        )
        return _json(
            200,
            {
                "modelfile": modelfile,
                "parameters": parameters,
                "template": spec.template,
                "details": _details(spec),
                "model_info": spec.model_info(),
                "capabilities": list(spec.capabilities),
                "modified_at": go_time(model.modified_at),
            },
        )

    # ----- embeddings ---------------------------------------------------------------------

    def _embed(self, body: bytes) -> Response:
        started = time.perf_counter()
        req, decode_error = _try_decode(body, "EmbedRequest", _EMBED_FIELDS)
        sent = str(req.get("model", ""))
        inputs = _embed_inputs(req.get("input"))
        model = self._installed(sent) if sent else None
        failure = self._arrive(model, inputs or [])
        if failure is not None:
            return failure
        if decode_error is not None:
            raise _RequestError(400, str(decode_error))
        if inputs is None:
            raise _RequestError(400, "invalid input type")
        if not sent:
            raise _RequestError(400, "model is required")
        if model is None:
            raise _RequestError(404, NOT_FOUND_EMBED.format(model=sent))
        spec = model.spec
        limit = _context_limit(spec, req.get("options"))
        truncate = req.get("truncate", True)

        def compute() -> tuple[FloatArray, int]:
            if "embedding" not in spec.capabilities:
                raise _RequestError(501, NOT_EMBEDDING_MESSAGE)
            texts, tokens = _fit(spec, inputs, limit, truncate=truncate)
            return spec.embed(texts), tokens

        keep_alive = parse_keep_alive(req.get("keep_alive"))
        if not inputs:
            self._hold_slot(model, keep_alive, 0, lambda: None)
            return _json(200, {"model": sent, "embeddings": []})
        (vectors, tokens), loaded_at = self._hold_slot(model, keep_alive, len(inputs), compute)
        dimensions = req.get("dimensions", 0)
        if 0 < dimensions < vectors.shape[1]:
            vectors = normalize_rows(vectors[:, :dimensions])
        payload = {
            "model": sent,
            "embeddings": None,  # written at float32 precision, as Ollama's []float32
            "total_duration": _ns(time.perf_counter() - started),
            "load_duration": _ns(loaded_at - started),
            "prompt_eval_count": tokens,
        }
        rows = vectors.astype(np.float32).tolist()  # Python floats holding float32 values
        return Response(200, json_bytes_float32(_omit_zero(payload), "embeddings", rows), JSON)

    def _embeddings(self, body: bytes) -> Response:
        req, decode_error = _try_decode(body, "EmbeddingRequest", _EMBEDDINGS_FIELDS)
        sent = str(req.get("model", ""))
        prompt = req.get("prompt", "")
        model = self._installed(sent) if sent else None
        failure = self._arrive(model, [prompt] if isinstance(prompt, str) and prompt else [])
        if failure is not None:
            return failure
        if decode_error is not None:
            raise _RequestError(400, str(decode_error))
        if not sent:
            raise _RequestError(400, "model is required")
        if model is None:
            raise _RequestError(404, NOT_FOUND_EMBED.format(model=sent))
        spec = model.spec
        limit = _context_limit(spec, req.get("options"))

        def compute() -> FloatArray:
            # The legacy handler turns every runner error into a 500 and never truncates.
            if "embedding" not in spec.capabilities:
                raise _RequestError(500, NOT_EMBEDDING_MESSAGE)
            if spec.count_tokens(prompt) > limit:
                raise _RequestError(500, CONTEXT_EXCEEDED_MESSAGE)
            return spec.embed_raw([prompt])

        keep_alive = parse_keep_alive(req.get("keep_alive"))
        if not prompt:
            self._hold_slot(model, keep_alive, 0, lambda: None)
            return _json(200, {"embedding": []})
        vectors, _ = self._hold_slot(model, keep_alive, 1, compute)
        return _json(200, {"embedding": vectors[0].astype(np.float64).tolist()})

    def _arrive(self, model: _Model | None, inputs: list[str]) -> Response | None:
        """Count the request and consume a queued failure, if any (before any validation)."""
        with self._lock:
            if model is not None:
                self._requests[model.name] += 1
                self._received.setdefault(model.name, []).extend(inputs)
            failure = self._failures.popleft() if self._failures else None
        if failure == "drop":
            return Response(0, drop=True)
        if failure == 503:
            return _error(503, BUSY_MESSAGE)
        if failure == 500:
            return _error(500, RUNNER_FAILED_MESSAGE)
        return None

    def _hold_slot(
        self, model: _Model, keep_alive: float | None, n_inputs: int, work: Callable[[], _T]
    ) -> tuple[_T, float]:
        """Run ``work`` holding a compute slot; returns its result and when the model was ready.

        The model then stays loaded for ``keep_alive`` seconds (see :meth:`_keep_loaded`).
        """
        with self._lock:
            slots, per_request, per_input = self._slots, self._per_request, self._per_input
        while not self._open.wait(timeout=0.05):
            if self.stopping.is_set():
                raise _ShutdownError
        while not slots.acquire(timeout=0.05):
            if self.stopping.is_set():
                raise _ShutdownError
        held = time.perf_counter()
        with self._lock:
            self._active += 1
            self._peak = max(self._peak, self._active)
        try:
            model.spec.load()
            loaded_at = time.perf_counter()
            if self.stopping.wait(per_request + per_input * n_inputs):
                raise _ShutdownError
            return work(), loaded_at
        finally:
            with self._lock:
                self._active -= 1
                self._busy += time.perf_counter() - held
            slots.release()
            self._keep_loaded(model, keep_alive)

    # ----- chat and generate --------------------------------------------------------------

    def _chat(self, body: bytes) -> Response:
        return self._complete("chat", body)

    def _generate(self, body: bytes) -> Response:
        return self._complete("generate", body)

    def _complete(self, route: Route, body: bytes) -> Response:
        """ChatHandler / GenerateHandler: the checks in Ollama's order, then the answer."""
        started = time.perf_counter()
        turn: Turn | None = None
        try:
            turn = decode_turn(route, body)
        except DecodeError as err:
            decode_error = err
        sent = turn.model if turn is not None else ""
        model = self._installed(sent) if sent else None
        failure = self._arrive(model, turn.texts() if turn is not None else [])
        if failure is not None:
            return failure
        if turn is None:
            raise _RequestError(400, str(decode_error))
        if not 0 <= turn.top_logprobs <= 20:
            raise _RequestError(400, TOP_LOGPROBS_MESSAGE)
        if not sent and route == "chat":
            raise _RequestError(400, "model is required")
        if model is None:  # generate reports a missing name as "model '' not found"
            raise _RequestError(404, NOT_FOUND_MESSAGE.format(model=sent))
        if turn.empty and turn.keep_alive == 0:
            self._keep_loaded(model, 0.0)
            return _json(200, self._answer(turn, [], {"done_reason": "unload"})[-1])
        spec = model.spec
        refused = refusal(turn, spec.capabilities, qualified_name(model.name))
        if refused is not None:
            raise _RequestError(400, refused)
        if not isinstance(spec, ExtractiveChatModel):  # a spec claiming completion it cannot do
            raise _RequestError(400, f'"{sent}" does not support {route}')
        chat_spec = spec  # narrowed for work()

        def work() -> Completion | None:
            if turn.empty:
                return None
            error = format_error(turn.format)
            if error is not None:  # the runner refuses it once the model is loaded
                raise _RequestError(500, error)
            return complete(chat_spec, turn)

        done, loaded_at = self._hold_slot(model, turn.keep_alive, 1, work)
        if done is None:
            return _json(200, self._answer(turn, [], {"done_reason": "load"})[-1])
        final: dict[str, Any] = {"done_reason": done.done_reason}
        if route == "generate" and done.context:
            final["context"] = done.context
        metrics = {
            "total_duration": _ns(time.perf_counter() - started),
            "load_duration": _ns(loaded_at - started),
            "prompt_eval_count": done.prompt_tokens,
            "prompt_eval_duration": _ns(done.prompt_seconds),
            "eval_count": len(done.pieces),
            "eval_duration": _ns(done.eval_seconds),
        }
        lines = self._answer(turn, done.pieces, {**final, **_omit_zero(metrics)})
        if not turn.stream:
            return _json(200, merged(turn, lines))
        return Response(200, content_type=NDJSON, chunks=(json_bytes(x) + b"\n" for x in lines))

    @staticmethod
    def _answer(turn: Turn, pieces: list[str], final: dict[str, Any]) -> list[dict[str, Any]]:
        return records(turn, pieces, final, created_at=go_time(datetime.now(timezone.utc)))

    # ----- loaded models (keep_alive) -----------------------------------------------------

    def _keep_loaded(self, model: _Model, keep_alive: float | None) -> None:
        """The model stays loaded ``keep_alive`` seconds after a request (0: unloaded now)."""
        seconds = KEEP_ALIVE_DEFAULT if keep_alive is None else keep_alive
        until = datetime.now(timezone.utc) + timedelta(seconds=seconds)
        with self._lock:
            self._loaded[model.name] = until

    def _ps(self, body: bytes) -> Response:
        now = datetime.now(timezone.utc)
        with self._lock:
            loaded = [
                (self._models[name.lower()], until)
                for name, until in self._loaded.items()
                if until > now and self._models[name.lower()].installed
            ]
        loaded.sort(key=lambda entry: entry[1], reverse=True)  # longest remaining first
        entries = [
            {
                "name": m.name,
                "model": m.name,
                "size": m.spec.size,
                "digest": m.digest,
                "details": _details(m.spec),
                "expires_at": go_time(until),
                "size_vram": 0,  # a CPU server
                "context_length": m.spec.context_length,
            }
            for m, until in loaded
        ]
        return _json(200, {"models": entries})

    # ----- pull ---------------------------------------------------------------------------

    def _pull(self, body: bytes) -> Response:
        req = _decode(body, "PullRequest", _PULL_FIELDS)
        sent = req.get("model") or req.get("name") or ""
        if not sent:
            raise _RequestError(400, "invalid model name")
        with self._lock:
            model = self._models.get(canonical_name(sent).lower())
        lines = self._pull_lines(model)
        if req.get("stream", True):
            return Response(200, content_type=NDJSON, chunks=(json_bytes(x) + b"\n" for x in lines))
        last: dict[str, Any] = {}
        for line in lines:
            if "error" in line:
                raise _RequestError(500, line["error"])
            last = line
        # waitForStream sets a bare application/json before c.JSON, so no charset here.
        return _json(200, last, "application/json")

    def _pull_lines(self, model: _Model | None) -> Iterator[dict[str, Any]]:
        yield {"status": "pulling manifest"}
        if model is None:
            yield {"error": PULL_NOT_FOUND_MESSAGE}
            return
        layers = [("model", model.spec.size), ("template", 24), ("params", 18)]
        for kind, total in layers:
            digest = _layer_digest(model.digest, kind)
            status = f"pulling {digest[:12]}"
            base = {"status": status, "digest": f"sha256:{digest}", "total": total}
            yield base  # Go omits "completed" while it is 0
            if total > 1000:
                yield {**base, "completed": total // 2}
            yield {**base, "completed": total}
        yield {"status": "verifying sha256 digest"}
        yield {"status": "writing manifest"}
        with self._lock:
            if not model.installed:
                model.installed = True
                model.modified_at = self._now()
        yield {"status": "removing any unused layers"}
        yield {"status": "success"}


def _decode(body: bytes, struct: str, fields: Mapping[str, str]) -> dict[str, Any]:
    try:
        return decode_body(body, struct, fields)
    except DecodeError as err:
        raise _RequestError(400, str(err)) from err


def _try_decode(
    body: bytes, struct: str, fields: Mapping[str, str]
) -> tuple[dict[str, Any], DecodeError | None]:
    try:
        return decode_body(body, struct, fields), None
    except DecodeError as err:
        return {}, err


def _embed_inputs(value: Any) -> list[str] | None:
    """The inputs Ollama embeds: "" and null mean none; None flags an invalid type."""
    if value is None:
        return []
    if isinstance(value, str):
        return [value] if value else []
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return list(value)
    return None


def _context_limit(spec: ModelSpec, options: Any) -> int:
    """``min(num_ctx, trained context)``; ``options.num_ctx`` null or absent means the model's."""
    limit = spec.context_length
    num_ctx = options.get("num_ctx") if isinstance(options, dict) else None
    if isinstance(num_ctx, int | float) and not isinstance(num_ctx, bool) and num_ctx > 0:
        limit = min(limit, int(num_ctx))
    return limit


def _fit(
    spec: ModelSpec, inputs: list[str], limit: int, *, truncate: bool
) -> tuple[list[str], int]:
    """Apply the context limit to every input; returns the texts to embed and their tokens."""
    texts: list[str] = []
    total = 0
    for text in inputs:
        count = spec.count_tokens(text)
        if count > limit:
            if not truncate:
                raise _RequestError(400, CONTEXT_EXCEEDED_MESSAGE)
            if limit <= 2:
                raise _RequestError(400, TRUNCATION_IMPOSSIBLE_MESSAGE)
            text = spec.truncate(text, limit)
            count = spec.count_tokens(text)
        texts.append(text)
        total += count
    return texts, total


def _details(spec: ModelSpec) -> dict[str, Any]:
    return {
        "parent_model": "",
        "format": "gguf",
        "family": spec.architecture,
        "families": [spec.architecture],
        "parameter_size": human_parameter_size(spec.parameter_count),
        "quantization_level": spec.quantization_level,
    }


def _parameters(spec: ModelSpec) -> list[tuple[str, str]]:
    if "embedding" in spec.capabilities:
        return [("num_ctx", str(spec.context_length))]
    return [("stop", '"<|start_header_id|>"'), ("stop", '"<|eot_id|>"')]


def _layer_digest(manifest_digest: str, kind: str) -> str:
    return hashlib.sha256(f"{manifest_digest}:{kind}".encode()).hexdigest()
