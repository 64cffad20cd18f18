"""How results read in a terminal: where a chunk is in its source, and a one-line snippet.

A chunk's metadata has its source, its character offsets into the source's text and, from the
loader, a Markdown heading path or a PDF page. The line number is computed from the offset by
reading the source file again, and shown only when the file still holds the chunk's text at
that offset (a file edited since it was indexed gets no line number rather than a wrong one).
"""

from __future__ import annotations

import re
import unicodedata
from pathlib import Path
from typing import Any

__all__ = ["SourceLines", "display_width", "human_size", "location", "snippet"]

# File types whose indexed text is the file's text as written (so offsets map to lines).
_LINE_TYPES = frozenset({"txt", "md"})
_CJK_RUN = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff]+")
_WORD = re.compile(r"[^\W_]{2,}")


class SourceLines:
    """Line numbers of chunk offsets, from the source files (each read at most once)."""

    def __init__(self) -> None:
        self._texts: dict[Path, str | None] = {}

    def line(self, metadata: dict[str, Any], text: str) -> int | None:
        """The 1-based line a chunk starts on, or None when it cannot be told for sure.

        Args:
            metadata: The chunk's metadata, with ``root`` (``include_root=True``).
            text: The chunk's text.
        """
        root, source = metadata.get("root"), metadata.get("source")
        start = metadata.get("start_index")
        if not isinstance(start, int) or not root or not source:
            return None
        if metadata.get("file_type") not in _LINE_TYPES:
            return None
        from ollama_rag.loading import unescape_name

        full = self._read(Path(unescape_name(str(root))) / unescape_name(str(source)), metadata)
        if full is None or full[start : start + len(text)] != text:
            return None  # the file changed (or moved) since it was indexed
        return full.count("\n", 0, start) + 1

    def _read(self, path: Path, metadata: dict[str, Any]) -> str | None:
        if path not in self._texts:
            self._texts[path] = _text_of(path, metadata.get("encoding"))
        return self._texts[path]


def _text_of(path: Path, encoding: Any) -> str | None:
    """The text the loader makes of a file (as it was split), or None if it cannot be read."""
    from ollama_rag.errors import RagError
    from ollama_rag.loading import discover, read_document

    try:
        entry = next(iter(discover(path)), None)
        if entry is None or not path.is_file():
            return None
        codec = encoding if isinstance(encoding, str) else None
        return read_document(entry, encoding=codec).text
    except (OSError, RagError):
        return None


def location(source: str, metadata: dict[str, Any], line: int | None) -> str:
    """``a.md:12``, ``b.pdf p.3`` or ``notes``, then the heading path if there is one."""
    where = f"{source}:{line}" if line is not None else source
    if line is None and isinstance(metadata.get("page"), int):
        where = f"{source} p.{metadata['page']}"
    heading = metadata.get("heading")
    return f"{where}  § {heading}" if heading else where


def display_width(text: str) -> int:
    """Terminal columns ``text`` takes: wide (CJK) characters take two."""
    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)


def _terms(query: str) -> list[str]:
    """What to look for in a chunk: the query's words, and its CJK runs as bigrams."""
    terms = [w.lower() for w in _WORD.findall(query) if not _CJK_RUN.fullmatch(w)]
    for run in _CJK_RUN.findall(query):
        terms += [run[i : i + 2] for i in range(max(len(run) - 1, 1))]
    return terms


def snippet(text: str, query: str, width: int) -> str:
    """The chunk on one line, at most ``width`` columns, where it matches the query most.

    Whitespace runs (newlines included) become one space. The window starts a little before
    the match where the most distinct query terms fall within one line's width (the start of
    the chunk when nothing matches). A cut end is marked with ``…``.
    """
    flat = " ".join(text.split())
    if display_width(flat) <= width:
        return flat
    lowered, terms = flat.lower(), set(_terms(query))
    spots = sorted({m.start() for t in terms for m in re.finditer(re.escape(t), lowered)})
    start = 0
    if spots:
        # A line holds about `width` columns: half as many characters when they are CJK.
        span = width * len(flat) // max(display_width(flat), 1)
        best = max(
            spots[:200], key=lambda at: (sum(t in lowered[at : at + span] for t in terms), -at)
        )
        start = best
        while start > 0 and display_width(flat[start - 1 : best]) <= width // 4:
            start -= 1
    lead = "…" if start > 0 else ""
    room = width - len(lead) - 1  # one column kept for a closing "…"
    end, used = start, 0
    while end < len(flat) and used + display_width(flat[end]) <= room:
        used += display_width(flat[end])
        end += 1
    return f"{lead}{flat[start:end]}{'…' if end < len(flat) else ''}"


def human_size(size: int) -> str:
    """``532 B``, ``12.4 KB``, ``3.1 MB``, ``1.2 GB`` (powers of 1024)."""
    if size < 1024:
        return f"{size} B"
    value, unit = size / 1024, "KB"
    for bigger in ("MB", "GB"):
        if value < 1024:
            break
        value, unit = value / 1024, bigger
    return f"{value:.1f} {unit}"
