"""The file formats :func:`~ollama_rag.loading.read_document` reads, looked up by suffix.

Each module here defines one :class:`~ollama_rag.loading.formats.base.Format`: its
``file_type`` label, the suffixes it reads and a ``parse`` function that turns the file's bytes
into :class:`~ollama_rag.loading.formats.base.Parsed` segments, title and metadata. To add a
format, write such a module, import its ``Format`` below and list it in :data:`FORMATS`;
:func:`~ollama_rag.loading.classify` and its "unsupported" message follow
:data:`SUPPORTED_SUFFIXES`. Prose that names the formats in words (the "binary file" fix in
``sniffing``, :class:`~ollama_rag.loading.LoadedDocument`'s docstring) is not generated.
"""

from __future__ import annotations

from ollama_rag.loading.formats.base import Format
from ollama_rag.loading.formats.html import HTML
from ollama_rag.loading.formats.markdown import MARKDOWN
from ollama_rag.loading.formats.pdf import PDF, is_pdf
from ollama_rag.loading.formats.text import TEXT

__all__ = ["FORMATS", "SUPPORTED_SUFFIXES", "format_for"]

FORMATS: tuple[Format, ...] = (TEXT, MARKDOWN, HTML, PDF)
"""Every format that can be read; a suffix belongs to one of them."""

_BY_SUFFIX = {suffix: fmt for fmt in FORMATS for suffix in fmt.suffixes}

SUPPORTED_SUFFIXES: frozenset[str] = frozenset(_BY_SUFFIX)
"""Lower-case suffixes :func:`discover` picks up in folders and :func:`read_document` reads."""


def format_for(suffix: str, data: bytes) -> Format:
    """Return the format to read a file with, from its lower-case suffix and its bytes.

    Args:
        suffix: One of :data:`SUPPORTED_SUFFIXES`.
        data: The file's bytes.

    Returns:
        :data:`~ollama_rag.loading.formats.pdf.PDF` for bytes with a PDF header, whatever the
        suffix (a report saved as ``.txt`` is still a PDF); else the suffix's format.

    Raises:
        KeyError: If ``suffix`` is not supported (:func:`classify` reports those first).
    """
    if is_pdf(data):
        return PDF
    return _BY_SUFFIX[suffix]
