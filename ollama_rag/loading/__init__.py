"""Find files, read them as text, and say where each part of the text came from.

:func:`discover` walks files and folders in a fixed order and yields :class:`FileEntry` items,
also for what it cannot index (pipes, broken links, repeats), with the reason, so that it can be
reported; :func:`read_document` turns one into a :class:`LoadedDocument`: the text to split, a
hash of the raw bytes, per-file metadata and *spans* that tie offsets in the text to a Markdown
heading path or a PDF page. :func:`classify` says cheaply why a file would be skipped
(unsupported, binary, empty, too large), so a batch can report it and go on.

Text files in UTF-8, UTF-16/32 (with a BOM), Shift_JIS/CP932, EUC-JP, ISO-2022-JP, GBK/GB18030,
Big5, EUC-KR/CP949 or CP1252 are decoded without being told the encoding; see
:func:`decode_text` for how, and pass ``encoding=`` to override it.

The modules, each importing only those listed before it:

- ``discovery``: :func:`discover`, :class:`FileEntry`, :data:`DEFAULT_EXCLUDE`, the glob matcher.
- ``encoding``: :func:`decode_text`, byte order marks, and ranking candidate encodings.
- ``formats``: one module per file format (``text``, ``markdown``, ``html``, ``pdf``) and the
  registry that maps a suffix to its format (:data:`SUPPORTED_SUFFIXES` comes from it).
- ``sniffing``: :func:`classify` (binary, empty, too large), :func:`read_bytes`,
  :func:`file_hash` and the skip messages.
- ``document``: :func:`read_document`, :class:`LoadedDocument`, spans and
  :func:`span_metadata`, NFKC normalisation.

Example::

    for entry in discover("docs", glob="**/*.md"):
        if classify(entry) is None:
            doc = read_document(entry)
            doc.metadata  # {"file_type": "md", "encoding": "utf-8", "title": "…", "file_size": 812}
            span_metadata(doc.spans, 120)  # {"heading": "第1章 > 背景"}
"""

from __future__ import annotations

from ollama_rag.loading.discovery import (
    DEFAULT_EXCLUDE,
    FileEntry,
    discover,
    escape_name,
    unescape_name,
)
from ollama_rag.loading.discovery import MISSING_PATH_MESSAGE as MISSING_PATH_MESSAGE
from ollama_rag.loading.discovery import NOT_A_FILE_MESSAGE as NOT_A_FILE_MESSAGE
from ollama_rag.loading.discovery import UNREADABLE_MESSAGE as UNREADABLE_MESSAGE
from ollama_rag.loading.document import LoadedDocument, read_document, span_metadata
from ollama_rag.loading.encoding import UNDECODABLE_FIX as UNDECODABLE_FIX
from ollama_rag.loading.encoding import decode_text
from ollama_rag.loading.formats import SUPPORTED_SUFFIXES
from ollama_rag.loading.formats.pdf import PDF_EXTRA_MESSAGE as PDF_EXTRA_MESSAGE
from ollama_rag.loading.sniffing import DEFAULT_MAX_FILE_BYTES, classify, file_hash, read_bytes

# The message constants (imported "as" themselves) are re-exported so callers and tests can
# match messages; __all__ lists the API proper, as before the split.
__all__ = [
    "DEFAULT_EXCLUDE",
    "DEFAULT_MAX_FILE_BYTES",
    "SUPPORTED_SUFFIXES",
    "FileEntry",
    "LoadedDocument",
    "classify",
    "decode_text",
    "discover",
    "escape_name",
    "file_hash",
    "read_bytes",
    "read_document",
    "span_metadata",
    "unescape_name",
]
