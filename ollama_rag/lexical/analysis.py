"""Term analysers for the lexical (BM25) index: text in, index terms out.

Chinese and Japanese do not separate words with spaces, and Korean attaches particles to its
words, so "split on whitespace" finds no usable terms in them. The default analyser,
``cjk-bigram``, needs no dictionary: it cuts every run of Han, kana and Hangul into overlapping
character bigrams (東京都 -> 東京 京都), which match a query's words wherever they occur, and
takes the letters and digits of every other script as words. The dictionary analysers cut
words the way a morphological analyser of the language does (SudachiPy or Janome for
Japanese, jieba for Chinese, Kiwi for Korean), each from its own optional extra; the scripts
their language does not cover fall back to the default rules, so a mixed corpus loses nothing.

Every analyser keeps the same contract, because its terms are joined with single spaces and fed
to SQLite FTS5: each term is non-empty, holds no whitespace, NUL or other control character,
and is NFKC-normalised and case-folded (it is a fixed point of NFKC∘casefold∘NFKC; for the
two dozen characters such as ǰ whose case folding NFKC composes back, ``term.casefold()`` is
the decomposed spelling). Terms come in text order with repeats kept, since term frequency
counts in BM25. Lone surrogates are replaced, not fatal; blank text has no terms.

An analyser's :attr:`~Analyzer.identity` is what an index records: a different identity means
different terms, so the lexical index is rebuilt from the stored text (without re-embedding).
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import re
import threading
import unicodedata
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping
from itertools import chain
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from ollama_rag.errors import ConfigError, MissingExtraError

if TYPE_CHECKING:
    from janome.tokenizer import Tokenizer as JanomeTokenizer
    from kiwipiepy import Kiwi
    from sudachipy import Dictionary as SudachiDictionary
    from sudachipy import Tokenizer as SudachiTokenizer

__all__ = ["ANALYZERS", "DEFAULT_ANALYZER", "Analyzer", "get_analyzer"]

DEFAULT_ANALYZER = "cjk-bigram"

# Whether cjk-bigram also emits every CJK character as a unigram. Unigrams let a one-character
# query word (山, 水) match inside longer runs, at the price of larger postings and noisier
# ranking; measured on JSQuAD (docs/analyzers.md) they win: hit@1 .906 vs .901 for bigrams
# alone. The one place to change the default.
DEFAULT_UNIGRAMS = True

UNKNOWN_ANALYZER_MESSAGE = "Unknown analyzer {name!r}; choose one of: {names}"
ANALYZER_EXTRA_MESSAGE = "The {name!r} analyzer needs {packages}: pip install 'ollama-rag[{extra}]'"

# --- characters ---------------------------------------------------------------------------
# After NFKC: halfwidth katakana, circled and squared katakana, Kangxi radicals and most CJK
# compatibility ideographs have become the characters below, so only these ranges are needed.
# 々 〇 〻 count as Han: they stand for ideographs (人々, 〇〇年).
_HAN = (
    "\u3005\u3007\u303b\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
    "\U00020000-\U0002fa1f"  # extensions B-F and I, compatibility ideographs supplement
    "\U00030000-\U000323af"  # extensions G and H
)
_KANA = (
    "\u3041-\u3096\u309d-\u309f\u30a1-\u30fa\u30fd-\u30ff\u31f0-\u31ff"
    "\U0001aff0-\U0001b16f"  # kana supplement and extensions, small kana
)
# ー lengthens the kana before it (コーヒー, すごーい); alone it is a dash, i.e. punctuation.
_PROLONGED = "\u30fc"
_HANGUL = "\u1100-\u11ff\u3131-\u318e\ua960-\ua97f\uac00-\ud7a3\ud7b0-\ud7ff"


def _combining_marks() -> str:
    """A character class body of every combining mark (Unicode category M) this Python knows.

    Python's word class leaves marks out, which would cut Devanagari, Thai or decomposed Latin
    words apart at every vowel sign or accent; words take them in instead. Built at import so
    that it follows the Unicode version of the running Python.
    """
    ranges: list[tuple[int, int]] = []
    # Marks above U+1FFFF are variation selectors only, which normalisation strips; the blocks
    # skipped (unified ideographs, Hangul syllables, surrogates, private use) hold none, and
    # skipping them saves a third of the import time.
    for cp in chain(
        range(0x3400), range(0xA000, 0xAC00), range(0xD7A4, 0xD800), range(0xF900, 0x20000)
    ):
        if unicodedata.category(chr(cp)).startswith("M"):
            if ranges and ranges[-1][1] == cp - 1:
                ranges[-1] = (ranges[-1][0], cp)
            else:
                ranges.append((cp, cp))
    return "".join(f"\\U{a:08x}-\\U{b:08x}" for a, b in ranges)


_CJK_CHARS = _HAN + _KANA + _HANGUL + _PROLONGED
# A word character: letters and digits (\w minus underscore), not of the CJK scripts.
_WORD_CHAR = f"[^\\W_{_CJK_CHARS}]"
_MARK = f"[{_combining_marks()}]"
_TERM_RE = re.compile(
    f"(?P<cjk>(?:[{_HAN}{_HANGUL}]|[{_KANA}]{_PROLONGED}*)+)"
    f"|(?P<word>{_WORD_CHAR}(?:{_WORD_CHAR}|{_MARK})*)"
)
# What may stand in a dictionary analyser's term: letters, digits and marks of any script.
_PIECE_RE = re.compile(r"[^\W_](?:[^\W_]|" + _MARK + ")*")
_SURROGATE_RE = re.compile(r"[\ud800-\udfff]")
# Invisible characters that sit inside words and would cut them: soft hyphen, joiners, word
# joiner, BOM, and variation selectors (which pick a glyph of 葛 or of an emoji, not a meaning).
_IGNORABLE_RE = re.compile(
    r"[\u00ad\u180b-\u180f\u200c\u200d\u2060\ufe00-\ufe0f\ufeff\U000e0100-\U000e01ef]"
)


def normalize(text: str) -> str:
    """NFKC, case-folded text with lone surrogates replaced and in-word invisibles removed.

    >>> normalize("Ｔｏｋｙｏ ｶﾀｶﾅ Straße")
    'tokyo カタカナ strasse'
    """
    if _SURROGATE_RE.search(text):
        # A str can hold lone surrogates (from surrogateescape, or JSON "\\ud800") that no
        # encoder accepts; as UTF-16 a valid pair joins into its character, a lone one is U+FFFD.
        text = text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    text = _IGNORABLE_RE.sub("", text)
    # NFKC again after case folding: folding can decompose (ǰ -> j + ˇ), NFKC re-composes;
    # the result is a fixed point of the three steps, so a term normalises to itself.
    return unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", text).casefold())


def bigram_terms(text: str, *, unigrams: bool = False) -> list[str]:
    """The default rules on already :func:`normalize`-d text.

    Runs of Han, kana and Hangul become overlapping bigrams (one unigram for a run of one
    character; with ``unigrams`` also one per character, each before its bigram); letters and
    digits of other scripts become words; punctuation, symbols and emoji are dropped.

    >>> bigram_terms("東京都 に 3 days")
    ['東京', '京都', 'に', '3', 'days']
    """
    terms: list[str] = []
    for match in _TERM_RE.finditer(text):
        run = match[0]
        if match.lastgroup == "word" or len(run) == 1:
            terms.append(run)
        elif unigrams:
            for i in range(len(run) - 1):
                terms.append(run[i])
                terms.append(run[i : i + 2])
            terms.append(run[-1])
        else:
            terms.extend(run[i : i + 2] for i in range(len(run) - 1))
    return terms


class Analyzer(ABC):
    """Turns text into index terms for the BM25 index; see the module docstring for the contract.

    Every analyser is thread-safe: one instance may serve an index written and searched from
    several threads.
    """

    name: ClassVar[str]
    """The name :func:`get_analyzer` takes, e.g. ``"cjk-bigram"``."""
    version: ClassVar[int]
    """Bumped whenever the terms produced for some text change."""

    @property
    def identity(self) -> str:
        """What an index records to tell whether its terms are still valid, e.g. ``cjk-bigram/1``.

        Name and version, then the options that change the terms and, for the dictionary
        analysers, the package and dictionary versions, so an upgrade is seen as a change.
        """
        return " ".join([f"{self.name}/{self.version}", *self._identity_details()])

    def _identity_details(self) -> list[str]:
        """The ``key=value`` parts of :attr:`identity` after the name and version."""
        return []

    @abstractmethod
    def terms(self, text: str) -> list[str]:
        """The index terms of a chunk, in text order, repeats kept."""

    def query_terms(self, text: str) -> list[str]:
        """The terms of a query: by default the same as :meth:`terms`."""
        return self.terms(text)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.identity}>"


class CJKBigramAnalyzer(Analyzer):
    """The default: overlapping bigrams for Han, kana and Hangul, words for other scripts.

    Needs no dictionary and no optional package, handles every language of a mixed corpus
    alike, and is deterministic across platforms and Python versions of the same Unicode.

    Args:
        unigrams: Also emit every CJK character on its own (``DEFAULT_UNIGRAMS`` if omitted).

    >>> CJKBigramAnalyzer().terms("富士山の標高は3776m")
    ['富士', '士山', '山の', 'の標', '標高', '高は', '3776m']
    """

    name = "cjk-bigram"
    version = 1

    def __init__(self, *, unigrams: bool = DEFAULT_UNIGRAMS) -> None:
        self.unigrams = unigrams

    def _identity_details(self) -> list[str]:
        # Absolute, not relative to DEFAULT_UNIGRAMS: flipping the default must change the
        # identity of the default analyser, or indexes built before would go stale unseen.
        return ["unigrams=true"] if self.unigrams else []

    def terms(self, text: str) -> list[str]:
        """See :class:`Analyzer`."""
        return bigram_terms(normalize(text), unigrams=self.unigrams)


# Dictionary analysers take text in pieces of at most this many characters: SudachiPy refuses
# inputs over 49,149 UTF-8 bytes (4 bytes a character at worst), and a morphological lattice
# over a whole book would be memory for nothing. Pieces end at a space or sentence end if any.
_PIECE_CHARS = 4096
_PIECE_END_RE = re.compile(r"[\s。!?.]")


def _pieces(text: str) -> Iterator[str]:
    start = 0
    while len(text) - start > _PIECE_CHARS:
        window = text[start : start + _PIECE_CHARS]
        ends = [m.end() for m in _PIECE_END_RE.finditer(window)]
        cut = ends[-1] if ends else _PIECE_CHARS
        yield window[:cut]
        start += cut
    yield text[start:]


class _DictionaryAnalyzer(Analyzer):
    """An analyser that asks a morphological analyser for the words of its own scripts.

    Subclasses name their extra and packages and implement :meth:`_tokens`. Text is normalised
    first (so halfwidth kana and fullwidth digits reach the tokenizer as dictionary forms), the
    tokenizer cuts it, and every stretch between the tokens of the covered scripts (Latin,
    digits, other CJK scripts, punctuation) goes through :func:`bigram_terms`.
    """

    extra: ClassVar[str]
    """The pyproject extra that installs the packages."""
    requires: ClassVar[tuple[tuple[str, str, str], ...]]
    """(import name, distribution name, name users know) of each package needed."""
    covered: ClassVar[re.Pattern[str]]
    """A character of the scripts the tokenizer's language covers."""

    def __init__(self) -> None:
        missing = [label for module, _, label in self.requires if not _installed(module)]
        if missing:
            msg = ANALYZER_EXTRA_MESSAGE.format(
                name=self.name, packages=" and ".join(missing), extra=self.extra
            )
            raise MissingExtraError(msg, extra=self.extra, package=missing[0])
        # Read once: the identity must describe the packages this process actually loaded.
        self._versions = [
            f"{dist.replace('-', '_')}={importlib.metadata.version(dist)}"
            for _, dist, _ in self.requires
        ]
        self._lock = threading.Lock()
        self._local = threading.local()

    def _identity_details(self) -> list[str]:
        return list(self._versions)

    @abstractmethod
    def _tokens(self, text: str) -> list[tuple[int, int, str | None]]:
        """Every token of ``text``: start and end offsets, and its term (None: drop it)."""

    def terms(self, text: str) -> list[str]:
        """See :class:`Analyzer`."""
        normalized = normalize(text)
        terms: list[str] = []
        if normalized.isspace() or not normalized:
            return terms
        for piece in _pieces(normalized):
            cursor = 0
            for start, end, term in self._tokens(piece):
                if not self.covered.search(piece, start, end):
                    continue  # left to the default rules with the rest of its stretch
                if start > cursor:
                    terms.extend(bigram_terms(piece[cursor:start]))
                if term:
                    terms.extend(_PIECE_RE.findall(normalize(term)))
                # Search-mode tokenizers (jieba) return overlapping words: never step back.
                cursor = max(cursor, end)
            terms.extend(bigram_terms(piece[cursor:]))
        return terms


