"""``/api/chat`` and ``/api/generate`` as plain functions: decoding, completion, answer records.

No server state here: ``_api.py`` finds the model, counts the request and holds a slot, then
calls these. Field types, texts and records follow Ollama 0.20 (``api/types.go`` ChatRequest,
GenerateRequest, ChatResponse, GenerateResponse, Metrics; ``server/routes.go`` ChatHandler,
GenerateHandler; ``llm/server.go`` Completion for ``format``).
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from ollama_rag.testing._models import ExtractiveChatModel
from ollama_rag.testing._wire import DecodeError, decode_body, parse_keep_alive, unmarshal_error

__all__ = [
    "NOT_FOUND_MESSAGE",
    "RAW_MESSAGE",
    "TOP_LOGPROBS_MESSAGE",
    "Completion",
    "Route",
    "Turn",
    "complete",
    "decode_turn",
    "format_error",
    "merged",
    "records",
    "refusal",
]

Route = Literal["chat", "generate"]

# Both handlers look the model up before scheduling it (Ollama >= 0.12), so an unknown model
# gets show's single-quoted text, not embed's "try pulling it first".
NOT_FOUND_MESSAGE = "model '{model}' not found"
RAW_MESSAGE = "raw mode does not support template, system, or context"
TOP_LOGPROBS_MESSAGE = "top_logprobs must be between 0 and 20"
_THINK_VALUES = ("high", "medium", "low")

_COMMON_FIELDS = {
    "model": "string",
    "stream": "bool",
    "format": "any",
    "keep_alive": "duration",
    "options": "map",
    "think": "any",
    "truncate": "bool",
    "shift": "bool",
    "logprobs": "bool",
    "top_logprobs": "int",
}
_FIELDS: dict[Route, dict[str, str]] = {
    "chat": {**_COMMON_FIELDS, "messages": "any", "tools": "any"},
    "generate": {
        **_COMMON_FIELDS,
        "prompt": "string",
        "suffix": "string",
        "system": "string",
        "template": "string",
        "context": "any",
        "raw": "bool",
        "images": "any",
    },
}
_STRUCTS: dict[Route, str] = {"chat": "ChatRequest", "generate": "GenerateRequest"}


@dataclass(frozen=True)
class Turn:
    """One decoded ``/api/chat`` or ``/api/generate`` request.

    ``messages`` is what the model reads: a chat's messages, or a generate's ``system`` and
    ``prompt`` as a system and a user message.
    """

    route: Route
    model: str
    messages: list[dict[str, str]]
    stream: bool = True
    keep_alive: float | None = None
    options: dict[str, Any] = field(default_factory=dict)
    format: Any = None
    tools: list[Any] = field(default_factory=list)
    think: bool = False
    top_logprobs: int = 0
    prompt: str = ""
    suffix: str = ""
    raw: bool = False
    context: list[int] = field(default_factory=list)
    has_template_or_system: bool = False

    @property
    def empty(self) -> bool:
        """No messages (chat) or no prompt (generate): a load or unload request."""
        return not self.messages if self.route == "chat" else not self.prompt

    def texts(self) -> list[str]:
        """The inputs :meth:`LocalOllama.received` records: every message's content."""
        return [m["content"] for m in self.messages if m["content"]]


def _messages(value: Any) -> list[dict[str, str]]:
    if value is None:
        return []
    if not isinstance(value, list):
        target = "Go struct field ChatRequest.messages of type []api.Message"
        raise DecodeError(unmarshal_error(value, target))
    messages = []
    for item in value:
        item = {} if item is None else item  # Go decodes a null element as a zero Message
        # Message has its own UnmarshalJSON through an alias type, hence "api.Alias".
        if not isinstance(item, dict):
            raise DecodeError(unmarshal_error(item, "Go value of type api.Alias"))
        message = {}
        for key in ("role", "content"):
            text = item.get(key)
            if text is not None and not isinstance(text, str):
                target = f"Go struct field Alias.{key} of type string"
                raise DecodeError(unmarshal_error(text, target))
            message[key] = text or ""
        message["role"] = message["role"].lower()
        messages.append(message)
    return messages


def _think(value: Any) -> bool:
    """Whether ``think`` asks for thinking (api.ThinkValue: a bool or high/medium/low)."""
    if value is None or isinstance(value, bool):
        return bool(value)
    if isinstance(value, str):
        if value in _THINK_VALUES:
            return True
        msg = f'invalid think value: "{value}" (must be "high", "medium", "low", true, or false)'
        raise DecodeError(msg)
    raise DecodeError('think must be a boolean or string ("high", "medium", "low", true, or false)')


