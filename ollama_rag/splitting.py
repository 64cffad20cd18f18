"""A LangChain text splitter that cuts Chinese, Japanese, Korean and English at sentence ends.

LangChain's default ``RecursiveCharacterTextSplitter`` falls back from paragraphs to spaces,
and CJK text has no spaces, so its chunks end wherever the size limit happens to fall, often
mid-word. :class:`CJKTextSplitter` keeps LangChain's recursive scheme (try the coarsest
separator, merge the pieces up to ``chunk_size`` with :meth:`TextSplitter._merge_splits`,
recurse into pieces that are still too long) but with separator tiers that CJK text actually
has: paragraphs, lines, sentence ends, clauses, commas, spaces, and finally single characters.

Punctuation stays at the end of the piece it closes, together with any closing quote or
bracket after it, so ``「はい。」と言った。`` splits into ``「はい。」`` and ``と言った。``.
Every chunk is an exact slice of the input, and :meth:`CJKTextSplitter.create_documents`
records where: ``text[start_index:end_index] == chunk``, even when the same sentence occurs
many times.

Example::

    splitter = CJKTextSplitter(chunk_size=300, chunk_overlap=30)
    docs = splitter.create_documents([article], metadatas=[{"source": "a.txt"}])
    docs[0].metadata  # {"source": "a.txt", "start_index": 0, "end_index": 287}
"""

from __future__ import annotations

import copy
import re
from collections.abc import Sequence
from typing import Any

from langchain_core.documents import Document
from langchain_text_splitters import TextSplitter

from ollama_rag.errors import ConfigError

__all__ = [
    "CJK_SEPARATORS",
    "DEFAULT_CHUNK_OVERLAP",
    "DEFAULT_CHUNK_SIZE",
    "DEFAULT_CONTEXT_TOKENS",
    "DEFAULT_MAX_CHUNK_CHARS",
    "MIN_CHUNK_CHARS",
    "CJKTextSplitter",
    "chunk_settings_for_context",
    "cjk_share",
    "ends_at_boundary",
    "is_cjk",
]

# Han (with extensions and compatibility forms), kana, Hangul (syllables and jamo), Bopomofo,
# CJK symbols and punctuation (incl. the ideographic space), enclosed/compatibility blocks,
# vertical and small forms, and half-width/full-width forms.
_CJK_RANGES = (
    "\u1100-\u11ff"
    "\u2e80-\u2fdf"
    "\u3000-\u33ff"
    "\u3400-\u4dbf"
    "\u4e00-\u9fff"
    "\ua960-\ua97f"
    "\uac00-\ud7ff"
    "\uf900-\ufaff"
    "\ufe10-\ufe1f"
    "\ufe30-\ufe6f"
    "\uff00-\uffef"
    "\U00020000-\U000323af"
)
_CJK = f"[{_CJK_RANGES}]"
_CJK_RE = re.compile(_CJK)

# Full-width and CJK sentence terminators end a sentence wherever they stand. The full-width
# full stop is special-cased below because it doubles as a decimal point in full-width numbers.
_TERMINATORS = "。｡！？‼⁇⁈⁉"
_CLOSERS = "」』）】〕〉》〙〗〞”’｣)\\]\"'"
# Half-width punctuation is also Latin punctuation, so it only counts when what follows shows
# it is not inside a token: "3.14", "10:30", "1,000" and "https://a.example/?q=1" stay whole.
# Closing brackets are excluded from the look-ahead so that a backtracking match cannot end
# between a terminator and its closing quote. Spaces after a separator stay with the piece it
# ends, so the next piece starts with text. The look-behinds try a run of "." only from its
# first character, which keeps a long run ("......" leaders in a table of contents) linear.
_LATIN_END = r"(?:[^\S\n]+|(?=\n)|\Z)"
_LATIN_END_OR_CJK = rf"(?:[^\S\n]+|(?=\n)|\Z|(?=(?![{_CLOSERS}]){_CJK}))"