def _installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


# ー alone is not a Japanese word (a dash); only with the kana it lengthens.
_JAPANESE = re.compile(f"[{_HAN}{_KANA}]")

# Split mode C gives the longest units (東京都, 国家公務員); A the shortest (東京 都). C is
# the default: on JSQuAD it ranked the gold passage first slightly more often (docs/analyzers.md).
SudachiMode = Literal["A", "B", "C"]
_SUDACHI_BASELINE_MODE: SudachiMode = "C"
# Parts of speech that are not words: punctuation, symbols, whitespace.
_SUDACHI_DROPPED = frozenset({"補助記号", "記号", "空白"})


class SudachiAnalyzer(_DictionaryAnalyzer):
    """Japanese words by SudachiPy with the core dictionary, in their normalised forms.

    Normalised forms merge spelling variants (附属 and 付属, シュミレーション and
    シミュレーション), so a query finds a passage written the other way. SudachiPy's tokenizer
    must not be used by two threads at once (it raises), so each thread gets its own over one
    shared dictionary.

    Args:
        split_mode: Sudachi's split mode, ``"C"`` (longest units) unless given.
    """

    name = "sudachi"
    version = 1
    extra = "sudachi"
    requires = (
        ("sudachipy", "sudachipy", "SudachiPy"),
        ("sudachidict_core", "sudachidict-core", "SudachiDict-core"),
    )
    covered = _JAPANESE

    def __init__(self, *, split_mode: SudachiMode = _SUDACHI_BASELINE_MODE) -> None:
        if split_mode not in ("A", "B", "C"):
            msg = f"split_mode must be 'A', 'B' or 'C', not {split_mode!r}"
            raise ConfigError(msg)
        super().__init__()
        self.split_mode = split_mode
        self._dictionary: SudachiDictionary | None = None

    def _identity_details(self) -> list[str]:
        mode = [] if self.split_mode == _SUDACHI_BASELINE_MODE else [f"mode={self.split_mode}"]
        return mode + super()._identity_details()

    def _tokenizer(self) -> SudachiTokenizer:
        tokenizer: SudachiTokenizer | None = getattr(self._local, "tokenizer", None)
        if tokenizer is None:
            with self._lock:
                if self._dictionary is None:
                    from sudachipy import Dictionary

                    self._dictionary = Dictionary(dict="core")
                dictionary = self._dictionary
            tokenizer = dictionary.tokenizer(mode=self.split_mode)
            self._local.tokenizer = tokenizer
        return tokenizer

    def _tokens(self, text: str) -> list[tuple[int, int, str | None]]:
        return [
            (
                int(m.begin()),
                int(m.end()),
                None if m.part_of_speech()[0] in _SUDACHI_DROPPED else str(m.normalized_form()),
            )
            for m in self._tokenizer().tokenize(text)
        ]


