"""Chroma's ``where`` and ``where_document`` filters, evaluated in Python.

Users filter searches with Chroma's syntax (``{"source": "a.md"}``, ``{"$and": [...]}``,
``{"$contains": "富士"}``), and every store must accept the same filters. Chroma evaluates them
itself; a store without a filter engine (a FAISS index, a test double) uses these functions.
The semantics follow Chroma 1.5, checked against it in the test suite: a condition on a key the
chunk does not have is false, except the negations (``$ne``, ``$nin``, ``$not_contains``),
which it passes; ``$contains``/``$not_contains`` on a key test list membership; and several
keys in one dict mean all of them.

>>> matches({"$and": [{"lang": "ja"}, {"page": {"$gte": 2}}]}, {"lang": "ja", "page": 3})
True
>>> matches_document({"$contains": "富士"}, "富士山は高い。")
True
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Mapping
from functools import partial
from typing import Any

from ollama_rag.errors import ConfigError

__all__ = ["matches", "matches_document"]

_COMPARE: dict[str, Callable[[Any, Any], bool]] = {
    "$eq": operator.eq,
    "$ne": operator.ne,
    "$gt": operator.gt,
    "$gte": operator.ge,
    "$lt": operator.lt,
    "$lte": operator.le,
    "$in": lambda value, options: value in options,
    "$nin": lambda value, options: value not in options,
}


def _bad(filter_: object, why: str) -> ConfigError:
    return ConfigError(f"Invalid filter {filter_!r}: {why}")


def _combine(
    whole: Mapping[str, Any], op: str, parts: Any, test: Callable[[Mapping[str, Any]], bool]
) -> bool:
    """``$and`` / ``$or`` of ``parts`` (a non-empty list of filters)."""
    if not isinstance(parts, list) or not parts:
        raise _bad(whole, f"{op} takes a non-empty list of filters")
    results = [test(part) for part in parts]
    return all(results) if op == "$and" else any(results)


def _condition(key: str, condition: Any, metadata: Mapping[str, Any]) -> bool:
    if not isinstance(condition, Mapping):
        condition = {"$eq": condition}
    if len(condition) != 1:
        raise _bad({key: condition}, "use one operator per key, and $and to combine them")
    ((op, operand),) = condition.items()
    if key not in metadata:
        # Chroma's negations are "not among the chunks that have it": a missing key passes.
        return op in ("$ne", "$nin", "$not_contains")
    value = metadata[key]
    if op in ("$contains", "$not_contains"):
        inside = operand in value if isinstance(value, list) else value == operand
        return inside if op == "$contains" else not inside
    compare = _COMPARE.get(op)
    if compare is None:
        raise _bad({key: condition}, f"unknown operator {op}")
    if isinstance(value, list):
        # Chroma keeps list values apart: scalar operators see them as missing.
        return op in ("$ne", "$nin")
    try:
        return bool(compare(value, operand))
    except TypeError:  # e.g. "a" > 1: Chroma finds no match either
        return False


def matches(where: Mapping[str, Any] | None, metadata: Mapping[str, Any]) -> bool:
    """Whether a chunk's metadata passes a Chroma ``where`` filter (None passes everything)."""
    if not where:
        return True
    results = []
    for key, condition in where.items():
        if key in ("$and", "$or"):
            results.append(_combine(where, key, condition, partial(matches, metadata=metadata)))
        elif key.startswith("$"):
            raise _bad(where, f"unknown operator {key}")
        else:
            results.append(_condition(key, condition, metadata))
    return all(results)


def matches_document(where_document: Mapping[str, Any] | None, text: str) -> bool:
    """Whether a chunk's text passes a Chroma ``where_document`` filter."""
    if not where_document:
        return True
    results = []
    for op, operand in where_document.items():
        if op in ("$and", "$or"):
            test = partial(matches_document, text=text)
            results.append(_combine(where_document, op, operand, test))
        elif op in ("$contains", "$not_contains"):
            results.append((str(operand) in text) == (op == "$contains"))
        elif op in ("$regex", "$not_regex"):
            found = re.search(str(operand), text) is not None
            results.append(found == (op == "$regex"))
        else:
            raise _bad(where_document, f"unknown operator {op}")
    return all(results)
