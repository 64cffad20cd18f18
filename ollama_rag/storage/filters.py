"""Chroma's ``where`` and ``where_document`` filters, evaluated in Python.

Users filter searches with Chroma's syntax (``{"source": "a.md"}``, ``{"$and": [...]}``,
``{"$contains": "富士"}``), and every store must accept the same filters. Chroma evaluates them
itself; a store without a filter engine (a FAISS index, a test double) uses these functions.
The semantics follow Chroma 1.5, checked against it in the test suite: a condition on a key the
chunk does not have is false, except the negations (``$ne``, ``$nin``, ``$not_contains``),
which it passes; ``$contains``/``$not_contains`` on a key test list membership (a scalar value
contains nothing); a bool equals only a bool, while ints and floats compare as numbers; and
several keys in one dict mean all of them.

Every search checks its filters first with :func:`normalized`, which refuses what Chroma would
refuse (with a :class:`~ollama_rag.errors.ConfigError` naming the filter and the fix, on every
store alike) and writes the forms only this library accepts (several keys in one dict, a
one-item ``$and``) the way Chroma takes them.

>>> matches({"$and": [{"lang": "ja"}, {"page": {"$gte": 2}}]}, {"lang": "ja", "page": 3})
True
>>> matches_document({"$contains": "富士"}, "富士山は高い。")
True

A store that keeps its metadata as JSON in SQLite (the FAISS docstore) narrows the rows to
check with :func:`prefilter`, which turns the filters into a SQLite condition that every
passing row meets, so only the rows it returns need the exact check above.
"""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable, Mapping
from functools import partial
from typing import Any, TypeAlias

from ollama_rag.errors import ConfigError

__all__ = ["matches", "matches_document", "normalized", "prefilter"]


def _equal(value: object, operand: object) -> bool:
    """Chroma's equality: a bool equals only a bool; ints and floats compare as numbers."""
    return isinstance(value, bool) == isinstance(operand, bool) and value == operand


def _ordered(compare: Callable[[Any, Any], bool]) -> Callable[[Any, Any], bool]:
    """An ordering as Chroma applies it: numbers only (bools and strings never match)."""

    def ordered(value: Any, operand: Any) -> bool:
        numbers = all(
            isinstance(v, int | float) and not isinstance(v, bool) for v in (value, operand)
        )
        return numbers and compare(value, operand)

    return ordered


_COMPARE: dict[str, Callable[[Any, Any], bool]] = {
    "$eq": _equal,
    "$ne": lambda value, operand: not _equal(value, operand),
    "$gt": _ordered(operator.gt),
    "$gte": _ordered(operator.ge),
    "$lt": _ordered(operator.lt),
    "$lte": _ordered(operator.le),
    "$in": lambda value, options: any(_equal(value, o) for o in options),
    "$nin": lambda value, options: not any(_equal(value, o) for o in options),
}
_ORDERINGS = ("$gt", "$gte", "$lt", "$lte")
_DOCUMENT_OPS = ("$contains", "$not_contains", "$regex", "$not_regex")


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
        # Chroma keeps a list's items typed (an int list never holds 2.0) and a scalar holds none.
        inside = isinstance(value, list) and any(
            type(item) is type(operand) and item == operand for item in value
        )
        return inside if op == "$contains" else not inside
    compare = _COMPARE.get(op)
    if compare is None:
        raise _bad({key: condition}, f"unknown operator {op}")
    if isinstance(value, list):
        # Chroma keeps list values apart: scalar operators see them as missing.
        return op in ("$ne", "$nin")
    return bool(compare(value, operand))


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


# ---------------------------------------------------------------------------- checking

_SCALAR = (str, int, float, bool)
_KEY_OPS = ("$eq", "$ne", *_ORDERINGS, "$in", "$nin", "$contains", "$not_contains")
_EXAMPLE = "e.g. {'source': 'a.md'} or {'page': {'$gte': 2}}"


def _combined(
    whole: object, op: str, parts: object, each: Callable[[Any], dict[str, Any]]
) -> dict[str, Any]:
    if not isinstance(parts, list) or not parts:
        raise _bad(whole, f"{op} takes a non-empty list of filters, e.g. {{'{op}': [f1, f2]}}")
    checked = [each(part) for part in parts]
    return checked[0] if len(checked) == 1 else {op: checked}


def _all_of(parts: list[dict[str, Any]]) -> dict[str, Any]:
    return parts[0] if len(parts) == 1 else {"$and": parts}


