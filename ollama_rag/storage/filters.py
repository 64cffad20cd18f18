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

A store that keeps its metadata as JSON in SQLite (the FAISS docstore) narrows the rows to
check with :func:`prefilter`, which turns the filters into a SQLite condition that every
passing row meets, so only the rows it returns need the exact check above.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Mapping
from functools import partial
from typing import Any, TypeAlias

from ollama_rag.errors import ConfigError

__all__ = ["matches", "matches_document", "prefilter"]

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


# ---------------------------------------------------------------------------- SQL prefilter

Sql: TypeAlias = tuple[str, list[Any]]
"""A SQLite condition and its parameters."""

_ANY: Sql = ("1", [])
_NONE: Sql = ("0", [])
_SQL_COMPARE = {"$eq": "=", "$gt": ">", "$gte": ">=", "$lt": "<", "$lte": "<="}
_NEGATIONS = ("$ne", "$nin", "$not_contains")
# Values SQLite compares as Python does once both sides are of one kind: JSON true/false read
# back as 1/0 equal Python's True/False; integers SQLite cannot bind are left to Python.
_MAX_SQL_INT = 2**63 - 1
# More options than this in one $in are left to Python (SQLite's old limit is 999 parameters).
_MAX_IN = 500
# Keys SQLite's JSON paths reach the same in every version: the JSON text escapes any other
# character (json.dumps' ensure_ascii), and older SQLite compares path labels unescaped.
_PLAIN_KEY = re.compile(r"[ -~]+")


def _bindable(value: object) -> bool:
    if isinstance(value, bool | str | float):
        return True
    return isinstance(value, int) and -_MAX_SQL_INT <= value <= _MAX_SQL_INT


def _joined(parts: list[Sql], word: str) -> Sql:
    if not parts:
        return _ANY
    if len(parts) == 1:
        return parts[0]
    return (
        f" {word} ".join(f"({sql})" for sql, _ in parts),
        [a for _, args in parts for a in args],
    )


def _combined_sql(whole: Mapping[str, Any], op: str, parts: Any, each: Callable[[Any], Sql]) -> Sql:
    if not isinstance(parts, list) or not parts:
        raise _bad(whole, f"{op} takes a non-empty list of filters")
    return _joined([each(part) for part in parts], "AND" if op == "$and" else "OR")


def _condition_sql(key: str, condition: Any, *, metadata: str, columns: Mapping[str, str]) -> Sql:
    if not isinstance(condition, Mapping):
        condition = {"$eq": condition}
    if len(condition) != 1:
        raise _bad({key: condition}, "use one operator per key, and $and to combine them")
    ((op, operand),) = condition.items()
    if op not in _COMPARE and op not in ("$contains", "$not_contains"):
        raise _bad({key: condition}, f"unknown operator {op}")
    if op in _NEGATIONS or not _PLAIN_KEY.fullmatch(key) or '"' in key or "\\" in key:
        return _ANY  # a missing key passes a negation: no narrowing that is also exact
    path = f'$."{key}"'
    value, value_args = f"json_extract({metadata}, ?)", [path]
    column = columns.get(key)
    if op == "$contains":
        if not _bindable(operand):
            return _ANY
        # json_each reads a list's items, or a scalar as one item: membership or equality.
        sql = f"EXISTS (SELECT 1 FROM json_each({metadata}, ?) WHERE value = ?)"
        return (sql, [path, operand])
    options = operand if op == "$in" and isinstance(operand, list | tuple) else [operand]
    if column is not None and op in ("$eq", "$in") and all(isinstance(o, str) for o in options):
        # The indexed column (declared TEXT) compares strings exactly as the JSON value does;
        # other operands or orderings would meet its type affinity, so they read the JSON.
        value, value_args = column, []
    if op == "$in":
        if not isinstance(operand, list | tuple) or len(operand) > _MAX_IN:
            return _ANY
        if not all(_bindable(o) for o in operand):
            return _ANY
        if not operand:
            return _NONE
        return (f"{value} IN ({', '.join('?' * len(operand))})", [*value_args, *operand])
    if not _bindable(operand):
        return _ANY
    compare = f"{value} {_SQL_COMPARE[op]} ?"
    if op == "$eq":
        return (compare, [*value_args, operand])
    # SQLite orders any text after any number; Python orders only like with like (a bool is
    # a number), so an ordering also asks the JSON value's type.
    kinds = "('text')" if isinstance(operand, str) else "('integer', 'real', 'true', 'false')"
    return (f"json_type({metadata}, ?) IN {kinds} AND {compare}", [path, *value_args, operand])


def _where_sql(where: Any, *, metadata: str, columns: Mapping[str, str]) -> Sql:
    if not where:
        return _ANY
    if not isinstance(where, Mapping):
        raise _bad(where, "a filter is a dict")
    each = partial(_where_sql, metadata=metadata, columns=columns)
    parts = []
    for key, condition in where.items():
        if key in ("$and", "$or"):
            parts.append(_combined_sql(where, key, condition, each))
        elif key.startswith("$"):
            raise _bad(where, f"unknown operator {key}")
        else:
            parts.append(_condition_sql(key, condition, metadata=metadata, columns=columns))
    return _joined(parts, "AND")


def _document_sql(where_document: Any, *, text: str) -> Sql:
    if not where_document:
        return _ANY
    if not isinstance(where_document, Mapping):
        raise _bad(where_document, "a filter is a dict")
    parts = []
    for op, operand in where_document.items():
        if op in ("$and", "$or"):
            each = partial(_document_sql, text=text)
            parts.append(_combined_sql(where_document, op, operand, each))
        elif op in ("$contains", "$not_contains"):
            # instr() finds a substring as Python's `in` does (the empty string included).
            compare = "> 0" if op == "$contains" else "= 0"
            parts.append((f"instr({text}, ?) {compare}", [str(operand)]))
        elif op in ("$regex", "$not_regex"):
            parts.append(_ANY)  # SQLite has no regex engine of its own
        else:
            raise _bad(where_document, f"unknown operator {op}")
    return _joined(parts, "AND")


def prefilter(
    where: Mapping[str, Any] | None,
    where_document: Mapping[str, Any] | None,
    *,
    metadata: str = "metadata",
    text: str = "text",
    columns: Mapping[str, str] | None = None,
) -> Sql:
    """A SQLite condition that every row passing the filters meets.

    Rows meeting it may still fail the filters (what SQL cannot decide exactly, such as
    negations, regular expressions or keys outside plain ASCII, is left open), so callers check
    its rows with :func:`matches` and :func:`matches_document`; it only spares them the rows
    that cannot pass. Invalid filters raise here, before any row is read.

    Args:
        where: A ``where`` filter.
        where_document: A ``where_document`` filter.
        metadata: The column holding each row's metadata as a JSON object.
        text: The column holding each row's text.
        columns: Metadata keys also kept in an indexed column of their scalar value (key ->
            column), compared there so SQLite can use the index.

    Raises:
        ConfigError: A filter is not valid.

    >>> prefilter({"lang": "ja"}, {"$contains": "富士"})
    ('(json_extract(metadata, ?) = ?) AND (instr(text, ?) > 0)', ['$."lang"', 'ja', '富士'])
    """
    found = [
        _where_sql(where, metadata=metadata, columns=columns or {}),
        _document_sql(where_document, text=text),
    ]
    return _joined([part for part in found if part != _ANY], "AND")
