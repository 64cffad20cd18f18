"""PDF: each page's extracted text, pages joined by blank lines, with ``{"page": n}`` spans.

pypdf is the optional ``[pdf]`` extra, imported only when a PDF is read.
"""

from __future__ import annotations

import io

from ollama_rag.errors import DocumentLoadError, Explained, Fix
from ollama_rag.loading.discovery import FileEntry
from ollama_rag.loading.formats.base import Format, Metadata, Parsed, unify_newlines

__all__ = ["PDF", "PDF_EXTRA_MESSAGE", "PDF_EXTRA_PROBLEM", "is_pdf"]

PDF_EXTRA_PROBLEM = "{source}: reading PDF files needs the optional pypdf package"
PDF_EXTRA_MESSAGE = PDF_EXTRA_PROBLEM + " — run pip install 'ollama-rag[pdf]'"


def is_pdf(data: bytes) -> bool:
    """Whether ``data`` has a PDF header, whatever the file's suffix."""
    # The PDF spec lets readers accept the header anywhere in the first KiB.
    return b"%PDF-" in data[:1024]


def parse(entry: FileEntry, data: bytes, encoding: str | None) -> Parsed:
    """Each page's text is a segment with ``{"page": n}``; blank pages are left out.

    ``encoding`` is not used: a PDF's text is extracted as Unicode.
    """
    try:
        import pypdf  # the optional [pdf] extra
    except ImportError as err:
        missing = Explained(
            PDF_EXTRA_MESSAGE.format(source=entry.source),
            problem=PDF_EXTRA_PROBLEM.format(source=entry.source),
            fix=Fix("install", value="pdf"),
        )
        raise DocumentLoadError(missing, source=entry.source) from err
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
        pages = [unify_newlines(page.extract_text() or "").strip() for page in reader.pages]
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
    return Parsed(segments, clean_title or None, {"page_count": len(pages)}, separator="\n\n")


PDF = Format("pdf", frozenset({".pdf"}), parse)