def _checked_operand(whole: object, op: str, operand: object) -> None:
    values = operand if isinstance(operand, list) else [operand]
    if any(isinstance(v, float) and not math.isfinite(v) for v in values):
        raise _bad(whole, f"{op} takes finite numbers, got {operand!r}")
    if op in _ORDERINGS:
        if not isinstance(operand, int | float) or isinstance(operand, bool):
            why = f"{op} compares numbers, got {operand!r}; match strings with $eq or $in"
            raise _bad(whole, why)
    elif op in ("$in", "$nin"):
        if (
            not isinstance(operand, list)
            or not operand
            or not all(isinstance(o, _SCALAR) for o in operand)
            or len({type(o) for o in operand}) > 1
        ):
            why = f"{op} takes a non-empty list of values of one type, e.g. ['a.md', 'b.md']"
            raise _bad(whole, why)
    elif not isinstance(operand, _SCALAR):
        why = f"{op} takes a string, a number or a bool, got {operand!r}"
        raise _bad(whole, why + ("; use $in for a list" if op == "$eq" else ""))


def _checked_where(where: object, whole: object) -> dict[str, Any]:
    if not isinstance(where, Mapping) or not where:
        raise _bad(whole, f"a filter is a non-empty dict, {_EXAMPLE}")
    parts: list[dict[str, Any]] = []
    for key, condition in where.items():
        if key in ("$and", "$or"):
            parts.append(_combined(whole, key, condition, partial(_checked_where, whole=whole)))
            continue
        if not isinstance(key, str) or key.startswith("$"):
            raise _bad(whole, f"unknown operator {key}; combine filters with $and or $or")
        if not isinstance(condition, Mapping):
            _checked_operand(whole, "$eq", condition)
            parts.append({key: condition})
            continue
        if len(condition) != 1:
            why = "use one operator per key, and $and to combine them, e.g. "
            raise _bad(
                whole, why + f"{{'$and': [{{'{key}': {{'$gte': 2}}}}, {{'{key}': {{'$lte': 5}}}}]}}"
            )
        ((op, operand),) = condition.items()
        if op not in _KEY_OPS:
            raise _bad(whole, f"unknown operator {op}; use one of {', '.join(_KEY_OPS)}")
        _checked_operand(whole, op, operand)
        parts.append({key: {op: operand}})
    return _all_of(parts)


# Pattern syntax on which Chroma (Rust's regex crate) and Python's re part ways: look-around,
# back-references, \Z and {,n} are Python's only; Unicode classes (\p{Han}) are Rust's only;
# POSIX classes mean a set of ':' and letters to Python. Refused, so a pattern means the same on
# every store.
_DIALECT = re.compile(r"\(\?<?[=!]|\(\?P=|\\[1-9]|\\Z|\{,|\[\[:|\\[pP]")


def _checked_pattern(whole: object, op: str, pattern: str) -> None:
    if found := _DIALECT.search(pattern):
        why = (
            f"the pattern of {op} uses {found.group()!r}, which Chroma's regular expressions "
            "(Rust's regex syntax) and Python's read differently or not at all; write it without "
            "look-around, back-references, \\Z, {,n}, [[:class:]] or \\p{...} (for a script, "
            "use a range such as [\\u4e00-\\u9fff] for Han)"
        )
        raise _bad(whole, why)
    try:
        re.compile(pattern)
    except re.error as err:
        raise _bad(whole, f"the pattern of {op} does not compile ({err})") from None


def _checked_document(where_document: object, whole: object) -> dict[str, Any]:
    if not isinstance(where_document, Mapping) or not where_document:
        raise _bad(whole, "a document filter is a non-empty dict, e.g. {'$contains': '富士'}")
    parts: list[dict[str, Any]] = []
    for op, operand in where_document.items():
        if op in ("$and", "$or"):
            each = partial(_checked_document, whole=whole)
            parts.append(_combined(whole, op, operand, each))
            continue
        if op not in _DOCUMENT_OPS:
            raise _bad(whole, f"unknown operator {op}; use one of {', '.join(_DOCUMENT_OPS)}")
        if not isinstance(operand, str) or not operand:
            raise _bad(whole, f"{op} takes a non-empty string, got {operand!r}")
        if op in ("$regex", "$not_regex"):
            _checked_pattern(whole, op, operand)
        parts.append({op: operand})
    return _all_of(parts)


def normalized(
    where: Mapping[str, Any] | None, where_document: Mapping[str, Any] | None
) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """The filters checked, in the form every store takes (Chroma's), before any row is read.

    An empty filter is no filter. Several keys in one dict become their ``$and``, and a one-item
    ``$and``/``$or`` its item (Chroma refuses both forms). What Chroma would refuse is refused
    here, on every store alike: an unknown operator, an ordering of a non-number, an ``$in``
    that is not a non-empty list of one type, an empty document string, a regular expression
    that does not compile.

    Args:
        where: A ``where`` filter (the ``filter=`` of a search).
        where_document: A ``where_document`` filter.

    Returns:
        ``(where, where_document)``, each None when not given or empty.

    Raises:
        ConfigError: A filter is not valid; the message names it and the fix.

    >>> normalized({"lang": "ja", "page": {"$gte": 2}}, {})
    ({'$and': [{'lang': 'ja'}, {'page': {'$gte': 2}}]}, None)
    """

    def empty(value: object) -> bool:
        return value is None or (isinstance(value, Mapping) and not value)

    return (
        None if empty(where) else _checked_where(where, where),
        None if empty(where_document) else _checked_document(where_document, where_document),
    )