PARAGRAPH_SEPARATOR = r"\n(?:[^\S\n]*\n)+"
LINE_SEPARATOR = r"\n"
SENTENCE_SEPARATOR = (
    rf"(?:[{_TERMINATORS}]|．(?![0-9０-９]))[{_TERMINATORS}．!?]*[{_CLOSERS}]*[^\S\n]*"
    rf"|(?<![.!?])[.!?]+[{_CLOSERS}]*{_LATIN_END}"
    rf"|(?<![!?])[!?]+[{_CLOSERS}]*{_LATIN_END_OR_CJK}"
)
CLAUSE_SEPARATOR = rf"[；：︰]|[;:]{_LATIN_END_OR_CJK}"
COMMA_SEPARATOR = rf"[、，､﹐﹑]|,{_LATIN_END_OR_CJK}"
SPACE_SEPARATOR = r"\s+"

CJK_SEPARATORS: tuple[str, ...] = (
    PARAGRAPH_SEPARATOR,
    LINE_SEPARATOR,
    SENTENCE_SEPARATOR,
    CLAUSE_SEPARATOR,
    COMMA_SEPARATOR,
    SPACE_SEPARATOR,
    "",
)
"""Separator tiers, coarsest first, as regular expressions; ``""`` means single characters.

A piece ends right after each match, so the punctuation stays with the text it closes.
"""

DEFAULT_MAX_CHUNK_CHARS = 1000
"""Upper bound for :func:`chunk_settings_for_context`: longer chunks blur retrieval."""

MIN_CHUNK_CHARS = 64
"""Lower bound for :func:`chunk_settings_for_context`: shorter chunks lose their context."""

DEFAULT_CONTEXT_TOKENS = 512
"""The context (tokens) behind the constructor defaults: BERT-sized embedding models have 512."""

_RESERVED_TOKENS = 16
_CONTEXT_SAFETY = 0.9
_OVERLAP_DIVISOR = 8


def cjk_share(text: str) -> float:
    """Return the share of non-space characters in ``text`` that are CJK.

    >>> cjk_share("RAGは便利")
    0.5
    >>> cjk_share("")
    0.0
    """
    letters = [c for c in text if not c.isspace()]
    if not letters:
        return 0.0
    return sum(1 for c in letters if _CJK_RE.match(c)) / len(letters)


def is_cjk(text: str) -> bool:
    """Return True if ``text`` contains a Chinese, Japanese or Korean character.

    Han, kana, Hangul, Bopomofo, CJK punctuation and full-width forms all count.

    >>> is_cjk("漢")
    True
    >>> is_cjk("カタカナ")
    True
    >>> is_cjk("한국어")
    True
    >>> is_cjk("。")
    True
    >>> is_cjk("RAG は便利")
    True
    >>> is_cjk("plain English, café")
    False
    >>> is_cjk("")
    False
    """
    return _CJK_RE.search(text) is not None


_BOUNDARY_END_RE = re.compile(rf"([{_TERMINATORS}．!?.])[{_CLOSERS}]*\Z")
_LINE_END_RE = re.compile(r"[^\S\n]*(?:\n|\Z)")
# Enough look-back for a terminator followed by any realistic run of closing brackets.
_BOUNDARY_WINDOW = 32


def ends_at_boundary(text: str, end: int) -> bool:
    r"""Return True if a chunk ending at offset ``end`` of ``text`` ends a sentence or paragraph.

    That is the case when the text before ``end``, ignoring trailing whitespace, ends with a
    sentence terminator (``。．！？!?`` in any width, or a Latin ``.`` that is followed by
    whitespace) and optionally closing brackets or quotes (``」』）”`` …), or when only spaces
    stand between ``end`` and the next line break or the end of the text. This is the measure
    behind the splitter's quality test and benchmark.

    >>> text = "「はい。」と言った。次の文、続き\n次の行"
    >>> ends_at_boundary(text, text.index("と"))
    True
    >>> ends_at_boundary(text, text.index("続"))
    False
    >>> ends_at_boundary(text, text.index("\n"))
    True
    >>> ends_at_boundary("Pi is 3.14. So", 8)
    False
    >>> ends_at_boundary("Pi is 3.14. So", 11)
    True
    """
    if _LINE_END_RE.match(text, end):
        return True
    last = end
    while last > 0 and text[last - 1].isspace():
        last -= 1
    match = _BOUNDARY_END_RE.search(text, max(0, last - _BOUNDARY_WINDOW), last)
    if match is None:
        return False
    # A Latin full stop ends a sentence only before whitespace ("end. Next", not "3.14").
    return match.group(1) != "." or last == len(text) or text[last].isspace()


