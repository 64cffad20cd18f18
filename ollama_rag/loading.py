"""Find files, read them as text, and say where each part of the text came from.

:func:`discover` walks files and folders in a fixed order and yields :class:`FileEntry` items;
:func:`read_document` turns one into a :class:`LoadedDocument`: the text to split, a hash of the
raw bytes, per-file metadata and *spans* that tie offsets in the text to a Markdown heading path
or a PDF page. :func:`classify` says cheaply why a file would be skipped (unsupported, binary,
empty, too large), so a batch can report it and go on.

Text files in UTF-8, UTF-16/32 (with a BOM), Shift_JIS/CP932, EUC-JP, ISO-2022-JP, GBK/GB18030,
Big5, EUC-KR/CP949 or CP1252 are decoded without being told the encoding; see
:func:`decode_text` for how, and pass ``encoding=`` to override it.

Example::

    for entry in discover("docs", glob="**/*.md"):
        if classify(entry) is None:
            doc = read_document(entry)
            doc.metadata  # {"file_type": "md", "encoding": "utf-8", "title": "…", "file_size": 812}
            span_metadata(doc.spans, 120)  # {"heading": "第1章 > 背景"}
"""

from __future__ import annotations

import bisect
import codecs
import functools
import hashlib
import io
import logging
import os
import re
import unicodedata
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from typing import NamedTuple, TypeAlias

from ollama_rag.errors import ConfigError, DocumentLoadError

__all__ = [
    "DEFAULT_EXCLUDE",
    "DEFAULT_MAX_FILE_BYTES",
    "SUPPORTED_SUFFIXES",
    "FileEntry",
    "LoadedDocument",
    "classify",
    "decode_text",
    "discover",
    "file_hash",
    "read_bytes",
    "read_document",
    "span_metadata",
]

MetadataValue: TypeAlias = str | int | float | bool
Metadata: TypeAlias = dict[str, MetadataValue]
Span: TypeAlias = tuple[int, int, Metadata]

DEFAULT_EXCLUDE: tuple[str, ...] = (".*", "__pycache__", "node_modules", "venv", "*~", "~$*")
"""Always excluded when walking a folder: hidden files and folders (``.git``, ``.venv``, …),
caches, installed packages, editor backups and Office lock files. ``exclude=`` adds to these."""

_TEXT_SUFFIXES = frozenset({".txt", ".text", ".rst"})
_MARKDOWN_SUFFIXES = frozenset({".md", ".markdown"})
_HTML_SUFFIXES = frozenset({".html", ".htm", ".xhtml"})
SUPPORTED_SUFFIXES: frozenset[str] = frozenset(
    _TEXT_SUFFIXES | _MARKDOWN_SUFFIXES | _HTML_SUFFIXES | {".pdf"}
)
"""Lower-case suffixes :func:`discover` picks up in folders and :func:`read_document` reads."""

DEFAULT_MAX_FILE_BYTES = 50 * 1024 * 1024

MISSING_PATH_MESSAGE = "{path}: does not exist — check the path (relative paths start at {cwd})"
NOT_A_FILE_MESSAGE = "{path}: is neither a regular file nor a folder — pass a file or a folder"
UNREADABLE_MESSAGE = "{source}: cannot be read ({reason}) — check that it exists and is readable"
PDF_EXTRA_MESSAGE = (
    "{source}: reading PDF files needs the optional pypdf package — "
    "run pip install 'ollama-rag[pdf]'"
)
UNDECODABLE_FIX = (
    "pass encoding= with the file's encoding (for example encoding='cp932'), "
    "or convert the file to UTF-8"
)
_SKIP_FIXES = {
    "unsupported": "supported types are {suffixes}; convert the file or leave it out",
    "binary": "only text, Markdown, HTML and PDF files can be read; leave it out with exclude=",
    "empty": "there is nothing to index; add text to it or leave it out",
    "too large": "pass a larger max_file_bytes= (at least {size}) or split the file",
    "not a PDF": "it is damaged or mislabelled; download or export it again",
}

_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FileEntry:
    """One file found by :func:`discover`.

    Attributes:
        path: The file's absolute, resolved path.
        source: Its path relative to the folder it was found in, with ``/`` separators; the
            bare file name for a file given directly.
        root: The absolute POSIX path of that folder (the parent folder for a direct file).
    """

    path: Path
    source: str
    root: str


@dataclass(frozen=True)
class LoadedDocument:
    """A file read as text.

    Attributes:
        entry: The file it came from.
        text: The text to split; span and chunk offsets index into it.
        file_hash: SHA-256 (hex) of the raw bytes.
        metadata: ``file_type`` (txt, md, html or pdf), ``file_size`` in bytes, ``encoding``
            (text formats), ``title`` (when the file has one) and ``page_count`` (PDF).
        spans: Sorted, non-overlapping ``(start, end, metadata)`` triples: a Markdown section's
            ``{"heading": "A > B"}`` or a PDF page's ``{"page": 3}``. Text outside every span
            (before the first heading, between pages) has no extra metadata.
    """

    entry: FileEntry
    text: str
    file_hash: str
    metadata: Metadata
    spans: tuple[Span, ...]


# --------------------------------------------------------------------------------- discovery


def discover(
    paths: str | os.PathLike[str] | Iterable[str | os.PathLike[str]],
    *,
    glob: str = "**/*",
    exclude: str | Sequence[str] | None = None,
) -> Iterator[FileEntry]:
    """Find the files to load under ``paths``, in a fixed order.

    Folders are walked depth first with each folder's entries sorted by name, so the order is
    the same on every run. In folders every file whose relative path matches ``glob`` is
    yielded, whatever its suffix, and a file given directly is always yielded: :func:`classify`
    then says whether it can be read, so unsupported files get reported. Symlinks are followed,
    but a folder or file whose real path was already seen is skipped, so links cannot loop or
    repeat content.
    Sub-folders that cannot be listed are skipped with a logged warning.

    Args:
        paths: A file or folder, or several.
        glob: Pattern for paths relative to each folder: ``*`` and ``?`` stay within one path
            part, ``**`` crosses folders, ``**/`` also matches no folder at all.
        exclude: Extra patterns on top of :data:`DEFAULT_EXCLUDE`. A pattern without ``/``
            matches a file or folder name at any depth (``"drafts"``, ``"*.min.html"``); one
            with ``/`` matches the whole relative path (``"docs/old/**"``). An excluded folder
            is not entered.

    Returns:
        An iterator of :class:`FileEntry`, produced as the walk goes.

    Raises:
        DocumentLoadError: At the call, if a path does not exist or is not a file or folder.
        ConfigError: If ``glob`` is empty or absolute.
    """
    roots = _check_paths(paths)
    if not glob or glob.startswith("/"):
        msg = f"glob={glob!r} must be a non-empty relative pattern such as '**/*.md'"
        raise ConfigError(msg)
    matcher = _PathMatcher(glob, _exclude_patterns(exclude))
    return _discover(roots, matcher)