# ---------------------------------------------------------------------------- SQL prefilter

Sql: TypeAlias = tuple[str, list[Any]]
"""A SQLite condition and its parameters."""

_ANY: Sql = ("1", [])
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


def _combined_sql(op: str, parts: list[Any], each: Callable[[Any], Sql]) -> Sql:
    return _joined([each(part) for part in parts], "AND" if op == "$and" else "OR")


def _kinds(operand: object) -> str | None:
    """The JSON types a value must have to equal or order against ``operand`` (None: any)."""
    if isinstance(operand, bool):
        return "('true', 'false')"  # which SQLite reads back as 1 and 0
    if isinstance(operand, int | float):
        return "('integer', 'real')"
    return None  # a string equals only text, in SQLite as in Python


def _condition_sql(key: str, condition: Any, *, metadata: str, columns: Mapping[str, str]) -> Sql:
    """One key's condition (checked by :func:`normalized`) as SQL every passing row meets."""
    if not isinstance(condition, Mapping):
        condition = {"$eq": condition}
    ((op, operand),) = condition.items()
    if op in _NEGATIONS or not _PLAIN_KEY.fullmatch(key) or '"' in key or "\\" in key:
        return _ANY  # a missing key passes a negation: no narrowing that is also exact
    path = f'$."{key}"'
    value, value_args = f"json_extract({metadata}, ?)", [path]
    options = operand if op == "$in" else [operand]
    if not all(_bindable(o) for o in options) or len(options) > _MAX_IN:
        return _ANY
    if op == "$contains":
        # Only a list holds items; json_each reads them (their types are checked in Python).
        sql = (
            f"json_type({metadata}, ?) = 'array' AND "
            f"EXISTS (SELECT 1 FROM json_each({metadata}, ?) WHERE value = ?)"
        )
        return (sql, [path, path, operand])
    if (column := columns.get(key)) is not None and isinstance(options[0], str):
        # The indexed column (declared TEXT) compares strings exactly as the JSON value does;
        # other operands would meet its type affinity, so they read the JSON.
        value, value_args = column, []
    if op == "$in":
        compare = f"{value} IN ({', '.join('?' * len(options))})"
    else:
        compare = f"{value} {_SQL_COMPARE[op]} ?"
    kinds = _kinds(options[0])  # an $in's options are of one type
    if kinds is None:
        return (compare, [*value_args, *options])
    # A bool equals only a bool and an ordering compares numbers, but SQLite reads JSON
    # true/false as 1/0 (and orders any text after any number): ask the JSON value's type too.
    return (f"json_type({metadata}, ?) IN {kinds} AND {compare}", [path, *value_args, *options])


def _where_sql(
    where: Mapping[str, Any] | None, *, metadata: str, columns: Mapping[str, str]
) -> Sql:
    if not where:
        return _ANY
    each = partial(_where_sql, metadata=metadata, columns=columns)
    parts = []
    for key, condition in where.items():
        if key in ("$and", "$or"):
            parts.append(_combined_sql(key, condition, each))
        else:
            parts.append(_condition_sql(key, condition, metadata=metadata, columns=columns))
    return _joined(parts, "AND")


def _document_sql(where_document: Mapping[str, Any] | None, *, text: str) -> Sql:
    if not where_document:
        return _ANY
    parts = []
    for op, operand in where_document.items():
        if op in ("$and", "$or"):
            parts.append(_combined_sql(op, operand, partial(_document_sql, text=text)))
        elif op in ("$contains", "$not_contains"):
            # instr() finds a substring as Python's `in` does.
            compare = "> 0" if op == "$contains" else "= 0"
            parts.append((f"instr({text}, ?) {compare}", [operand]))
        else:
            parts.append(_ANY)  # $regex: SQLite has no regex engine of its own
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
    that cannot pass. The filters are checked with :func:`normalized` first, so invalid ones
    raise here, before any row is read.

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
    where, where_document = normalized(where, where_document)
    found = [
        _where_sql(where, metadata=metadata, columns=columns or {}),
        _document_sql(where_document, text=text),
    ]
    return _joined([part for part in found if part != _ANY], "AND")
