"""Say cheaply why a file would be skipped: unsupported, too large, empty, binary, not a PDF.

:func:`classify` looks at the suffix, the size and the bytes: a byte order mark, the magic
numbers of common binary formats, NUL and control bytes (with ``encoding=``, at the text that
codec decodes instead). :func:`read_bytes` reads a regular file once, refusing it before
reading if it is too large, and :func:`file_hash` hashes the bytes.

The rule for binary content: a file read as text is binary if its decoded text contains a NUL
character anywhere, or if more than 5 % of its first 8 KiB are control characters that text
does not use. Without ``encoding=`` this is decided on the bytes, which give the same answer
for every encoding that is detected.
"""

from __future__ import annotations

import hashlib
import os
import stat

from ollama_rag.errors import DocumentLoadError
from ollama_rag.loading.discovery import UNREADABLE_MESSAGE, FileEntry
from ollama_rag.loading.encoding import SNIFF_BYTES, unicode_bom, utf16_without_bom
from ollama_rag.loading.formats import SUPPORTED_SUFFIXES
from ollama_rag.loading.formats.pdf import is_pdf

__all__ = [
    "DEFAULT_MAX_FILE_BYTES",
    "classify",
    "file_hash",
    "read_bytes",
    "skip_message",
]

DEFAULT_MAX_FILE_BYTES = 50 * 1024 * 1024

_SKIP_FIXES = {
    "unsupported": "supported types are {suffixes}; convert the file or leave it out",
    "binary": "only text, Markdown, HTML and PDF files can be read; leave it out with exclude=",
    "empty": "there is nothing to index; add text to it or leave it out",
    "too large": "pass a larger max_file_bytes= (at least {size}) or split the file",
    "not a PDF": "it is damaged or mislabelled; download or export it again",
}