def _check_paths(paths: str | os.PathLike[str] | Iterable[str | os.PathLike[str]]) -> list[Path]:
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    checked = []
    for raw in paths:
        path = Path(raw).expanduser()
        if not path.exists():
            msg = MISSING_PATH_MESSAGE.format(path=path, cwd=Path.cwd())
            raise DocumentLoadError(msg, source=str(path))
        if not (path.is_file() or path.is_dir()):
            msg = NOT_A_FILE_MESSAGE.format(path=path)
            raise DocumentLoadError(msg, source=str(path))
        checked.append(path)
    return checked


def _exclude_patterns(exclude: str | Sequence[str] | None) -> list[str]:
    if exclude is None:
        extra: list[str] = []
    elif isinstance(exclude, str):
        extra = [exclude]
    else:
        extra = list(exclude)
    return [*DEFAULT_EXCLUDE, *(p.rstrip("/") for p in extra if p.rstrip("/"))]


def _discover(roots: list[Path], matcher: _PathMatcher) -> Iterator[FileEntry]:
    seen_files: set[Path] = set()
    seen_dirs: set[Path] = set()
    for root in roots:
        if root.is_dir():
            yield from _walk(root, matcher, seen_dirs, seen_files)
            continue
        real = root.resolve()
        if real not in seen_files:
            seen_files.add(real)
            yield FileEntry(real, root.name, root.absolute().parent.resolve().as_posix())


def _walk(
    root: Path, matcher: _PathMatcher, seen_dirs: set[Path], seen_files: set[Path]
) -> Iterator[FileEntry]:
    real_root = root.resolve()
    if real_root in seen_dirs:
        return
    seen_dirs.add(real_root)
    root_posix = real_root.as_posix()
    try:
        top = _sorted_entries(real_root)
    except OSError as err:
        msg = UNREADABLE_MESSAGE.format(source=root, reason=err.strerror or err)
        raise DocumentLoadError(msg, source=str(root)) from err
    # A stack of iterators instead of recursion: deep trees cannot hit the recursion limit,
    # and popping in order keeps the walk depth first and sorted.
    stack: list[tuple[str, Iterator[os.DirEntry[str]]]] = [("", iter(top))]
    while stack:
        prefix, entries = stack[-1]
        item = next(entries, None)
        if item is None:
            stack.pop()
            continue
        rel = prefix + item.name
        kind = _entry_kind(item)
        if kind is None or matcher.excluded(item.name, rel):
            continue
        real = _real_path(item)
        if kind == "dir" and real is not None and real not in seen_dirs:
            seen_dirs.add(real)
            try:
                stack.append((rel + "/", iter(_sorted_entries(Path(item.path)))))
            except OSError as err:
                _log.warning("skipping folder %s: %s", item.path, err)
        elif kind == "file" and real is not None and real not in seen_files and matcher.wanted(rel):
            seen_files.add(real)
            yield FileEntry(real, rel, root_posix)


def _entry_kind(item: os.DirEntry[str]) -> str | None:
    """``"dir"`` or ``"file"`` (following symlinks); None for pipes, devices, broken links."""
    try:
        if item.is_dir():
            return "dir"
        return "file" if item.is_file() else None
    except OSError:
        return None


def _real_path(item: os.DirEntry[str]) -> Path | None:
    try:
        return Path(item.path).resolve()
    except (OSError, RuntimeError):  # RuntimeError: a symlink loop, before Python 3.13
        return None


def _sorted_entries(folder: Path) -> list[os.DirEntry[str]]:
    with os.scandir(folder) as entries:
        return sorted(entries, key=lambda e: e.name)


class _PathMatcher:
    """Decides which relative paths a walk yields (``glob``) and skips (``exclude``)."""

    def __init__(self, glob: str, exclude: Sequence[str]) -> None:
        self._glob = _compile_glob(glob)
        self._names = [_compile_glob(p) for p in exclude if "/" not in p]
        self._paths = [_compile_glob(p) for p in exclude if "/" in p]

    def excluded(self, name: str, rel: str) -> bool:
        # Only the entry's own name is tested: its folders were tested on the way down.
        return any(p.fullmatch(name) for p in self._names) or any(
            p.fullmatch(rel) for p in self._paths
        )

    def wanted(self, rel: str) -> bool:
        # Unsupported suffixes are yielded too, so that add_files reports them as skipped
        # instead of leaving users to wonder where a file went.
        return self._glob.fullmatch(rel) is not None


def _compile_glob(pattern: str) -> re.Pattern[str]:
    try:
        return _glob_regex(pattern)
    except re.error as err:
        msg = f"{pattern!r} is not a valid glob pattern ({err}) — check its [...] brackets"
        raise ConfigError(msg) from err


def _glob_regex(pattern: str) -> re.Pattern[str]:
    r"""Compile a path glob: ``*``/``?`` stay within a part, ``**`` crosses ``/``.

    >>> [bool(_glob_regex(g).fullmatch("a/b.md")) for g in ("**/*.md", "*.md", "a/**")]
    [True, False, True]
    """
    out, i, n = [], 0, len(pattern)
    while i < n:
        if pattern.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif pattern.startswith("/**", i) and i + 3 == n:
            out.append("(?:/.*)?")
            i += 3
        elif pattern.startswith("**", i):
            out.append(".*")
            i += 2
        elif pattern[i] == "*":
            out.append("[^/]*")
            i += 1
        elif pattern[i] == "?":
            out.append("[^/]")
            i += 1
        elif pattern[i] == "[" and (close := pattern.find("]", i + 2)) != -1:
            body = pattern[i + 1 : close].replace("\\", "\\\\").replace("[", "\\[")
            out.append("[^" + body[1:] + "]" if body[0] in "!^" else "[" + body + "]")
            i = close + 1
        else:
            out.append(re.escape(pattern[i]))
            i += 1
    return re.compile("".join(out), re.DOTALL)


