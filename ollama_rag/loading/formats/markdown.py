"""Markdown: the text as written, split at its headings into sections with a heading path.

The title is the front matter's ``title:``, else the first level-1 heading.
"""

from __future__ import annotations

import re

from ollama_rag.loading.discovery import FileEntry
from ollama_rag.loading.encoding import decode_file
from ollama_rag.loading.formats.base import Format, Metadata, Parsed, unify_newlines

__all__ = ["MARKDOWN"]

_FRONT_MATTER = re.compile(r"\A---[ \t]*\n(.*?\n)(?:---|\.\.\.)[ \t]*(?:\n|\Z)", re.DOTALL)
_FRONT_MATTER_TITLE = re.compile(r"""^title:[ \t]*(["']?)(.+?)\1[ \t]*$""", re.MULTILINE)
_FENCE = re.compile(r" {0,3}(`{3,}|~{3,})(.*)")
_ATX = re.compile(r" {0,3}(#{1,6})(?:[ \t]+(.*?))?(?:[ \t]+#+)?[ \t]*")
_SETEXT = re.compile(r" {0,3}(=+|-{2,})[ \t]*")
_BLOCK_START = re.compile(r" {0,3}(?:[-+*>]|\d{1,9}[.)])(?:[ \t]|$)")
_INDENTED = re.compile(r" {4}|\t")
_THEMATIC_BREAK = re.compile(r" {0,3}([-*_])(?:[ \t]*\1){2,}[ \t]*")
_LINK = re.compile(r"!?\[([^\]]*)\]\([^)]*\)")
# Underscores only emphasise at word edges, so snake_case names survive.
_EMPHASIS = re.compile(r"(\*\*|\*|~~|`)(\S(?:.*?\S)?)\1|(?<!\w)(__|_)(\S(?:.*?\S)?)\3(?!\w)")


def parse(entry: FileEntry, data: bytes, encoding: str | None) -> Parsed:
    """Decode a Markdown file; each section's span metadata is its heading path."""
    text, used = decode_file(entry.source, data, encoding)
    sections, title = _markdown_sections(unify_newlines(text))
    return Parsed(sections, title, {"encoding": used})


MARKDOWN = Format("md", frozenset({".md", ".markdown"}), parse)


def _markdown_sections(text: str) -> tuple[list[tuple[str, Metadata]], str | None]:
    """Split Markdown at its headings; each section's metadata is its heading path.

    ATX (``#``) and setext (underlined) headings count; lines in fenced code blocks and in
    YAML front matter do not.
    """
    front = _FRONT_MATTER.match(text)
    title = None
    if front:
        found = _FRONT_MATTER_TITLE.search(front.group(1))
        title = found.group(2).strip() if found else None
    headings = _markdown_headings(text, front.end() if front else 0)
    if title is None:
        title = next((name for _, level, name in headings if level == 1 and name), None)
    sections: list[tuple[str, Metadata]] = []
    path: list[tuple[int, str]] = []
    start = 0
    for offset, level, name in headings:
        sections.append((text[start:offset], _heading_metadata(path)))
        while path and path[-1][0] >= level:
            path.pop()
        path.append((level, name))
        start = offset
    sections.append((text[start:], _heading_metadata(path)))
    return sections, title


def _heading_metadata(path: list[tuple[int, str]]) -> Metadata:
    names = [name for _, name in path if name]
    return {"heading": " > ".join(names)} if names else {}


def _markdown_headings(text: str, start: int) -> list[tuple[int, int, str]]:
    """Return ``(offset, level, text)`` of each heading, in order."""
    headings = []
    fence = ""
    paragraph: list[str] = []
    paragraph_start = 0
    offset = start
    # Only "\n" ends a Markdown line (str.splitlines also splits at form feeds, U+2028, ...).
    for line in text[start:].split("\n"):
        here, offset = offset, offset + len(line) + 1
        if fence:
            closing = _FENCE.fullmatch(line)
            if closing and closing.group(1).startswith(fence) and not closing.group(2).strip():
                fence = ""
            continue
        opening = _FENCE.fullmatch(line)
        if opening and not (opening.group(1)[0] == "`" and "`" in opening.group(2)):
            fence = opening.group(1)
            paragraph = []
            continue
        atx = _ATX.fullmatch(line)
        if atx:
            headings.append((here, len(atx.group(1)), _inline_text(atx.group(2) or "")))
            paragraph = []
        elif paragraph and _SETEXT.fullmatch(line):
            level = 1 if line.strip()[0] == "=" else 2
            name = _inline_text(" ".join(p.strip() for p in paragraph))
            headings.append((paragraph_start, level, name))
            paragraph = []
        elif not line.strip() or _BLOCK_START.match(line) or _THEMATIC_BREAK.fullmatch(line):
            paragraph = []  # a list item or quote ends a paragraph: no setext heading over it
        elif paragraph:
            paragraph.append(line)
        elif not _INDENTED.match(line):  # indented code cannot start a paragraph
            paragraph, paragraph_start = [line], here
    return headings


def _inline_text(markdown: str) -> str:
    text = _LINK.sub(r"\1", markdown)
    for _ in range(3):  # nested emphasis such as ***both***
        text = _EMPHASIS.sub(lambda m: m.group(2) or m.group(4), text)
    return " ".join(text.split())