def chunk_settings_for_context(
    context_length: int,
    *,
    chars_per_token: float = 1.0,
    reserved_tokens: int = _RESERVED_TOKENS,
) -> tuple[int, int]:
    """Return a default ``(chunk_size, chunk_overlap)`` in characters for a model's context.

    Chunk sizes are in characters but models truncate in tokens, so the size is estimated
    conservatively:

    * ``chars_per_token=1.0`` assumes one token per character. That is the worst case for CJK
      with the tokenizers embedding models use (WordPiece and SentencePiece give at most about
      one token per Han character or Hangul syllable); English runs at about four characters
      per token, so English chunks are merely smaller than they could be.
    * ``reserved_tokens`` (16) are kept for special tokens (BOS/EOS, CLS/SEP) and a document
      prefix such as ``"search_document: "``.
    * A further 10% is kept for characters that tokenize into several pieces (rare Han
      characters, emoji and other byte-fallback cases).

    The result is capped at :data:`DEFAULT_MAX_CHUNK_CHARS`, because a long chunk averages
    many topics into one vector and is retrieved less precisely, and floored at
    :data:`MIN_CHUNK_CHARS`, below which a chunk has too little context to embed usefully (a
    model with fewer than about 90 tokens of context would then truncate). The overlap is one
    eighth of the size (12.5%), enough to carry a short sentence across a chunk edge.

    >>> chunk_settings_for_context(512)
    (446, 55)
    >>> chunk_settings_for_context(8192)
    (1000, 125)
    >>> chunk_settings_for_context(256)
    (216, 27)

    Args:
        context_length: The model's context in tokens (Ollama's ``num_ctx`` or the model's
            trained context, whichever is smaller).
        chars_per_token: Characters per token to assume; raise it only for text known to be
            non-CJK.
        reserved_tokens: Tokens to keep free for special tokens and prefixes.

    Returns:
        ``(chunk_size, chunk_overlap)`` in characters.

    Raises:
        ConfigError: ``context_length`` < 1, ``chars_per_token`` <= 0 or ``reserved_tokens`` < 0.
    """
    if context_length < 1:
        msg = f"context_length must be at least 1 token, got {context_length}"
        raise ConfigError(msg)
    if chars_per_token <= 0:
        msg = f"chars_per_token must be greater than 0, got {chars_per_token}"
        raise ConfigError(msg)
    if reserved_tokens < 0:
        msg = f"reserved_tokens must be 0 or more, got {reserved_tokens}"
        raise ConfigError(msg)
    usable_tokens = max(context_length - reserved_tokens, 0) * _CONTEXT_SAFETY
    size = int(usable_tokens * chars_per_token)
    size = min(max(size, MIN_CHUNK_CHARS), DEFAULT_MAX_CHUNK_CHARS)
    return size, size // _OVERLAP_DIVISOR


DEFAULT_CHUNK_SIZE, DEFAULT_CHUNK_OVERLAP = chunk_settings_for_context(DEFAULT_CONTEXT_TOKENS)


class _Piece(str):
    """A slice of the input text that remembers its start offset."""

    start: int

    def __new__(cls, value: str, start: int) -> _Piece:
        piece = super().__new__(cls, value)
        piece.start = start
        return piece


def _cut(piece: _Piece, pattern: re.Pattern[str] | None) -> list[_Piece]:
    """Cut ``piece`` after every match of ``pattern`` (``None``: after every character).

    Whitespace at the edges of a cut piece becomes a piece of its own, so that it never makes
    a sentence look longer than it is: chunks are stripped, and a sentence of exactly
    ``chunk_size`` characters plus the space after it must still fit whole.

    Returns:
        The pieces, or ``[]`` when the pattern does not cut ``piece`` at all.
    """
    if pattern is None:
        ends = list(range(1, len(piece)))
    else:
        ends = sorted({m.end() for m in pattern.finditer(piece) if 0 < m.end() < len(piece)})
    if not ends:
        return []
    pieces = []
    begin = 0
    for end in [*ends, len(piece)]:
        raw = piece[begin:end]
        core = raw.strip()
        if core and core != raw:
            lead = len(raw) - len(raw.lstrip())
            for a, b in ((0, lead), (lead, lead + len(core)), (lead + len(core), len(raw))):
                if b > a:
                    pieces.append(_Piece(raw[a:b], piece.start + begin + a))
        else:
            pieces.append(_Piece(raw, piece.start + begin))
        begin = end
    return pieces