# ------------------------------------------------------------------------------- reading files


def file_hash(data: bytes) -> str:
    """Return the SHA-256 of ``data`` as hex.

    >>> file_hash(b"")[:16]
    'e3b0c44298fc1c14'
    """
    return hashlib.sha256(data).hexdigest()


def read_bytes(entry: FileEntry, *, max_file_bytes: int = DEFAULT_MAX_FILE_BYTES) -> bytes:
    """Read a file's bytes, refusing before reading anything if it is over the limit.

    Args:
        entry: The file.
        max_file_bytes: Largest size accepted.

    Returns:
        The bytes, read once (a file that grows meanwhile is cut off at the limit and refused).

    Raises:
        DocumentLoadError: If the file cannot be read or is larger than ``max_file_bytes``.
    """
    try:
        size = entry.path.stat().st_size
        if size <= max_file_bytes:
            with entry.path.open("rb") as f:
                data = f.read(max_file_bytes + 1)
            size = len(data)
    except OSError as err:
        msg = UNREADABLE_MESSAGE.format(source=entry.source, reason=err.strerror or err)
        raise DocumentLoadError(msg, source=entry.source) from err
    if size > max_file_bytes:
        reason = _too_large(size, max_file_bytes)
        raise DocumentLoadError(_skip_message(entry, reason, size), source=entry.source)
    return data


def classify(
    entry: FileEntry,
    data: bytes | None = None,
    *,
    max_file_bytes: int | None = DEFAULT_MAX_FILE_BYTES,
) -> str | None:
    """Say why a file would be skipped, without decoding or parsing it.

    Args:
        entry: The file.
        data: Its bytes, if already read; otherwise the size is checked before reading.
        max_file_bytes: Largest size accepted (``None``: :data:`DEFAULT_MAX_FILE_BYTES`).

    Returns:
        ``None`` if :func:`read_document` should be able to read it, else a short reason:
        ``"unsupported file type .xyz"``, ``"too large (N bytes > LIMIT)"``, ``"empty file"``,
        ``"binary file"`` or ``"not a PDF (no %PDF- header)"``. A file that passes can still
        fail to decode or parse, and a file of only whitespace in an unusual encoding is only
        found empty when decoded.

    Raises:
        DocumentLoadError: If the file cannot be read.
    """
    if max_file_bytes is None:
        max_file_bytes = DEFAULT_MAX_FILE_BYTES
    suffix = entry.path.suffix.lower()
    if suffix not in SUPPORTED_SUFFIXES:
        return f"unsupported file type {suffix or '(no suffix)'}"
    if data is None:
        try:
            size = entry.path.stat().st_size
        except OSError as err:
            msg = UNREADABLE_MESSAGE.format(source=entry.source, reason=err.strerror or err)
            raise DocumentLoadError(msg, source=entry.source) from err
        if size > max_file_bytes:
            return _too_large(size, max_file_bytes)
        data = read_bytes(entry, max_file_bytes=max_file_bytes)
    if len(data) > max_file_bytes:
        return _too_large(len(data), max_file_bytes)
    return _classify_content(suffix, data)


def _too_large(size: int, limit: int) -> str:
    return f"too large ({size} bytes > {limit})"


def _classify_content(suffix: str, data: bytes) -> str | None:
    if _is_pdf(data):
        return None
    if suffix == ".pdf":
        return "not a PDF (no %PDF- header)" if data.strip() else "empty file"
    unicode_bom = _unicode_bom(data)
    if unicode_bom is not None:
        codec, bom_len = unicode_bom
        try:
            blank = not data[bom_len:].decode(codec).strip()
        except UnicodeDecodeError:
            return "binary file"
        return "empty file" if blank else None
    if not data.strip():
        return "empty file"
    if data.startswith(_BINARY_MAGIC):
        return "binary file"
    head = data[:_SNIFF_BYTES]
    if b"\x00" in head:
        return _classify_utf16(data)
    controls = len(head) - len(head.translate(None, _BINARY_CONTROLS))  # one pass over head
    return "binary file" if controls > _MAX_CONTROL_RATIO * len(head) else None


def _classify_utf16(data: bytes) -> str | None:
    """NUL bytes mean binary, unless the bytes are BOM-less UTF-16 text."""
    codec = _utf16_without_bom(data)
    if codec is None:
        return "binary file"
    try:
        text = data.decode(codec)
    except UnicodeDecodeError:
        return "binary file"
    return None if text.strip() else "empty file"


def read_document(
    entry: FileEntry,
    data: bytes | None = None,
    *,
    encoding: str | None = None,
    normalize: bool = False,
    max_file_bytes: int = DEFAULT_MAX_FILE_BYTES,
) -> LoadedDocument:
    r"""Read one file as text, with its metadata and spans.

    Newlines always become ``\n`` and a leading byte order mark is dropped. Markdown keeps its
    markup (headings also become span metadata); HTML is reduced to its visible text; PDF pages
    are joined with blank lines.

    Args:
        entry: The file.
        data: Its bytes, if already read (for example to hash them first).
        encoding: Decode text with this codec instead of detecting one (``"cp932"``, ``"gbk"``).
        normalize: Also apply Unicode NFKC (full-width ``ＡＢＣ１２３`` to ``ABC123``, half-width
            ``ｶﾀｶﾅ`` to ``カタカナ``) to the text and metadata.
        max_file_bytes: Largest file size accepted.

    Returns:
        The :class:`LoadedDocument`.

    Raises:
        DocumentLoadError: The message starts with the file's source and ends with the fix. It
            is raised for every reason :func:`classify` reports, for text that cannot be
            decoded, a PDF that cannot be parsed or has no text, and a missing pypdf.
        ConfigError: If ``encoding`` is not a known text codec.
    """
    if encoding is not None:
        _check_codec(encoding)
    if data is None:
        data = read_bytes(entry, max_file_bytes=max_file_bytes)
    reason = classify(entry, data, max_file_bytes=max_file_bytes)
    if reason is not None:
        raise DocumentLoadError(_skip_message(entry, reason, len(data)), source=entry.source)
    parsed = _parse_pdf(entry, data) if _is_pdf(data) else _parse_text(entry, data, encoding)
    segments, title = parsed.segments, parsed.title
    if normalize:
        segments = [(_nfkc(seg), {k: _nfkc_value(v) for k, v in m.items()}) for seg, m in segments]
        title = _nfkc(title) if title else title
    text, spans = _assemble(segments, parsed.separator)
    if not text.strip():
        raise DocumentLoadError(_skip_message(entry, "empty file", len(data)), source=entry.source)
    metadata: Metadata = {"file_type": parsed.file_type, **parsed.metadata, "file_size": len(data)}
    if title:
        metadata["title"] = title
    return LoadedDocument(entry, text, file_hash(data), metadata, spans)