def _list(value: Any, target: str, item_ok: Any = None, item_target: str = "") -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise DecodeError(unmarshal_error(value, target))
    for item in value:
        if item_ok is not None and item is not None and not item_ok(item):
            raise DecodeError(unmarshal_error(item, item_target))
    return list(value)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def decode_turn(route: Route, body: bytes) -> Turn:
    """Decode a request body as Ollama binds it (unknown fields ignored, nulls unset).

    Raises:
        DecodeError: With Go's text (``missing request body``, a type error, a bad ``think``).
    """
    struct = _STRUCTS[route]
    req = decode_body(body, struct, _FIELDS[route])
    common: dict[str, Any] = {
        "model": req.get("model", ""),
        "stream": req.get("stream", True),
        "keep_alive": parse_keep_alive(req.get("keep_alive")),
        "options": {k: v for k, v in req.get("options", {}).items() if v is not None},
        "format": req.get("format"),
        "think": _think(req.get("think")),
        "top_logprobs": req.get("top_logprobs", 0),
    }
    if route == "chat":
        target = "Go struct field ChatRequest.tools of type api.Tools"
        tools = _list(req.get("tools"), target, lambda t: isinstance(t, dict), "api.Tool")
        return Turn("chat", messages=_messages(req.get("messages")), tools=tools, **common)
    context = _list(
        req.get("context"),
        f"Go struct field {struct}.context of type []int",
        _is_int,
        f"Go struct field {struct}.context of type int",
    )
    system, prompt = req.get("system", ""), req.get("prompt", "")
    messages = [{"role": "system", "content": system}] if system else []
    messages += [{"role": "user", "content": prompt}] if prompt else []
    return Turn(
        "generate",
        messages=messages,
        prompt=prompt,
        suffix=req.get("suffix", ""),
        raw=req.get("raw", False),
        context=context,
        has_template_or_system=bool(req.get("template") or system),
        **common,
    )


def refusal(turn: Turn, capabilities: Sequence[str], full_name: str) -> str | None:
    """Ollama's 400 text for a request the model cannot serve, in Ollama's order, or ``None``.

    Args:
        turn: The request.
        capabilities: The model's (``/api/show``'s ``capabilities``).
        full_name: ``registry.ollama.ai/library/x:latest``, which capability errors name.
    """
    if turn.raw and (turn.has_template_or_system or turn.context):
        return RAW_MESSAGE
    if turn.think and "thinking" not in capabilities:
        return f'"{turn.model}" does not support thinking'
    if "completion" not in capabilities:
        return f'"{turn.model}" does not support {turn.route}'
    wanted = ["tools"] * bool(turn.tools) + ["insert"] * bool(turn.suffix)
    missing = [c for c in wanted if c not in capabilities]
    if missing:
        return f"{full_name} does not support " + "\n".join(missing)  # Go's errors.Join
    return None


def format_error(value: Any) -> str | None:
    """The runner's refusal of a ``format`` that is neither "json" nor a schema, if it is one."""
    if value in (None, "", "json") or isinstance(value, dict):
        return None
    raw = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    quoted = json.dumps(raw, ensure_ascii=False)  # Go's %q of the raw bytes
    return f'invalid format: {quoted}; expected "json" or a valid JSON Schema object'


@dataclass(frozen=True)
class Completion:
    """A finished completion: output tokens, why it stopped, token counts and timings."""

    pieces: list[str]
    done_reason: str
    prompt_tokens: int
    context: list[int]
    prompt_seconds: float
    eval_seconds: float


def complete(spec: ExtractiveChatModel, turn: Turn) -> Completion:
    """Run the model on ``turn``, honouring ``options.stop`` and ``options.num_predict``."""
    started = time.perf_counter()
    prompt = turn.prompt if turn.raw else spec.render(turn.messages)
    prompt_tokens = len(turn.context) + spec.count_tokens(prompt)
    evaluated = time.perf_counter()
    text = spec.reply(turn.messages, format=turn.format or None)
    stops = turn.options.get("stop")
    for stop in stops if isinstance(stops, list) else []:
        if isinstance(stop, str) and stop and stop in text:
            text = text[: text.index(stop)]  # the runner stops before a stop sequence
    pieces = spec.pieces(text)
    reason = "stop"
    limit = turn.options.get("num_predict")  # <= 0 (-1: unlimited, -2: fill the context)
    if isinstance(limit, int) and not isinstance(limit, bool) and 0 < limit < len(pieces):
        pieces, reason = pieces[:limit], "length"
    # Like Ollama: the prompt and the answer tokenised, after any context sent in.
    context = [] if turn.raw else [*turn.context, *spec.token_ids(prompt + "".join(pieces))]
    done = time.perf_counter()
    return Completion(pieces, reason, prompt_tokens, context, evaluated - started, done - evaluated)


def records(
    turn: Turn,
    pieces: Sequence[str],
    final: Mapping[str, Any],
    *,
    created_at: str,
) -> list[dict[str, Any]]:
    """The NDJSON records of an answer: one per token, then the ``done`` record.

    Args:
        turn: The request.
        pieces: The output tokens.
        final: The keys of the last record after ``done`` (``done_reason``, ``context``,
            the metrics), in Go's field order.
        created_at: The timestamp every record carries.
    """

    def record(text: str, done: bool) -> dict[str, Any]:
        body: dict[str, Any] = {"model": turn.model, "created_at": created_at}
        if turn.route == "chat":
            body["message"] = {"role": "assistant", "content": text}
        else:
            body["response"] = text
        body["done"] = done
        return body

    return [*(record(p, False) for p in pieces), {**record("", True), **final}]


def merged(turn: Turn, lines: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The single answer of ``stream: false``: the last record holding all the text."""
    last = dict(lines[-1])
    if turn.route == "chat":
        text = "".join(line["message"]["content"] for line in lines)
        last["message"] = {**last["message"], "content": text}
    else:
        last["response"] = "".join(line["response"] for line in lines)
    return last