class JanomeAnalyzer(_DictionaryAnalyzer):
    """Japanese words by Janome (pure Python, IPADIC bundled), in their base forms.

    Base forms (買っ -> 買う) let inflected verbs and adjectives match. Janome's tokenizer
    keeps an unlocked cache, so each thread gets its own (they share the system dictionary).
    """

    name = "janome"
    version = 1
    extra = "janome"
    requires = (("janome", "janome", "Janome"),)
    covered = _JAPANESE

    def _tokenizer(self) -> JanomeTokenizer:
        tokenizer: JanomeTokenizer | None = getattr(self._local, "tokenizer", None)
        if tokenizer is None:
            from janome.tokenizer import Tokenizer

            tokenizer = Tokenizer()
            self._local.tokenizer = tokenizer
        return tokenizer

    def _tokens(self, text: str) -> list[tuple[int, int, str | None]]:
        tokens: list[tuple[int, int, str | None]] = []
        cursor = 0
        for token in self._tokenizer().tokenize(text):
            if isinstance(token, str):  # only in wakati mode, which is not used
                continue
            surface = str(token.surface)
            # Janome gives no offsets; its tokens follow the text, so each is found after the last.
            start = text.find(surface, cursor)
            if not surface or start < 0:
                continue
            cursor = start + len(surface)
            base = str(token.base_form)
            pos = str(token.part_of_speech).split(",", 1)[0]
            term = None if pos == "記号" else (surface if base in ("", "*") else base)
            tokens.append((start, cursor, term))
        return tokens