class _Parsed(NamedTuple):
    """A file's text in segments (each with its span metadata, joined by ``separator``)."""

    file_type: str
    segments: list[tuple[str, Metadata]]
    separator: str
    title: str | None
    metadata: Metadata


def _parse_text(entry: FileEntry, data: bytes, encoding: str | None) -> _Parsed:
    suffix = entry.path.suffix.lower()
    kind = "md" if suffix in _MARKDOWN_SUFFIXES else "html" if suffix in _HTML_SUFFIXES else "txt"
    declared = _declared_charset(data) if kind == "html" else None
    try:
        text, used = _decode(data, encoding, declared)
    except _UndecodableError as err:
        msg = f"{entry.source}: cannot be decoded: {err} — {UNDECODABLE_FIX}"
        raise DocumentLoadError(msg, source=entry.source) from err
    text = _unify_newlines(text)
    if kind == "md":
        segments, title = _markdown_sections(text)
    elif kind == "html":
        body, title = _html_text(text)
        segments = [(body, {})]
    else:
        segments, title = [(text, {})], None
    return _Parsed(kind, segments, "", title, {"encoding": used})


def _skip_message(entry: FileEntry, reason: str, size: int) -> str:
    key = next(k for k in _SKIP_FIXES if reason.startswith(k))
    suffixes = ", ".join(sorted(SUPPORTED_SUFFIXES))
    return f"{entry.source}: {reason} — {_SKIP_FIXES[key].format(suffixes=suffixes, size=size)}"


def _unify_newlines(text: str) -> str:
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _nfkc(text: str) -> str:
    return unicodedata.normalize("NFKC", text)


def _nfkc_value(value: MetadataValue) -> MetadataValue:
    return _nfkc(value) if isinstance(value, str) else value


def _assemble(segments: list[tuple[str, Metadata]], sep: str) -> tuple[str, tuple[Span, ...]]:
    parts: list[str] = []
    spans: list[Span] = []
    pos = 0
    for seg, meta in segments:
        if parts and sep:
            parts.append(sep)
            pos += len(sep)
        parts.append(seg)
        if meta and seg:
            spans.append((pos, pos + len(seg), meta))
        pos += len(seg)
    return "".join(parts), tuple(spans)


def span_metadata(
    spans: Sequence[tuple[int, int, Mapping[str, MetadataValue]]], offset: int
) -> Metadata:
    """Return a copy of the metadata of the span containing ``offset``, or ``{}``.

    >>> span_metadata(((0, 5, {"page": 1}), (7, 12, {"page": 2})), 8)
    {'page': 2}
    >>> span_metadata(((0, 5, {"page": 1}),), 5)
    {}
    """
    i = bisect.bisect_right(spans, offset, key=lambda span: span[0]) - 1
    if i >= 0 and offset < spans[i][1]:
        return dict(spans[i][2])
    return {}


# ------------------------------------------------------------------------------ binary sniffing

_SNIFF_BYTES = 8192
# C0 controls that text does not contain; tab, newlines, form feed, SO/SI and ESC (used by the
# ISO-2022 encodings) and SUB (an old DOS end-of-file mark) are allowed.
_BINARY_CONTROLS = bytes([*range(9), *range(0x10, 0x1A), *range(0x1C, 0x20)])
_MAX_CONTROL_RATIO = 0.05
# Formats without NUL bytes near the start, or so common they deserve a sure answer; most
# other binary formats are caught by their NUL or control bytes.
_BINARY_MAGIC = (
    b"\x89PNG\r\n\x1a\n",
    b"\xff\xd8\xff",  # JPEG
    b"GIF87a",
    b"GIF89a",
    b"PK\x03\x04",  # zip, docx, xlsx, epub, jar
    b"PK\x05\x06",
    b"\x1f\x8b",  # gzip
    b"\xfd7zXZ\x00",
    b"\x28\xb5\x2f\xfd",  # zstd
    b"7z\xbc\xaf\x27\x1c",
    b"Rar!\x1a\x07",
    b"\x7fELF",
    b"\xca\xfe\xba\xbe",  # Mach-O universal, Java class
    b"\xcf\xfa\xed\xfe",
    b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1",  # old Office documents
    b"SQLite format 3\x00",
    b"\x1a\x45\xdf\xa3",  # mkv, webm
    b"\x00asm",
)


def _is_pdf(data: bytes) -> bool:
    # The PDF spec lets readers accept the header anywhere in the first KiB.
    return b"%PDF-" in data[:1024]


def _unicode_bom(data: bytes) -> tuple[str, int] | None:
    # UTF-32 first: its little-endian BOM starts with the UTF-16 one.
    for bom, codec in _BOMS:
        if data.startswith(bom):
            return codec, len(bom)
    return None


_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32-le"),
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)


def _utf16_without_bom(data: bytes) -> str | None:
    """Guess BOM-less UTF-16 from where the NUL bytes sit (mostly-ASCII text only)."""
    sample = data[: _SNIFF_BYTES & ~1]
    half = len(sample) // 2
    if half < 2:
        return None
    even, odd = sample[0::2].count(0), sample[1::2].count(0)
    if odd >= 0.3 * half and even <= 0.02 * half:
        return "utf-16-le"
    if even >= 0.3 * half and odd <= 0.02 * half:
        return "utf-16-be"
    return None


# ------------------------------------------------------------------------------------ decoding


class _UndecodableError(Exception):
    """No encoding gives plausible text; the message says why."""


