"""Wire-level details copied from Ollama: model names, Go JSON decoding errors, durations.

Ollama is written in Go and decodes bodies with ``encoding/json`` into typed structs, so a
field of the wrong type yields Go's text, and durations follow ``time.ParseDuration``.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from typing import Any

__all__ = [
    "DecodeError",
    "canonical_name",
    "decode_body",
    "display_name",
    "go_time",
    "json_bytes",
    "json_bytes_float32",
    "parse_keep_alive",
    "qualified_name",
    "unmarshal_error",
]

_REGISTRY = "registry.ollama.ai"
_FOREVER_SECONDS = float(2**63 - 1) / 1e9  # Go's math.MaxInt64 nanoseconds


class DecodeError(ValueError):
    """A request body Ollama would reject with 400 and this message."""


def canonical_name(name: str) -> str:
    """Ollama's short display form of a model name, always with a tag.

    ``bge-m3``, ``bge-m3:latest``, ``library/bge-m3`` and
    ``registry.ollama.ai/library/bge-m3:latest`` all name ``bge-m3:latest``.

    >>> canonical_name("bge-m3")
    'bge-m3:latest'
    >>> canonical_name("registry.ollama.ai/library/nomic-embed-text:v1.5")
    'nomic-embed-text:v1.5'
    >>> canonical_name("me/custom")
    'me/custom:latest'
    """
    path, _, last = name.strip().rpartition("/")
    base, sep, tag = last.partition(":")
    parts = [*path.split("/"), base] if path else [base]
    if len(parts) == 3 and parts[0].lower() == _REGISTRY:
        parts = parts[1:]
    if len(parts) == 2 and parts[0].lower() == "library":
        parts = parts[1:]
    return "/".join(parts) + ":" + (tag if sep and tag else "latest")


def qualified_name(canonical: str) -> str:
    """The full name Ollama puts in capability errors (``registry.ollama.ai/library/x:latest``).

    >>> qualified_name("qwen2.5:latest"), qualified_name("me/custom:latest")
    ('registry.ollama.ai/library/qwen2.5:latest', 'registry.ollama.ai/me/custom:latest')
    """
    parts = canonical.split("/")
    prefix = [_REGISTRY, "library"][: 3 - len(parts)] if len(parts) < 3 else []
    return "/".join([*prefix, *parts])


def display_name(name: str) -> str:
    """A canonical name without a ``:latest`` tag, for messages meant for people."""
    return name.removesuffix(":latest")


def go_time(moment: datetime) -> str:
    """RFC 3339 with a ``Z`` suffix, the way Go marshals a UTC ``time.Time``."""
    return moment.astimezone(timezone.utc).isoformat(timespec="microseconds").replace("+00:00", "Z")


def json_bytes(payload: Any) -> bytes:
    """Compact UTF-8 JSON, like Go's ``json.Marshal``."""
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()


def json_bytes_float32(
    payload: Mapping[str, Any], key: str, rows: Sequence[Sequence[float]]
) -> bytes:
    """Like :func:`json_bytes`, with ``payload[key]`` set to ``rows`` written as ``[][]float32``.

    Go marshals a float32 in the fewest digits that read back as the same float32 (at most 9
    significant ones), which is what Ollama sends for ``/api/embed``. Python would write the
    same values as float64, in up to 17 digits: an answer almost twice as long as a real
    Ollama's, which clients would then spend twice as long parsing. ``%.9g`` reads back as the
    same float32 too, and is as long as Go's within a few per cent. Non-finite values, which Go
    cannot marshal at all, are left to :func:`json_bytes`.
    """
    if not all(math.isfinite(x) for row in rows for x in row):
        return json_bytes({**payload, key: rows})
    text = ",".join("[" + ",".join(map(_FLOAT32_FORMAT, row)) + "]" for row in rows)
    # Encoded with a null in the key's place (keeping the field order), then the null replaced.
    name = json.dumps(key, ensure_ascii=False).encode()
    head, _, tail = json_bytes({**payload, key: None}).partition(name + b":null")
    return b"%s%s:[%s]%s" % (head, name, text.encode(), tail)


_FLOAT32_FORMAT = "{:.9g}".format