class JiebaAnalyzer(_DictionaryAnalyzer):
    """Chinese words by jieba in search mode (``cut_for_search``), simplified or traditional.

    Search mode adds the dictionary words inside a long word (清华大学 -> 清华, 华大, 大学,
    清华大学), so a query for a part finds the whole. jieba's ``tokenize(mode="search")`` is
    ``cut_for_search`` with offsets. One tokenizer serves all threads: after its dictionary is
    loaded (under a lock) cutting only reads it.
    """

    name = "jieba"
    version = 1
    extra = "jieba"
    requires = (("jieba", "jieba", "jieba"),)
    covered = re.compile(f"[{_HAN}]")

    def __init__(self) -> None:
        super().__init__()
        self._jieba: Any = None

    def _tokenizer(self) -> Any:
        with self._lock:
            if self._jieba is None:
                import jieba

                tokenizer = jieba.Tokenizer()
                tokenizer.initialize()
                self._jieba = tokenizer
            return self._jieba

    def _tokens(self, text: str) -> list[tuple[int, int, str | None]]:
        return [
            (int(start), int(end), str(word))
            for word, start, end in self._tokenizer().tokenize(text, mode="search")
        ]


class KiwiAnalyzer(_DictionaryAnalyzer):
    """Korean morphemes by Kiwi: 분석기를 -> 분석기, 를; 사용했습니다 -> 사용, 하, 었, 습니다.

    Morphemes separate the particles and endings that Korean attaches to its words, so 서울에서
    and 서울은 share the term 서울. One Kiwi serves all threads: loading it takes seconds and
    hundreds of MB, and its analysis does not change it.
    """

    name = "kiwi"
    version = 1
    extra = "kiwi"
    requires = (
        ("kiwipiepy", "kiwipiepy", "kiwipiepy"),
        ("kiwipiepy_model", "kiwipiepy-model", "kiwipiepy-model"),
    )
    covered = re.compile(f"[{_HANGUL}]")

    def __init__(self) -> None:
        super().__init__()
        self._kiwi: Kiwi | None = None

    def _tokenizer(self) -> Kiwi:
        with self._lock:
            if self._kiwi is None:
                from kiwipiepy import Kiwi

                self._kiwi = Kiwi()
            return self._kiwi

    def _tokens(self, text: str) -> list[tuple[int, int, str | None]]:
        # Tags starting with S are punctuation, symbols, foreign words and numbers.
        return [
            (
                int(t.start),
                int(t.start + t.len),
                None if str(t.tag).startswith("S") else str(t.form),
            )
            for t in self._tokenizer().tokenize(text)
        ]


ANALYZERS: Mapping[str, type[Analyzer]] = MappingProxyType(
    {
        cls.name: cls
        for cls in (
            CJKBigramAnalyzer,
            JanomeAnalyzer,
            JiebaAnalyzer,
            KiwiAnalyzer,
            SudachiAnalyzer,
        )
    }
)
"""Every analyser by name."""


def get_analyzer(name: str = DEFAULT_ANALYZER) -> Analyzer:
    """The analyser called ``name``, with its default options.

    Dictionaries load on first use, not here, so this is cheap.

    Raises:
        ConfigError: ``name`` is not one of :data:`ANALYZERS`; the message lists them.
        MissingExtraError: The analyser's optional package is not installed; the message is
            the one-line fix, e.g. ``pip install 'ollama-rag[sudachi]'``.
    """
    cls = ANALYZERS.get(name)
    if cls is None:
        msg = UNKNOWN_ANALYZER_MESSAGE.format(name=name, names=", ".join(sorted(ANALYZERS)))
        raise ConfigError(msg)
    return cls()