def decode_text(data: bytes, *, encoding: str | None = None) -> tuple[str, str]:
    """Decode bytes of unknown encoding, and say which encoding was used.

    The order: a UTF-8/16/32 byte order mark; ISO-2022-JP/KR escape sequences; BOM-less UTF-16
    recognised by where its NUL bytes are; strict UTF-8 (a character cut off at the very end is
    dropped); for HTML, a ``<meta charset>`` whose text is plausible; then every codec of
    cp932, euc_jp, gbk, gb18030, big5, cp950, euc_kr, cp949 and cp1252 that decodes the bytes
    strictly, ranked by how plausible its text is for that codec's language. Very common and
    common characters of the language score, kana only for Japanese codecs; rare, control,
    private-use and unassigned characters cost, and so do spaces between Han characters
    (Korean read as Chinese) and long unbroken runs of Hangul (Chinese read as Korean). Only if
    none is plausible is charset-normalizer asked, for codecs outside that list (Cyrillic,
    Greek, …): on short CJK samples its vote is worse than the ranking.

    A leading byte order mark is dropped; newlines are left as they are.

    Args:
        data: The bytes.
        encoding: Use this codec (strictly) instead of detecting one.

    Returns:
        ``(text, encoding)``, the encoding as a Python codec name (``"utf-8"``, ``"utf-8-sig"``,
        ``"utf-16-le"``, ``"cp932"``, ``"gbk"``, …) that decodes ``data`` the same way again.

    Raises:
        DocumentLoadError: If no encoding gives plausible text, or ``encoding`` does not
            decode the bytes.
        ConfigError: If ``encoding`` is not a known text codec.
    """
    if encoding is not None:
        _check_codec(encoding)
    try:
        return _decode(data, encoding, None)
    except _UndecodableError as err:
        msg = f"the bytes cannot be decoded: {err} — {UNDECODABLE_FIX}"
        raise DocumentLoadError(msg) from err


def _check_codec(encoding: str) -> None:
    try:
        # Not b"": decoding nothing skips the codec lookup. Non-text codecs (base64) fail the
        # lookup; a text codec may still reject this one byte, which is fine.
        b"a".decode(encoding)
    except UnicodeDecodeError:
        pass
    except LookupError as err:
        msg = (
            f"encoding={encoding!r} is not a text codec Python knows — use a codec name such "
            "as 'utf-8', 'cp932', 'euc_jp', 'gb18030', 'big5' or 'euc_kr'"
        )
        raise ConfigError(msg) from err


def _decode(data: bytes, encoding: str | None, declared: str | None) -> tuple[str, str]:
    if encoding is not None:
        return _decode_forced(data, encoding)
    bom = _unicode_bom(data)
    if bom is not None:
        codec, size = bom
        try:
            text = data[size:].decode(codec)
        except UnicodeDecodeError as err:
            msg = f"it starts with a {codec} byte order mark but is not valid {codec}: {err}"
            raise _UndecodableError(msg) from err
        return text, "utf-8-sig" if codec == "utf-8" else codec
    if b"\x1b" in data and data.isascii():
        found = _decode_iso2022(data)
        if found is not None:
            return found
    # Before UTF-8, which accepts the NUL bytes of ASCII text in UTF-16.
    utf16 = _utf16_without_bom(data)
    if utf16 is not None:
        try:
            return data.decode(utf16), utf16
        except UnicodeDecodeError:
            pass
    try:
        return data.decode("utf-8"), "utf-8"
    except UnicodeDecodeError as err:
        utf8_error = err
    # A file cut off inside its last character (a truncated download or log) is still UTF-8.
    if utf8_error.end == len(data) and utf8_error.reason == "unexpected end of data":
        return data[: utf8_error.start].decode("utf-8"), "utf-8"
    if declared is not None:
        found = _decode_declared(data, declared)
        if found is not None:
            return found
    return _decode_by_ranking(data, utf8_error)


def _decode_forced(data: bytes, encoding: str) -> tuple[str, str]:
    try:
        text = data.decode(encoding)
    except UnicodeDecodeError as err:
        bad = data[err.start : err.start + 4].hex(" ")
        msg = f"it is not valid {encoding}: bytes {bad} at offset {err.start}"
        raise _UndecodableError(msg) from err
    return text.removeprefix("\ufeff"), encoding


def _decode_iso2022(data: bytes) -> tuple[str, str] | None:
    for codec in ("iso2022_jp", "iso2022_jp_2", "iso2022_kr"):
        try:
            text = data.decode(codec)
        except UnicodeDecodeError:
            continue
        # A codec that does not know the escapes or shifts in use leaves them in the text.
        if not any(c in text for c in "\x1b\x0e\x0f"):
            return text, codec
    return None


def _decode_declared(data: bytes, declared: str) -> tuple[str, str] | None:
    # Browsers read these labels as the codec's superset; so must we, or pages fail to decode.
    label = declared.lower()
    codec = _CHARSET_LABELS.get(label, label)
    try:
        name = codecs.lookup(codec).name
        text = data.decode(name)
    except (LookupError, UnicodeDecodeError):
        return None
    if name.startswith(("utf-16", "utf-32")):
        return None
    if not _is_plausible(text, dict(_CANDIDATES).get(name, "other")):
        return None
    return text, name


_CHARSET_LABELS = {
    "shift_jis": "cp932",
    "shift-jis": "cp932",
    "sjis": "cp932",
    "x-sjis": "cp932",
    "ms_kanji": "cp932",
    "windows-31j": "cp932",
    "gb2312": "gbk",
    "x-gbk": "gbk",
    "euc-kr": "cp949",
    "ks_c_5601-1987": "cp949",
    "iso-8859-1": "cp1252",
    "latin1": "cp1252",
    "us-ascii": "cp1252",
    "ascii": "cp1252",
}
_META_CHARSET = re.compile(
    rb"""<meta[^>]{0,200}?charset\s*=\s*["']?\s*([A-Za-z0-9_:.-]{1,40})"""
    rb"""|<\?xml[^>]{0,200}?encoding\s*=\s*["']([A-Za-z0-9_:.-]{1,40})""",
    re.IGNORECASE,
)


def _declared_charset(data: bytes) -> str | None:
    match = _META_CHARSET.search(data[:4096])
    if match is None:
        return None
    return (match.group(1) or match.group(2)).decode("ascii")


# Ordered by preference: on a tie the earlier codec wins, and a later codec that decodes to the
# same text as an earlier one is dropped (cp932 over shift_jis-compatible bytes, gbk over
# gb18030, big5 over cp950, euc_kr over cp949).
_CANDIDATES = (
    ("cp932", "ja"),
    ("euc_jp", "ja"),
    ("gbk", "zh-hans"),
    ("gb18030", "zh-hans"),
    ("big5", "zh-hant"),
    ("cp950", "zh-hant"),
    ("euc_kr", "ko"),
    ("cp949", "ko"),
    ("cp1252", "latin"),
)
# Only this much is ranked, from the first non-ASCII byte on (ASCII is the same in every
# candidate); the winner must then decode the whole file.
_RANK_BYTES = 32 * 1024
# Least mean score per non-ASCII character. In the development corpus, real text of four or
# more characters scored at least 1.0 (Latin) and 1.38 (CJK); random bytes of 64 or more at most
# -0.22.
_MIN_PLAUSIBILITY = 0.5
_MAX_CHAOS = 0.1