# C0 controls that text does not contain; tab, newlines, form feed, SO/SI and ESC (used by the
# ISO-2022 encodings) and SUB (an old DOS end-of-file mark) are allowed.
_BINARY_CONTROLS = bytes([*range(9), *range(0x10, 0x1A), *range(0x1C, 0x20)])
_CONTROL_CHARS = dict.fromkeys(_BINARY_CONTROLS)  # for str.translate: deletes them
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
        DocumentLoadError: If the file cannot be read, is not a regular file (a named pipe is
            never opened: it could block forever), or is larger than ``max_file_bytes``.
    """
    _check_entry(entry)
    try:
        size = entry.path.stat().st_size
        if size <= max_file_bytes:
            data = _read_regular(entry, max_file_bytes + 1)
            size = len(data)
    except OSError as err:
        msg = UNREADABLE_MESSAGE.format(source=entry.source, reason=err.strerror or err)
        raise DocumentLoadError(msg, source=entry.source) from err
    if size > max_file_bytes:
        reason = _too_large(size, max_file_bytes)
        raise DocumentLoadError(skip_message(entry, reason, size), source=entry.source)
    return data


def classify(
    entry: FileEntry,
    data: bytes | None = None,
    *,
    max_file_bytes: int | None = DEFAULT_MAX_FILE_BYTES,
    encoding: str | None = None,
) -> str | None:
    """Say why a file would be skipped, without parsing it.

    Args:
        entry: The file.
        data: Its bytes, if already read; otherwise the size is checked before reading.
        max_file_bytes: Largest size accepted (``None``: :data:`DEFAULT_MAX_FILE_BYTES`).
        encoding: The codec the file will be decoded with, if one is forced. Its text, not the
            bytes, is then checked for binary content, so that UTF-16 without a byte order
            mark (full of NUL bytes) is read; bytes it cannot decode are binary only if they
            look binary (otherwise decoding fails and says why).

    Returns:
        ``None`` if :func:`read_document` should be able to read it, else a short reason:
        the entry's own ``skip_reason`` (a pipe, socket, device, broken link, …),
        ``"unsupported file type .xyz"``, ``"too large (N bytes > LIMIT)"``, ``"empty file"``,
        ``"binary file"`` or ``"not a PDF (no %PDF- header)"``. A file that passes can still
        fail to decode or parse, and a file of only whitespace in an unusual encoding is only
        found empty when decoded.

    Raises:
        DocumentLoadError: If the file cannot be read.
    """
    if entry.skip_reason is not None:
        return entry.skip_reason
    _check_entry(entry)
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
    if encoding is not None and not is_pdf(data) and suffix != ".pdf":
        return _classify_forced(data, encoding)
    return _classify_content(suffix, data)


def skip_message(entry: FileEntry, reason: str, size: int) -> str:
    """Return the error message for a reason :func:`classify` gives: source, reason, fix."""
    key = next((k for k in _SKIP_FIXES if reason.startswith(k)), None)
    if key is None:  # an entry discover() found but could not index
        return f"{entry.source}: {reason} — only regular files can be read"
    suffixes = ", ".join(sorted(SUPPORTED_SUFFIXES))
    return f"{entry.source}: {reason} — {_SKIP_FIXES[key].format(suffixes=suffixes, size=size)}"


def _too_large(size: int, limit: int) -> str:
    return f"too large ({size} bytes > {limit})"


def _check_entry(entry: FileEntry) -> None:
    """Refuse an entry :func:`discover` found but could not index, before touching it."""
    if entry.error is not None:
        raise DocumentLoadError(entry.error, source=entry.source)
    if entry.skip_reason is not None:
        raise DocumentLoadError(skip_message(entry, entry.skip_reason, 0), source=entry.source)


def _read_regular(entry: FileEntry, limit: int) -> bytes:
    # Non-blocking, so that a file replaced by a named pipe since it was found cannot hang the
    # open; the open file is then checked, not the path, which could change again.
    fd = os.open(entry.path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    with open(fd, "rb") as f:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(0, "not a regular file any more")
        return f.read(limit)


def _classify_content(suffix: str, data: bytes) -> str | None:
    if is_pdf(data):
        return None
    if suffix == ".pdf":
        return "not a PDF (no %PDF- header)" if data.strip() else "empty file"
    bom = unicode_bom(data)
    if bom is not None:
        codec, bom_len = bom
        try:
            text = data[bom_len:].decode(codec)
        except UnicodeDecodeError:
            return "binary file"
        return _classify_text(text)
    if not data.strip():
        return "empty file"
    return _sniff_binary(data)


def _sniff_binary(data: bytes) -> str | None:
    if data.startswith(_BINARY_MAGIC):
        return "binary file"
    head = data[:SNIFF_BYTES]
    if b"\x00" in head:
        return _classify_utf16(data)
    # Every detected encoding but UTF-16/32 (recognised above by their NUL bytes) decodes the
    # byte 0 as NUL and nothing else as NUL, so this is the rule on the text, for all of it.
    nul = data.find(b"\x00")
    if nul != -1:
        return f"binary file (a NUL byte at offset {nul})"
    controls = len(head) - len(head.translate(None, _BINARY_CONTROLS))  # one pass over head
    return "binary file" if controls > _MAX_CONTROL_RATIO * len(head) else None


def _classify_utf16(data: bytes) -> str | None:
    """NUL bytes mean binary, unless the bytes are BOM-less UTF-16 text."""
    codec = utf16_without_bom(data)
    if codec is None:
        return "binary file"
    try:
        text = data.decode(codec)
    except UnicodeDecodeError:
        return "binary file"
    return _classify_text(text)


def _classify_forced(data: bytes, encoding: str) -> str | None:
    """The binary and empty checks for a file the caller says is text in ``encoding``."""
    try:
        text = data.decode(encoding)
    except UnicodeDecodeError:
        # Binary content is skipped as such; text in another encoding fails to decode, and
        # the error says which bytes and what to do.
        return "binary file" if _sniff_binary(data) is not None else None
    return _classify_text(text.removeprefix("\ufeff"))


def _classify_text(text: str) -> str | None:
    """The rule on decoded text: blank is empty; a NUL anywhere, or many controls, is binary."""
    if not text.strip():
        return "empty file"
    nul = text.find("\x00")
    if nul != -1:
        return f"binary file (a NUL character at offset {nul})"
    head = text[:SNIFF_BYTES]
    controls = len(head) - len(head.translate(_CONTROL_CHARS))
    return "binary file" if controls > _MAX_CONTROL_RATIO * len(head) else None