def _json_kind(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else "object"


def _go_type_name(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, list):
        return "[]interface {}"
    return "map[string]interface {}"


_GO_TYPES = {
    "string": "string",
    "bool": "bool",
    "int": "int",
    "map": "map[string]interface {}",
}


def _field_error(struct: str, field: str, value: Any, go_type: str) -> str | None:
    if go_type == "any":
        return None
    if go_type == "duration":
        parse_keep_alive(value)
        return None
    ok = {
        "string": isinstance(value, str),
        "bool": isinstance(value, bool),
        "int": isinstance(value, int) and not isinstance(value, bool),
        "map": isinstance(value, dict),
    }[go_type]
    if ok:
        return None
    return unmarshal_error(value, f"Go struct field {struct}.{field} of type {_GO_TYPES[go_type]}")


def unmarshal_error(value: Any, target: str) -> str:
    """Go's text for a JSON ``value`` of the wrong type for ``target``.

    >>> unmarshal_error("x", "Go struct field ChatRequest.messages of type []api.Message")
    'json: cannot unmarshal string into Go struct field ChatRequest.messages of type []api.Message'
    """
    kind = _json_kind(value)
    if isinstance(value, float) and target.endswith(" int"):
        kind = f"number {value!r}"  # Go quotes the literal when a float misses an int field
    return f"json: cannot unmarshal {kind} into {target}"


def decode_body(body: bytes, struct: str, fields: Mapping[str, str]) -> dict[str, Any]:
    """Decode a request body as gin's ``ShouldBindJSON`` would.

    Args:
        body: The raw request body.
        struct: The Go struct name used in type errors (e.g. ``EmbedRequest``).
        fields: Field name -> ``string|bool|int|map|duration|any``; unknown keys are ignored
            and ``null`` leaves a field unset, as in Go.

    Returns:
        The decoded object, with ``null`` fields removed.

    Raises:
        DecodeError: With Ollama's message (``missing request body`` for an empty body).
    """
    text = body.decode("utf-8", errors="replace")
    if not text.strip():
        raise DecodeError("missing request body")
    try:
        payload = json.loads(text)
    except json.JSONDecodeError as err:
        if err.pos >= len(text.rstrip()):
            raise DecodeError("unexpected EOF") from err
        msg = f"invalid character {text[err.pos]!r} looking for beginning of value"
        raise DecodeError(msg) from err
    if not isinstance(payload, dict):
        raise DecodeError(unmarshal_error(payload, f"Go value of type api.{struct}"))
    for key, value in payload.items():
        go_type = fields.get(key)
        if go_type is None or value is None:
            continue
        error = _field_error(struct, key, value, go_type)
        if error:
            raise DecodeError(error)
    return {key: value for key, value in payload.items() if value is not None}


_UNITS = {
    "ns": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,
    "μs": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
}
_DURATION_PART = re.compile(r"(\d+\.?\d*|\.\d+)(ns|us|µs|μs|ms|s|m|h)")


def _parse_go_duration(text: str) -> float:
    quoted = json.dumps(text, ensure_ascii=False)
    sign, rest = (-1.0, text[1:]) if text[:1] == "-" else (1.0, text.lstrip("+"))
    if rest == "0":
        return 0.0
    if rest and re.fullmatch(r"\d+\.?\d*|\.\d+", rest):
        msg = f"time: missing unit in duration {quoted}"
        raise DecodeError(msg)
    pos, seconds = 0, 0.0
    for match in _DURATION_PART.finditer(rest):
        if match.start() != pos:
            break
        seconds += float(match.group(1)) * _UNITS[match.group(2)]
        pos = match.end()
    if not rest or pos != len(rest):
        msg = f"time: invalid duration {quoted}"
        raise DecodeError(msg)
    return sign * seconds


def parse_keep_alive(value: Any) -> float | None:
    """Seconds to keep the model loaded, as Ollama's ``api.Duration`` reads it.

    A number is seconds, a string a Go duration (``"5m"``, ``"1h30m"``); any negative value
    means forever. ``None`` means the server default.

    >>> parse_keep_alive("1m30s"), parse_keep_alive(300), parse_keep_alive(None)
    (90.0, 300.0, None)

    Raises:
        DecodeError: With Go's message for a malformed string or another JSON type.
    """
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        msg = f"Unsupported type: '{_go_type_name(value)}'"
        raise DecodeError(msg)
    seconds = _parse_go_duration(value) if isinstance(value, str) else float(value)
    return _FOREVER_SECONDS if seconds < 0 else seconds
