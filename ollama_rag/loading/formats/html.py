"""HTML: the visible text, with block breaks as newlines, and the ``<title>``.

The bytes are decoded with the charset a ``<meta charset>`` (or XML declaration) names when
UTF-8 fails and that charset gives plausible text.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser

from ollama_rag.loading.discovery import FileEntry
from ollama_rag.loading.encoding import decode_file
from ollama_rag.loading.formats.base import Format, Parsed, unify_newlines

__all__ = ["HTML"]

# Their content is not text a reader sees (scripts, styles, menus, inline images).
_HTML_SKIP = frozenset({"script", "style", "noscript", "template", "nav", "svg"})
# fmt: off
_HTML_PARAGRAPH = frozenset({
    "p", "h1", "h2", "h3", "h4", "h5", "h6", "ul", "ol", "dl", "table", "blockquote", "pre",
    "section", "article", "header", "footer", "main", "aside", "figure", "hr", "address",
    "details", "fieldset", "form", "body",
})
# fmt: on
_HTML_LINE = frozenset(
    {"br", "div", "li", "tr", "dt", "dd", "caption", "figcaption", "summary", "legend", "option"}
)
_HTML_CELL = frozenset({"td", "th"})
_HTML_SPACE = re.compile(r"[ \t\n\f\xa0]+")
_CJK_WIDE = re.compile(
    r"[\u2e80-\u2fdf\u3000-\u303f\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
    r"\uff01-\uff60\uffe0-\uffe6\U00020000-\U0003134f]"
)
_META_CHARSET = re.compile(
    rb"""<meta[^>]{0,200}?charset\s*=\s*["']?\s*([A-Za-z0-9_:.-]{1,40})"""
    rb"""|<\?xml[^>]{0,200}?encoding\s*=\s*["']([A-Za-z0-9_:.-]{1,40})""",
    re.IGNORECASE,
)


def parse(entry: FileEntry, data: bytes, encoding: str | None) -> Parsed:
    """Decode an HTML file and reduce it to its visible text; it has no spans."""
    text, used = decode_file(entry.source, data, encoding, _declared_charset(data))
    body, title = _html_text(unify_newlines(text))
    return Parsed([(body, {})], title, {"encoding": used})


HTML = Format("html", frozenset({".html", ".htm", ".xhtml"}), parse)


def _declared_charset(data: bytes) -> str | None:
    match = _META_CHARSET.search(data[:4096])
    if match is None:
        return None
    return (match.group(1) or match.group(2)).decode("ascii")


class _TextExtractor(HTMLParser):
    """Collects visible text and block breaks; never fetches, runs or recurses into anything."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.blocks: list[str] = []
        self.title: str | None = None
        self._inline: list[str] = []
        self._pending_break = 0
        self._skip = 0
        self._pre = 0
        self._title: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _HTML_SKIP:
            self._skip += 1
        elif tag == "title" and self.title is None and not self._skip:  # not an <svg> title
            self._title = []
        self._block_tag(tag)
        if tag == "pre":
            self._pre += 1

    def handle_endtag(self, tag: str) -> None:
        if tag in _HTML_SKIP:
            self._skip = max(0, self._skip - 1)
        elif tag == "title" and self._title is not None:
            self.title = " ".join("".join(self._title).split()) or None
            self._title = None
        if tag not in _HTML_CELL:
            self._block_tag(tag)
        if tag == "pre":
            self._pre = max(0, self._pre - 1)

    def handle_data(self, data: str) -> None:
        if self._title is not None:
            self._title.append(data)
        elif not self._skip:
            self._inline.append(data)

    def _block_tag(self, tag: str) -> None:
        if tag in _HTML_CELL:
            if "".join(self._inline).strip():
                self._inline.append("\t")
        elif tag in _HTML_PARAGRAPH or tag in _HTML_LINE:
            self.flush()
            self._pending_break = max(self._pending_break, 2 if tag in _HTML_PARAGRAPH else 1)

    def flush(self) -> None:
        """Emit the text collected since the last block boundary."""
        raw = "".join(self._inline)
        self._inline = []
        text = raw.strip("\n") if self._pre else _collapse_inline(raw).strip()
        if not text:
            return
        if self.blocks:
            self.blocks.append("\n" * max(1, self._pending_break))
        self.blocks.append(text)
        self._pending_break = 0


def _collapse_inline(text: str) -> str:
    """Collapse whitespace as a browser does, cells' tabs aside.

    A line break in the source between two Chinese or Japanese characters disappears instead of
    becoming a space (CSS Text 3 segment-break rule), so wrapped CJK paragraphs read as written.
    """

    def collapse(match: re.Match[str]) -> str:
        if "\t" in match.group():
            return "\t"
        before = text[match.start() - 1] if match.start() else ""
        after = text[match.end()] if match.end() < len(text) else ""
        if "\n" in match.group() and _CJK_WIDE.match(before) and _CJK_WIDE.match(after):
            return ""
        return " "

    return _HTML_SPACE.sub(collapse, text)


def _html_text(source: str) -> tuple[str, str | None]:
    parser = _TextExtractor()
    parser.feed(source)
    parser.close()
    parser.flush()
    return "".join(parser.blocks), parser.title