class _Candidate(NamedTuple):
    score: float
    order: int
    codec: str
    text: str
    plausible: bool


def _decode_by_ranking(data: bytes, utf8_error: UnicodeDecodeError) -> tuple[str, str]:
    # Every candidate's lead bytes are non-ASCII, so the sample starts on a character.
    first = _FIRST_NON_ASCII_BYTE.search(data)
    start = first.start() if first else 0
    sample = data[start : start + _RANK_BYTES]
    final = start + len(sample) == len(data)
    ranked = _rank(sample, final=final)
    for candidate in ranked:
        if not candidate.plausible:
            continue
        if final:
            return data[:start].decode("ascii") + candidate.text, candidate.codec
        try:
            return data.decode(candidate.codec), candidate.codec
        except UnicodeDecodeError:
            continue  # fine at the start, invalid later on
    found = _decode_by_charset_normalizer(data, sample)
    if found is not None:
        return found
    bad = data[utf8_error.start : utf8_error.start + 4].hex(" ")
    if ranked:
        why = f"decoding it as {', '.join(c.codec for c in ranked)} gives implausible text"
    else:
        why = f"none of {', '.join(c for c, _ in _CANDIDATES)} decodes it"
    msg = f"it is not UTF-8 (bytes {bad} at offset {utf8_error.start}) and {why}"
    raise _UndecodableError(msg)


def _rank(sample: bytes, *, final: bool) -> list[_Candidate]:
    """The candidates that decode the sample strictly, most plausible first."""
    ranked = []
    seen: set[str] = set()
    for order, (codec, profile) in enumerate(_CANDIDATES):
        try:
            text = codecs.getincrementaldecoder(codec)().decode(sample, final=final)
        except UnicodeDecodeError:
            continue
        if text in seen:
            continue
        seen.add(text)
        score = _score(text, profile)
        plausible = score >= _MIN_PLAUSIBILITY * _count_non_ascii(text)
        ranked.append(_Candidate(score, order, codec, text, plausible))
    return sorted(ranked, key=lambda c: (-c.score, c.order))


def _count_non_ascii(text: str) -> int:
    return len(text) - sum(1 for ch in text if ch < "\x80")


def _decode_by_charset_normalizer(data: bytes, sample: bytes) -> tuple[str, str] | None:
    import charset_normalizer  # only for rare non-CJK legacy files

    best = charset_normalizer.from_bytes(sample).best()
    # Zero coherence means it recognised no language: a guess, as it makes for random bytes.
    if best is None or best.coherence <= 0 or best.chaos > _MAX_CHAOS:
        return None
    try:
        codec = codecs.lookup(best.encoding).name
        text = data.decode(codec)
    except (LookupError, UnicodeDecodeError):
        return None
    if codec in dict(_CANDIDATES):
        return None  # already ranked, and found implausible
    if not _is_plausible(text, "other"):
        return None
    return text, codec


def _is_plausible(text: str, profile: str) -> bool:
    """Whether the text scores at least _MIN_PLAUSIBILITY per non-ASCII character."""
    first = _FIRST_NON_ASCII.search(text)
    if first is None:
        return True  # nothing to judge: ASCII reads the same in every candidate
    sample = text[first.start() : first.start() + _RANK_BYTES]
    return _score(sample, profile) >= _MIN_PLAUSIBILITY * _count_non_ascii(sample)


def _score(text: str, profile: str) -> float:
    if profile == "latin":
        return _score_latin(text)
    if profile == "other":
        return _score_other(text)
    weights = _char_weights(profile)
    total = 0.0
    for ch in text:
        if ch >= "\x80":
            weight = weights.get(ch)
            total += _fallback_weight(ch, profile) if weight is None else weight
    if profile in ("ja", "zh-hans", "zh-hant"):
        total -= 3.0 * len(_HAN_SPACE_HAN.findall(text))
    elif profile == "ko":
        total -= sum(1.5 * (len(m.group()) - 12) for m in _LONG_HANGUL_RUN.finditer(text))
    return total


_HAN_OR_KANA = "\u3040-\u30ff\u3400-\u9fff\uf900-\ufaff"
_HAN_SPACE_HAN = re.compile(f"[{_HAN_OR_KANA}] (?=[{_HAN_OR_KANA}])")
_LONG_HANGUL_RUN = re.compile("[\uac00-\ud7a3]{13,}")
_NON_ASCII_RUN = re.compile("[^\x00-\x7f]+")
_FIRST_NON_ASCII = re.compile("[^\x00-\x7f]")
_FIRST_NON_ASCII_BYTE = re.compile(b"[\x80-\xff]")
_BAD_CATEGORIES = frozenset({"Cc", "Co", "Cn", "Cs"})


def _score_latin(text: str) -> float:
    return sum(_latin_run_score(text, match) for match in _NON_ASCII_RUN.finditer(text))


def _score_other(text: str) -> float:
    # For a codec charset-normalizer suggested: letters of a non-Latin alphabet (Cyrillic,
    # Greek, …) form whole words, while Latin ones must still look like accents in words.
    total = 0.0
    for match in _NON_ASCII_RUN.finditer(text):
        if all(not ch.isalpha() or _is_latin(ch) for ch in match.group()):
            total += _latin_run_score(text, match)
        else:
            total += sum(_fallback_weight(ch, "other") for ch in match.group())
    return total


def _is_latin(ch: str) -> bool:
    return unicodedata.name(ch, "").startswith("LATIN")


def _latin_run_score(text: str, match: re.Match[str]) -> float:
    """Score a run of non-ASCII characters in Latin-script text.

    Accented letters come one or two at a time inside ASCII words ("café", "naïve") and
    typographic symbols stand alone ("10 €", "—"); runs of three or more, or letters with no
    ASCII letter beside them, are what CJK bytes look like in cp1252.
    """
    run, start, end = match.group(), match.start(), match.end()
    in_word = (start > 0 and text[start - 1].isalpha()) or (end < len(text) and text[end].isalpha())
    total = 0.0
    for ch in run:
        category = unicodedata.category(ch)
        if category in _BAD_CATEGORIES:
            total -= 10.0
        elif len(run) > 2:
            total -= 2.0
        elif category.startswith("L"):
            total += 1.0 if in_word else -1.0
        else:  # quotes, dashes, currency signs are everyday; ˙ ¨ ± less so
            total += 1.0 if category[0] == "P" or category == "Sc" else 0.5
    return total