class CJKTextSplitter(TextSplitter):
    """Split text at paragraph, sentence, clause and comma boundaries, CJK and Latin alike.

    A LangChain ``TextSplitter``: ``split_text``, ``create_documents``, ``split_documents``
    and ``transform_documents`` behave as in LangChain, with separators tuned for Chinese,
    Japanese, Korean and mixed-script text (:data:`CJK_SEPARATORS`).

    Guarantees:

    * No chunk is longer than ``chunk_size`` (as measured by ``length_function``, ``len`` by
      default): a run with no separator at all is cut between characters.
    * Every chunk is an exact slice of its text. With ``add_start_index`` (the default here),
      documents carry ``start_index`` and ``end_index`` with
      ``text[start_index:end_index] == page_content``.
    * Punctuation ends the chunk it closes; chunks are stripped of edge whitespace.
    * Consecutive chunks share up to ``chunk_overlap`` characters of whole pieces, as with
      LangChain's own splitters.

    Instantiate::

        splitter = CJKTextSplitter(chunk_size=300, chunk_overlap=30)
        splitter.split_text("梅雨は雨の多い期間のこと。雨季の一種である。")

    Sized for a model::

        size, overlap = chunk_settings_for_context(8192)
        splitter = CJKTextSplitter(size, overlap)
    """

    def __init__(
        self,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
        chunk_overlap: int = DEFAULT_CHUNK_OVERLAP,
        *,
        separators: Sequence[str] | None = None,
        add_start_index: bool = True,
        **kwargs: Any,
    ) -> None:
        """Create a splitter.

        Args:
            chunk_size: Maximum chunk length in characters (see
                :func:`chunk_settings_for_context` for a size that fits a model).
            chunk_overlap: Characters consecutive chunks may share; less than ``chunk_size``.
            separators: Regular expressions tried coarsest first, as in
                :data:`CJK_SEPARATORS` (``re.escape`` literal ones); a piece ends right after
                each match. ``""`` means single characters; it is always the last tier (added
                if missing, tiers after it dropped).
            add_start_index: Put ``start_index`` and ``end_index`` in each document's metadata.
            **kwargs: Passed to LangChain's ``TextSplitter`` (``length_function``,
                ``strip_whitespace``). ``keep_separator`` is always ``"end"``.

        Raises:
            ConfigError: A size is out of range, ``chunk_overlap >= chunk_size``, a separator
                is not a valid regular expression, or ``keep_separator`` is not ``"end"``.
        """
        if chunk_size < 1:
            msg = f"chunk_size must be at least 1, got {chunk_size}"
            raise ConfigError(msg)
        if chunk_overlap < 0:
            msg = f"chunk_overlap must be 0 or more, got {chunk_overlap}"
            raise ConfigError(msg)
        if chunk_overlap >= chunk_size:
            msg = (
                f"chunk_overlap ({chunk_overlap}) must be smaller than chunk_size ({chunk_size}); "
                f"use chunk_overlap={chunk_size // _OVERLAP_DIVISOR} (one eighth) or a larger "
                "chunk_size"
            )
            raise ConfigError(msg)
        if kwargs.setdefault("keep_separator", "end") != "end":
            msg = (
                f'CJKTextSplitter always keeps separators at the end (keep_separator="end"), '
                f"got keep_separator={kwargs['keep_separator']!r}; leave it out"
            )
            raise ConfigError(msg)
        super().__init__(
            chunk_size=chunk_size,
            chunk_overlap=chunk_overlap,
            add_start_index=add_start_index,
            **kwargs,
        )
        tiers = list(CJK_SEPARATORS if separators is None else separators)
        # Single characters always come last: they are what makes chunk_size a hard limit.
        tiers = [*tiers[: tiers.index("")], ""] if "" in tiers else [*tiers, ""]
        try:
            self._tiers = [re.compile(s) if s else None for s in tiers]
        except re.error as err:
            msg = f"A separator is not a valid regular expression ({err}); use re.escape(...)"
            raise ConfigError(msg) from err
        self._separators = tuple(tiers)

    @property
    def separators(self) -> tuple[str, ...]:
        """The separator tiers in use, coarsest first (always ending with ``""``)."""
        return self._separators

    def split_text(self, text: str) -> list[str]:
        """Split ``text`` into chunks of at most ``chunk_size`` characters.

        Args:
            text: The text to split.

        Returns:
            The chunks in order; each is a slice of ``text``. Empty or blank text gives ``[]``.
        """
        return [chunk for _, chunk in self.split_text_with_offsets(text)]

    def split_text_with_offsets(self, text: str) -> list[tuple[int, str]]:
        """Split ``text`` and return each chunk with its start offset in ``text``.

        Args:
            text: The text to split.

        Returns:
            ``(start, chunk)`` pairs with ``text[start:start + len(chunk)] == chunk``.
        """
        spans: list[tuple[int, str]] = []
        search_from = covered = 0
        for chunk in self._split(_Piece(text, 0), self._tiers):
            # _join_docs hands back offset-carrying pieces; find() is only a fallback should a
            # future LangChain build chunks elsewhere.
            start = chunk.start if isinstance(chunk, _Piece) else text.find(chunk, search_from)
            # _merge_splits emits the kept overlap a second time when only whitespace follows
            # it; a chunk inside the previous one adds nothing but a duplicate vector.
            if spans and start + len(chunk) <= covered:
                continue
            spans.append((start, str(chunk)))
            search_from, covered = start + 1, start + len(chunk)
        return spans

    def create_documents(
        self, texts: list[str], metadatas: list[dict[Any, Any]] | None = None
    ) -> list[Document]:
        """Split each text into documents, copying its metadata into every chunk.

        Args:
            texts: The texts to split.
            metadatas: One metadata dict per text (copied, never shared), or None.

        Returns:
            The documents, with ``start_index``/``end_index`` offsets into their text when
            ``add_start_index`` is set.

        Raises:
            ConfigError: ``metadatas`` is not as long as ``texts``.
        """
        metadatas = metadatas or None  # LangChain treats an empty list as "no metadata"
        if metadatas is not None and len(metadatas) != len(texts):
            msg = f"Got {len(metadatas)} metadata dicts for {len(texts)} texts; pass one per text"
            raise ConfigError(msg)
        documents = []
        for i, text in enumerate(texts):
            # LangChain recovers offsets with text.find(), which can land on an earlier copy of
            # a repeated passage; the offsets known from splitting are exact.
            for start, chunk in self.split_text_with_offsets(text):
                metadata = copy.deepcopy(metadatas[i]) if metadatas is not None else {}
                if self._add_start_index:
                    metadata["start_index"] = start
                    metadata["end_index"] = start + len(chunk)
                documents.append(Document(page_content=chunk, metadata=metadata))
        return documents

    def _split(self, piece: _Piece, tiers: Sequence[re.Pattern[str] | None]) -> list[str]:
        """Split ``piece`` at the coarsest tier present, merge, and recurse into long pieces."""
        splits = [piece]
        rest: Sequence[re.Pattern[str] | None] = ()
        for i, pattern in enumerate(tiers):
            cut = _cut(piece, pattern)
            if cut:
                splits, rest = cut, tiers[i + 1 :]
                break
        chunks: list[str] = []
        fitting: list[str] = []
        for split in splits:
            if self._length_function(split) <= self._chunk_size or not rest:
                fitting.append(split)
                continue
            # Flush before recursing so that chunks keep the text order and never span a
            # piece that has to be cut finer.
            if fitting:
                chunks.extend(self._merge_splits(fitting, ""))
                fitting = []
            chunks.extend(self._split(split, rest))
        if fitting:
            chunks.extend(self._merge_splits(fitting, ""))
        return chunks

    def _join_docs(self, docs: list[str], separator: str) -> str | None:
        # _merge_splits builds every chunk here from consecutive pieces; returning a _Piece
        # carries the chunk's exact offset out of LangChain's merge.
        joined = super()._join_docs(docs, separator)
        if joined is None or separator or not docs or not isinstance(docs[0], _Piece):
            return joined
        raw = "".join(docs)
        stripped = len(raw) - len(raw.lstrip()) if self._strip_whitespace else 0
        return _Piece(joined, docs[0].start + stripped)