def _fallback_weight(ch: str, profile: str) -> float:
    category = unicodedata.category(ch)
    if category in _BAD_CATEGORIES or ch == "\ufffd":
        return -10.0
    if profile == "other":
        return 1.0 if category.startswith("L") else 0.0
    code = ord(ch)
    if 0xAC00 <= code <= 0xD7A3:
        return -1.0 if profile == "ko" else -2.0
    if 0x3040 <= code <= 0x30FF:
        return 1.0 if profile == "ja" else -1.0
    if 0xFF61 <= code <= 0xFF9F:  # half-width katakana: real in old files, mostly noise
        return -1.0 if profile == "ja" else -2.0
    if category == "Lo":
        return -2.0
    if category.startswith("Z"):
        return 0.0
    return -1.0


@functools.cache
def _char_weights(profile: str) -> dict[str, float]:
    """Per-character scores for one language, built from its national character set.

    Each standard puts its everyday characters first (JIS X 0208 level 1, GB 2312 level 1,
    Big5 "frequently used", the 2,350 KS X 1001 syllables), so decoding those byte ranges
    gives a "common" tier without shipping frequency tables; a short hand-picked list per
    language adds a "very common" tier.
    """
    weights: dict[str, float] = {}

    def put(chars: Iterable[str], weight: float) -> None:
        weights.update(dict.fromkeys(chars, weight))

    if profile == "ja":
        put(_rows("euc_jp", 0xA1, 0xA4), -0.5)
        put(_rows("euc_jp", 0xA4, 0xA6), 3.0)  # kana: the strongest sign of Japanese
        put(_rows("euc_jp", 0xA6, 0xA9), -1.0)
        put(_rows("euc_jp", 0xD0, 0xF5), 0.0)
        put(_rows("euc_jp", 0xB0, 0xD0), 1.5)
        put(_JA_VERY_COMMON, 3.0)
    elif profile == "zh-hans":
        put(_rows("gbk", 0xA1, 0xAA), -0.5)
        put(_rows("gbk", 0xA4, 0xA6), -1.0)
        put(_rows("gbk", 0xD8, 0xF8), 0.0)
        put(_rows("gbk", 0xB0, 0xD8), 1.5)
        put(_ZH_HANS_VERY_COMMON, 3.0)
    elif profile == "zh-hant":
        put(_rows("big5", 0xA1, 0xA4, _BIG5_TRAILS), -0.5)
        put(_rows("big5", 0xC9, 0xFA, _BIG5_TRAILS), 0.0)
        put(_rows("big5", 0xA4, 0xC7, _BIG5_TRAILS), 1.5)
        put(_ZH_HANT_VERY_COMMON, 3.0)
    elif profile == "ko":
        put(_rows("euc_kr", 0xA1, 0xB0), -1.0)
        put(_rows("euc_kr", 0xCA, 0xFE), -0.5)  # hanja: rare in modern Korean
        put(_rows("euc_kr", 0xB0, 0xC9), 1.5)
        put(_KO_VERY_COMMON, 3.0)
    put(_CJK_PUNCTUATION, 1.0)
    put((chr(c) for c in range(0xFF10, 0xFF5B) if chr(c).isalnum()), 0.5)
    return weights


_EUC_TRAILS = range(0xA1, 0xFF)
_BIG5_TRAILS = (*range(0x40, 0x7F), *range(0xA1, 0xFF))


def _rows(codec: str, first: int, stop: int, trails: Iterable[int] = _EUC_TRAILS) -> list[str]:
    chars = []
    trails = tuple(trails)
    for lead in range(first, stop):
        for trail in trails:
            try:
                chars.append(bytes((lead, trail)).decode(codec))
            except UnicodeDecodeError:
                continue
    return chars


_CJK_PUNCTUATION = (
    "、。，．・：；？！「」『』（）【】〔〕［］｛｝〈〉《》…―ー～“”‘’＋－＝＜＞％＃＆＊＠　"
    "※■□◆◇○●◎★☆→←↑↓△▲▽▼〒♪①②③④⑤⑥⑦⑧⑨⑩"
)
# "Very common" tiers, hand-picked from general frequency lists (the first few hundred
# characters of news and web text). Membership only moves a character from the common tier up.
_ZH_HANS_VERY_COMMON = (
    "的一是不了在人有我他这个们中来上大为和国地到以说时要就出会可也你对生能而子那得于着下自之年过"
    "发后作里用道行所然家种事成方多经么去法学如都同现当没动面起看定天分还进好小部其些主样理心她本前"
    "开但因只从想实日者意无力它与长把机十民第公此已工使情明性知全三又关点正业外将两高间由问很最重并"
    "物手应向头文体政美相见被利什二等产或新己制身果加西月话合回特代内信表化老给世位次度门任常先海通"
    "教儿原东声提立及比员解水名真论处走义各入几口认条平系气题活更别打女变四神总何电数安少报才结反受"
    "目太量再感建务做接必场件计管期市直资命山金指许统区保至形社便空决治展科司五基眼书非则听白界达光"
    "放强即像难且权思王象完设式色路记南品住告类求据程北边死张该交规万取拉格望觉术领共确传师观清今切"
    "院让识候带导争运笑飞风步改收根干造言联持组每济车亲极林服快办议往元证近失转夫令准布始怎呢存未远"
    "叫台单影具字爱击流备连调深商算质团集百需价花华城石级整府离况请技际约示复病息究线似官火断精满支"
    "视消越器容照须九增研写称企八功吗包片史委查轻易早曾除农找装广显吧李标谈吃图念六引历首医局突专费"
    "号尽另周较注语仅考落青随选列武红响虽推势参希古众构房半节土投某案黑维革划致律足态护七兴派孩验责"
    "营星够章音跟志底站严例防族供效续施留讲型料终答紧黄绝奇察母京段依批群项故按河米围江织害斗双境客"
    "纪采举父密低朝友诉止细愿千值仍男钱破网热助育属坐限船脸职速刻乐否刚威毛状率甚独球般普怕弹校苦创"
    "假久错承印晚试股拿脑预谁益阳若哪微继送急血惊伤素药适波夜省初喜卫源食险待述陆习置居劳财环排福纳"
    "欢获模充负云停木游龙树疑层冷洲冲射略范竟句室异激汉村策演简卡罪判担州静退既衣您宗积余检差富灵协"
)
_ZH_HANT_VERY_COMMON = (
    "的一是不了在人有我他這個們中來上大為和國地到以說時要就出會可也你對生能而子那得於著下自之年過"
    "發後作裡用道行所然家種事成方多經麼去法學如都同現當沒動面起看定天分還進好小部其些主樣理心她本前"
    "開但因只從想實日者意無力它與長把機十民第公此已工使情明性知全三又關點正業外將兩高間由問很最重並"
    "物手應向頭文體政美相見被利什二等產或新己制身果加西月話合回特代內信表化老給世位次度門任常先海通"
    "教兒原東聲提立及比員解水名真論處走義各入幾口認條平系氣題活更別打女變四神總何電數安少報才結反受"
    "目太量再感建務做接必場件計管期市直資命山金指許統區保至形社便空決治展科司五基眼書非則聽白界達光"
    "放強即像難且權思王象完設式色路記南品住告類求據程北邊死張該交規萬取拉格望覺術領共確傳師觀清今切"
    "院讓識候帶導爭運笑飛風步改收根幹造言聯持組每濟車親極林服快辦議往元證近失轉夫令準布始怎呢存未遠"
    "叫臺台單影具字愛擊流備連調深商算質團集百需價花華城石級整府離況請技際約示復病息究線似官火斷精滿支"
    "視消越器容照須九增研寫稱企八功嗎包片史委查輕易早曾除農找裝廣顯吧李標談吃圖念六引歷首醫局突專費"
    "號盡另周較注語僅考落青隨選列武紅響雖推勢參希古眾構房半節土投某案黑維革劃致律足態護七興派孩驗責"
    "營星夠章音跟志底站嚴例防族供效續施留講型料終答緊黃絕奇察母京段依批群項故按河米圍江織害鬥雙境客"
    "紀採舉父密低朝友訴止細願千值仍男錢破網熱助育屬坐限船臉職速刻樂否剛威毛狀率甚獨球般普怕彈校苦創"
    "假久錯承印晚試股拿腦預誰益陽若哪微繼送急血驚傷素藥適波夜省初喜衛源食險待述陸習置居勞財環排福納"
    "歡獲模充負雲停木遊龍樹疑層冷洲衝射略範竟句室異激漢村策演簡卡罪判擔州靜退既衣您宗積餘檢差富靈協"
)
_JA_VERY_COMMON = (
    "日一国人年大十二本中長出三同時政事自行社見月分議後前民生連五発間対上部東者党地合市業内相方四定"
    "今回新場金員九入選立開手米力学問高代明実円関決子動京全目表戦経通外最言氏現理調体化田当八六約主"
    "題下首意法不来作性的要用制治度務強気小七成期公持野協取都和統以機平総加山思家話世受区領多県続進"
    "正安設保改数記院女初北午指権心界支第産結百派点教報済書府活原先共得解名交資予川向際査勝面委告軍"
    "文反元重近千考判認画海参売利組知案道信策集在件団別物側任引使求所次水半品昨論計死官増係感特情投"
    "示変打男基私各始島直両朝革価式確村提運終挙果西勢減台広容必応演電歳住争談能無再位置企真流格有疑"
    "口過局少放税検町常校料裁状工建語球営空職証土与急止送援供可役構木割聞身費付施切由説転食比難防補"
    "車優夫研収断何南石足違消境神番規術護展態導備宅害配副算視条独警宮究育席輸訪楽起万着請技映株形帰"
)
_KO_VERY_COMMON = (
    "이다의는에하고을가를지기한서로도사리대으자일수인시정나어아해부제전보게국들것만그있여요상주적거장없"
    "면니원구라경생방내동분성세화공업관위비소모무행마신문중결과미연계발회실학우개금통음선치심유안체명불"
    "반작재용된했합습까죠네데러려르른운은와께며야잘좋날오늘말알같때더또및등년월초람저너녀누언디엇왜떻"
    "처럼터테였었입세큼조차든군할록면란렇엄청진짜새번째바산강물친교집밥차길손발눈귀몸음각간상글읽쓰듣배"
    "치려받내들찾확설검색테트십백천억영둘셋넷섯곱덟홉열"
)


# ------------------------------------------------------------------------------------- Markdown

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


# ----------------------------------------------------------------------------------------- HTML

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


# ------------------------------------------------------------------------------------------ PDF


def _parse_pdf(entry: FileEntry, data: bytes) -> _Parsed:
    """Each page's text is a segment with ``{"page": n}``; blank pages are left out."""
    try:
        import pypdf  # the optional [pdf] extra
    except ImportError as err:
        msg = PDF_EXTRA_MESSAGE.format(source=entry.source)
        raise DocumentLoadError(msg, source=entry.source) from err
    # pypdf parses untrusted bytes and may fail in many ways (its own errors, but also
    # ValueError, KeyError or RecursionError on crafted files): all of them mean "unreadable".
    try:
        reader = pypdf.PdfReader(io.BytesIO(data))
        if reader.is_encrypted and not reader.decrypt(""):
            msg = (
                f"{entry.source}: the PDF is protected by a password — save an unprotected copy "
                "(for example qpdf --decrypt --password=… in.pdf out.pdf) and add that"
            )
            raise DocumentLoadError(msg, source=entry.source)
        pages = [_unify_newlines(page.extract_text() or "").strip() for page in reader.pages]
        title = reader.metadata.title if reader.metadata else None
    except DocumentLoadError:
        raise
    except Exception as err:
        msg = (
            f"{entry.source}: is not a readable PDF ({type(err).__name__}: {err}) — "
            "check that the file is complete, or re-save it from a PDF viewer"
        )
        raise DocumentLoadError(msg, source=entry.source) from err
    segments: list[tuple[str, Metadata]] = [
        (text, {"page": number}) for number, text in enumerate(pages, start=1) if text
    ]
    if not segments:
        msg = (
            f"{entry.source}: the PDF has no extractable text (scanned pages?) — "
            "add a text layer with OCR first (for example ocrmypdf in.pdf out.pdf)"
        )
        raise DocumentLoadError(msg, source=entry.source)
    clean_title = title.strip() if isinstance(title, str) else ""
    return _Parsed("pdf", segments, "\n\n", clean_title or None, {"page_count": len(pages)})
