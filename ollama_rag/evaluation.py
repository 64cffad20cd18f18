"""Retrieval metrics over labelled questions: hit@k, recall@k, MRR@10 and nDCG@10.

A labelled question says what a good search result must contain, in terms that survive
re-indexing with another model, chunk size or splitter (chunk ids would not):

- ``{"question": "...", "answer": "..."}`` (or ``"answers": [...]``): a chunk is relevant to an
  answer when the answer occurs in its text, compared after Unicode NFKC normalisation and
  case folding with all whitespace removed, so ``"５月"`` matches ``"5月"`` and a line break
  inside a Japanese sentence does not hide a match;
- ``{"question": "...", "source": "fuji.md"}``: a chunk of that source is relevant;
  with ``"start"``/``"end"`` (character offsets into the source text, end exclusive), only a
  chunk whose ``[start_index, end_index)`` overlaps ``[start, end)`` is; ranges that merely
  touch do not overlap;
- both: each answer must be found in a chunk of that source (and span).

Each answer (or the span, when there is no answer) is one *label*. Over the ``max(k, 10)``
chunks retrieved per question, with ``rank`` the 1-based position of the first relevant chunk:

- ``hit@k``: 1 if ``rank <= k`` else 0;
- ``recall@k``: the fraction of the question's labels found in the top ``k``;
- ``mrr@10``: ``1 / rank`` if ``rank <= 10`` else 0;
- ``ndcg@10``: binary gains, where the chunk at position ``i`` gains 1 when it is the first to
  find one of the labels (a second chunk with the same answer, or an overlapping chunk of the
  same span, gains nothing, so repeats are not rewarded and the score stays within 0..1);
  ``DCG = sum(gain_i / log2(i + 1))`` and the ideal DCG assumes ``min(#labels, 10)`` relevant
  chunks in the first positions. A chunk holding two answers at once gains 1, so such a
  question scores below 1 even when perfectly ranked; that is the price of binary gains.

Each figure is averaged over the questions. This module knows nothing of Chroma or of
``RagIndex``: :func:`evaluate` takes a function that retrieves documents for a batch of
questions (``RagIndex.evaluate`` passes its searcher's batched search).
"""

from __future__ import annotations

import json
import math
import os
import time
import unicodedata
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn, TypeAlias

from langchain_core.documents import Document

from ollama_rag import display
from ollama_rag.display import Html
from ollama_rag.errors import ConfigError
from ollama_rag.progress import progress_bar
from ollama_rag.storage.schema import END, SOURCE, START

__all__ = [
    "MRR_DEPTH",
    "EvaluationResult",
    "EvaluationTable",
    "LabelledQuestion",
    "QuestionResult",
    "Retrieve",
    "evaluate",
    "load_questions",
    "normalize_for_matching",
    "question_metrics",
]

MRR_DEPTH = 10
"""MRR and nDCG look at this many chunks (``mrr@10``, ``ndcg@10``)."""

# Evaluations of this many questions get a progress bar unless progress=False.
AUTO_PROGRESS_QUESTIONS = 200

_RECORD_FIX = (
    'each record needs "question" and "answer" (or "answers": [...]) and/or "source" '
    '(with optional "start" and "end"), e.g. {"question": "富士山の高さは？", "answer": "3776"}'
)

Retrieve: TypeAlias = Callable[[Sequence[str], int], Sequence[Sequence[Document]]]
"""Retrieves the top ``k`` documents for each question of a batch, best first."""


def normalize_for_matching(text: str) -> str:
    r"""NFKC-normalise, case-fold and drop all whitespace: the form answers are compared in.

    >>> normalize_for_matching("５月 から\n７月") == normalize_for_matching("5月から7月")
    True
    >>> normalize_for_matching("Mount  FUJI")
    'mountfuji'
    """
    # NFKC again after casefold, which can produce characters NFKC would change.
    folded = unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", text).casefold())
    return "".join(folded.split())


# ---------------------------------------------------------------------- labelled questions


@dataclass(frozen=True)
class LabelledQuestion:
    """A question and what a relevant retrieved chunk must contain.

    Attributes:
        question: The question, as a user would ask it.
        answers: Strings a relevant chunk contains (any one makes a chunk relevant; each is
            one label for recall).
        source: The source a relevant chunk comes from (``metadata["source"]`` of search
            results, e.g. ``"fuji.md"``).
        start: With ``end``, character offsets into the source text: a relevant chunk
            overlaps ``[start, end)``.
        end: See ``start`` (exclusive).
        id: Your own identifier, carried into the per-question results.

    Raises:
        ConfigError: The question is empty, there is neither an answer nor a source, or the
            span is incomplete or empty.
    """

    question: str
    answers: tuple[str, ...] = ()
    source: str | None = None
    start: int | None = None
    end: int | None = None
    id: str | None = None

    def __post_init__(self) -> None:
        if isinstance(self.answers, str):  # a lone string would be read as its characters
            object.__setattr__(self, "answers", (self.answers,))
        else:
            object.__setattr__(self, "answers", tuple(self.answers))
        problem = _problem_of(self)
        if problem is not None:
            raise ConfigError(problem)

    @classmethod
    def from_mapping(cls, record: Mapping[str, Any]) -> LabelledQuestion:
        """Build one from a JSON-style record; keys other than the documented ones are ignored.

        Raises:
            ConfigError: The record is not a valid labelled question (the message says why).
        """
        if not isinstance(record, Mapping):
            msg = f"expected a JSON object, got {type(record).__name__}; {_RECORD_FIX}"
            raise ConfigError(msg)
        question = record.get("question")
        if not isinstance(question, str):
            problem = (
                'no "question"'
                if question is None
                else f'"question" must be a string, not {type(question).__name__}'
            )
            raise ConfigError(f"{problem}; {_RECORD_FIX}")
        if "answer" in record and "answers" in record:
            msg = 'give "answer" (one string) or "answers" (a list), not both'
            raise ConfigError(msg)
        answers: Any = record.get("answers", [])
        if "answer" in record:
            answers = [record["answer"]]
        if isinstance(answers, str) or not isinstance(answers, list):
            msg = '"answers" must be a list of strings, e.g. ["3776 m", "3,776メートル"]'
            raise ConfigError(msg)
        for answer in answers:
            if not isinstance(answer, str):
                msg = (
                    f"answer {answer!r} is a {type(answer).__name__}; write it as a string, "
                    f'e.g. "answer": "{answer}"'
                )
                raise ConfigError(msg)
        source = record.get("source")
        if source is not None and not isinstance(source, str):
            msg = f'"source" must be a string (a source name such as "fuji.md"), not {source!r}'
            raise ConfigError(msg)
        offsets: list[int | None] = []
        for key in ("start", "end"):
            value = record.get(key)
            if value is not None and (
                not isinstance(value, int) or isinstance(value, bool) or value < 0
            ):
                msg = f'"{key}" must be a character offset (a whole number >= 0), not {value!r}'
                raise ConfigError(msg)
            offsets.append(value)
        ident = record.get("id")
        return cls(
            question=question,
            answers=tuple(answers),
            source=source,
            start=offsets[0],
            end=offsets[1],
            id=None if ident is None else str(ident),
        )


def _problem_of(q: LabelledQuestion) -> str | None:
    """What is wrong with a labelled question, or None."""
    if not isinstance(q.question, str) or not q.question.strip():
        return '"question" is empty; write the question as a user would ask it'
    for answer in q.answers:
        if not isinstance(answer, str) or not normalize_for_matching(answer):
            # An empty answer occurs in every chunk and would make every question a hit.
            return f"answer {answer!r} is empty (or only whitespace)"
    if q.source is not None and not q.source:
        return '"source" is empty'
    if not q.answers and q.source is None:
        return f'neither "answer" nor "source" is given; {_RECORD_FIX}'
    if (q.start is None) != (q.end is None):
        return 'give both "start" and "end" (character offsets into the source text), or neither'
    if q.start is not None and q.source is None:
        return '"start"/"end" need a "source" they are offsets into'
    if q.start is not None and q.end is not None and q.start >= q.end:
        what = "after" if q.start > q.end else "equal to"
        return (
            f'"start" ({q.start}) is {what} "end" ({q.end}); the span is [start, end), '
            "end exclusive, so end must be greater"
        )
    return None


def load_questions(path: str | os.PathLike[str]) -> list[LabelledQuestion]:
    """Read labelled questions from a JSONL file (one object per line) or a JSON list.

    The file must be UTF-8 (a BOM is allowed). A file whose first character is ``[`` is read
    as one JSON list, whatever its extension; otherwise as JSON Lines, blank lines skipped.

    Raises:
        ConfigError: The file is missing or unreadable, not UTF-8, not valid JSON, empty, or
            holds a bad record; the message names the file and line and the fix.
    """
    where = str(path)
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        msg = f"{where}: no such file; write one labelled question per line: {_RECORD_FIX}"
        raise ConfigError(msg) from None
    except OSError as err:
        msg = f"{where}: cannot be read ({err.strerror or err})"
        raise ConfigError(msg) from None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = data.count(b"\n", 0, err.start) + 1
        msg = (
            f"{where}, line {line}: not UTF-8 (byte 0x{data[err.start]:02x}); save the file "
            "as UTF-8, e.g. iconv -f SHIFT_JIS -t UTF-8 old.jsonl > new.jsonl"
        )
        raise ConfigError(msg) from None
    questions: list[LabelledQuestion] = []
    for line, record in _records(text, where):
        try:
            questions.append(LabelledQuestion.from_mapping(record))
        except ConfigError as err:
            raise ConfigError(f"{where}, line {line}: {err}") from None
    if not questions:
        msg = f"{where}: no labelled questions in the file; {_RECORD_FIX}"
        raise ConfigError(msg)
    return questions


def _records(text: str, where: str) -> Iterator[tuple[int, Any]]:
    """``(line, value)`` of each record of a JSONL text or a JSON list."""
    decoder = json.JSONDecoder()
    stripped = text.lstrip()
    if not stripped.startswith("["):
        # Only "\n" ends a line: str.splitlines() would also split at U+2028 and other
        # characters that JSON strings may hold unescaped, and miscount lines.
        for number, line in enumerate(text.split("\n"), start=1):
            if not line.strip():
                continue
            try:
                value = json.loads(line)
            except json.JSONDecodeError as err:
                msg = (
                    f"{where}, line {number}: not valid JSON ({err.msg} at column {err.colno}); "
                    "write one JSON object per line (JSON Lines)"
                )
                raise ConfigError(msg) from None
            yield number, value
        return
    # A JSON list, read item by item so each record's line is known.
    at = _skip_space(text, len(text) - len(stripped) + 1)
    if at < len(text) and text[at] == "]":
        at = _skip_space(text, at + 1)
    else:
        while True:
            try:
                value, end = decoder.raw_decode(text, at)
            except json.JSONDecodeError as err:
                _bad_json(where, text, err.pos, err.msg)
            yield text.count("\n", 0, at) + 1, value
            at = _skip_space(text, end)
            if at < len(text) and text[at] == ",":
                at = _skip_space(text, at + 1)
            elif at < len(text) and text[at] == "]":
                at = _skip_space(text, at + 1)
                break
            else:
                _bad_json(where, text, at, "expected ',' or ']' after a record")
    if at != len(text):
        _bad_json(where, text, at, "extra data after the list")


def _skip_space(text: str, at: int) -> int:
    while at < len(text) and text[at] in " \t\r\n":
        at += 1
    return at


def _bad_json(where: str, text: str, pos: int, what: str) -> NoReturn:
    line = text.count("\n", 0, pos) + 1
    msg = f"{where}, line {line}: not valid JSON ({what}); fix the JSON list, or use JSON Lines"
    raise ConfigError(msg)


def _as_questions(
    questions: str | os.PathLike[str] | Iterable[LabelledQuestion | Mapping[str, Any]],
) -> list[LabelledQuestion]:
    if isinstance(questions, (str, os.PathLike)):
        return load_questions(questions)
    if isinstance(questions, Mapping):
        msg = "pass a list of labelled questions (or a file path), not a single mapping"
        raise ConfigError(msg)
    out: list[LabelledQuestion] = []
    for n, item in enumerate(questions):
        if isinstance(item, LabelledQuestion):
            out.append(item)
            continue
        try:
            out.append(LabelledQuestion.from_mapping(item))
        except ConfigError as err:
            raise ConfigError(f"questions[{n}]: {err}") from None
    if not out:
        msg = f"no labelled questions to evaluate; {_RECORD_FIX}"
        raise ConfigError(msg)
    return out


# ---------------------------------------------------------------------- relevance


@dataclass(frozen=True)
class _Label:
    """One thing a question needs found: an answer, a span, or an answer within a source."""

    answer: str | None  # normalised
    source: str | None
    start: int | None
    end: int | None
    text: str

    def matches(self, normalized_text: str, metadata: Mapping[str, Any]) -> bool:
        if self.source is not None:
            if metadata.get(SOURCE) != self.source:
                return False
            if self.start is not None and self.end is not None:
                first, last = metadata.get(START), metadata.get(END)
                if not isinstance(first, int) or not isinstance(last, int):
                    return False  # a chunk without offsets cannot be placed in the source
                if not (first < self.end and self.start < last):
                    return False
        return self.answer is None or self.answer in normalized_text


def _labels_of(q: LabelledQuestion) -> tuple[_Label, ...]:
    where = ""
    if q.source is not None:
        where = q.source if q.start is None else f"{q.source}[{q.start}:{q.end}]"
    if not q.answers:
        return (_Label(None, q.source, q.start, q.end, where),)
    return tuple(
        _Label(
            normalize_for_matching(answer),
            q.source,
            q.start,
            q.end,
            f"{answer} in {where}" if where else answer,
        )
        for answer in q.answers
    )


def _label_ranks(labels: Sequence[_Label], documents: Sequence[Document]) -> list[int | None]:
    """The 1-based rank of the first document matching each label (None: not retrieved)."""
    ranks: list[int | None] = [None] * len(labels)
    for position, doc in enumerate(documents, start=1):
        text = normalize_for_matching(doc.page_content)
        for i, label in enumerate(labels):
            if ranks[i] is None and label.matches(text, doc.metadata):
                ranks[i] = position
        if all(rank is not None for rank in ranks):
            break
    return ranks


def question_metrics(label_ranks: Sequence[int | None], *, k: Sequence[int]) -> dict[str, float]:
    """The metrics of one question from the rank at which each of its labels was first found.

    Args:
        label_ranks: For each label, the 1-based position of the first retrieved chunk that
            matches it, or None.
        k: The cut-offs for ``hit@k`` and ``recall@k``.

    Returns:
        ``hit@k`` for each k, ``recall@k`` for each k, ``mrr@10``, ``ndcg@10``, in that order.

    >>> question_metrics([1, None], k=[1])
    {'hit@1': 1.0, 'recall@1': 0.5, 'mrr@10': 1.0, 'ndcg@10': 0.6131471927654584}
    """
    found = [rank for rank in label_ranks if rank is not None]
    first = min(found, default=None)
    out: dict[str, float] = {}
    for cut in k:
        out[f"hit@{cut}"] = 1.0 if first is not None and first <= cut else 0.0
    for cut in k:
        out[f"recall@{cut}"] = sum(rank <= cut for rank in found) / len(label_ranks)
    out[f"mrr@{MRR_DEPTH}"] = 1.0 / first if first is not None and first <= MRR_DEPTH else 0.0
    # A position gains 1 when it is the first to find some label (see the module docstring).
    gained = {rank for rank in found if rank <= MRR_DEPTH}
    dcg = sum(1.0 / math.log2(rank + 1) for rank in gained)
    ideal = sum(1.0 / math.log2(i + 1) for i in range(1, min(len(label_ranks), MRR_DEPTH) + 1))
    out[f"ndcg@{MRR_DEPTH}"] = dcg / ideal
    return out


# ---------------------------------------------------------------------- results


@dataclass(frozen=True)
class QuestionResult:
    """How one labelled question fared.

    Attributes:
        question: The labelled question.
        rank: 1-based position of the first relevant chunk among those retrieved, or None.
        labels: Each label as text: the answer, ``source[start:end]``, or ``answer in source``.
        label_ranks: For each label, the position of the first chunk that matched it, or None.
        retrieved: ``source:start-end`` of each retrieved chunk, best first.
    """

    question: LabelledQuestion
    rank: int | None
    labels: tuple[str, ...]
    label_ranks: tuple[int | None, ...]
    retrieved: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        """A JSON-friendly dict."""
        return {
            "id": self.question.id,
            "question": self.question.question,
            "rank": self.rank,
            "labels": list(self.labels),
            "label_ranks": list(self.label_ranks),
            "retrieved": list(self.retrieved),
        }


def _cite(doc: Document) -> str:
    meta = doc.metadata
    return f"{meta.get(SOURCE, '?')}:{meta.get(START, '?')}-{meta.get(END, '?')}"


@dataclass(frozen=True)
class EvaluationResult:
    """Retrieval metrics of one index (and search mode) on a set of labelled questions.

    ``str(result)`` is an aligned table, notebooks show it as HTML, and
    :meth:`compare` puts several results (say dense, lexical and hybrid) side by side.

    Attributes:
        metrics: ``hit@k`` for each k, ``recall@k`` for each k, ``mrr@10`` and ``ndcg@10``,
            in that order, each the mean over the questions (0..1).
        count: Number of questions.
        mode: The search mode evaluated (None: the index's default).
        k: The cut-offs of ``hit@k`` and ``recall@k``.
        depth: Chunks retrieved per question (``max(k..., 10)``).
        questions: One :class:`QuestionResult` per question, in input order.
        seconds: Wall time of the evaluation.
    """

    metrics: dict[str, float]
    count: int
    mode: str | None
    k: tuple[int, ...]
    depth: int
    questions: tuple[QuestionResult, ...] = field(repr=False)
    seconds: float = 0.0

    def misses(self, k: int | None = None) -> list[QuestionResult]:
        """Questions with no relevant chunk in the top ``k`` (default: all retrieved)."""
        cut = self.depth if k is None else k
        return [q for q in self.questions if q.rank is None or q.rank > cut]

    def to_dict(self, *, details: bool = False) -> dict[str, Any]:
        """A JSON-friendly dict; ``details=True`` adds each question's ranks and labels."""
        out: dict[str, Any] = {
            "count": self.count,
            "mode": self.mode,
            "k": list(self.k),
            "depth": self.depth,
            "seconds": round(self.seconds, 3),
            "metrics": dict(self.metrics),
        }
        if details:
            out["questions"] = [q.to_dict() for q in self.questions]
        return out

    @property
    def name(self) -> str:
        """The column title of this result in a table: its mode, or ``"default"``."""
        return self.mode or "default"

    def __str__(self) -> str:
        missed = len(self.misses())
        head = (
            f"{self.count} questions, mode {self.name}, top {self.depth} retrieved, "
            f"{self.seconds:.1f} s"
        )
        tail = (
            f"{missed} without a relevant chunk in the top {self.depth}: result.misses()"
            if missed
            else f"every question has a relevant chunk in the top {self.depth}"
        )
        table = EvaluationTable.of({"value": self}, counts=False)
        return f"{head}\n{table}\n{tail}"

    def _repr_html_(self) -> str:
        missed = len(self.misses())
        caption = (
            f"EvaluationResult: {self.count} questions, mode {self.name}, "
            f"{missed} without a relevant chunk in the top {self.depth}"
        )
        return EvaluationTable.of({"value": self}, counts=False).html(caption)

    @staticmethod
    def compare(
        results: Sequence[EvaluationResult] | Mapping[str, EvaluationResult],
    ) -> EvaluationTable:
        """Several results side by side, one column each (best value per row marked in HTML).

        Args:
            results: The results; a mapping names the columns, a list takes each result's
                :attr:`name` (its mode).

        Returns:
            An :class:`EvaluationTable`: ``print`` it, or let a notebook show it.
        """
        if isinstance(results, Mapping):
            named = dict(results)
        else:
            named = {}
            for n, result in enumerate(results, start=1):
                title = result.name if result.name not in named else f"{result.name} #{n}"
                named[title] = result
        if not named:
            msg = "compare() needs at least one EvaluationResult"
            raise ConfigError(msg)
        return EvaluationTable.of(named)


@dataclass(frozen=True)
class EvaluationTable:
    """Metrics of one or more results as rows, one column per result.

    Attributes:
        columns: The column titles.
        rows: ``(metric, values)``; a value is None where a result lacks that metric (other k).
    """

    columns: tuple[str, ...]
    rows: tuple[tuple[str, tuple[float | None, ...]], ...]

    @classmethod
    def of(cls, results: Mapping[str, EvaluationResult], *, counts: bool = True) -> EvaluationTable:
        """The table of ``results`` (column title -> result)."""
        names = sorted({name for r in results.values() for name in r.metrics}, key=_metric_order)
        rows: list[tuple[str, tuple[float | None, ...]]] = []
        if counts:
            rows.append(("questions", tuple(float(r.count) for r in results.values())))
        rows.extend((name, tuple(r.metrics.get(name) for r in results.values())) for name in names)
        return cls(tuple(results), tuple(rows))

    def to_dict(self) -> dict[str, dict[str, float | None]]:
        """``{column: {metric: value}}``."""
        return {
            column: {name: values[i] for name, values in self.rows}
            for i, column in enumerate(self.columns)
        }

    @staticmethod
    def _cell(name: str, value: float | None) -> str:
        if value is None:
            return "-"
        return str(int(value)) if name == "questions" else f"{value:.3f}"

    def __str__(self) -> str:
        cells = [["metric", *self.columns]]
        cells += [[name, *(self._cell(name, v) for v in values)] for name, values in self.rows]
        widths = [max(len(row[i]) for row in cells) for i in range(len(cells[0]))]
        lines = [
            "  ".join(
                cell.ljust(widths[0]) if i == 0 else cell.rjust(widths[i])
                for i, cell in enumerate(row)
            )
            for row in cells
        ]
        return "\n".join(lines)

    def html(self, caption: str = "") -> str:
        """The table as HTML; with several columns the best value of each row is bold."""
        rows = []
        for name, values in self.rows:
            present = [v for v in values if v is not None]
            best = max(present) if len(self.columns) > 1 and name != "questions" else None
            cells = [self._cell(name, v) for v in values]
            rows.append(
                [
                    name,
                    *(
                        Html(f"<b>{c}</b>") if best is not None and v == best else c
                        for c, v in zip(cells, values, strict=True)
                    ),
                ]
            )
        align = "l" + "r" * len(self.columns)
        return display.table(
            rows, head=("metric", *self.columns), caption=caption, align=align, row_head=True
        )

    def _repr_html_(self) -> str:
        return self.html()


def _metric_order(name: str) -> tuple[int, int]:
    """hit@k by k, then recall@k by k, then the rest (mrr, ndcg) in their usual order."""
    kind, _, cut = name.partition("@")
    order = ("hit", "recall", "mrr", "ndcg")
    return (order.index(kind) if kind in order else len(order), int(cut) if cut.isdigit() else 0)


# ---------------------------------------------------------------------- evaluating


def _check_k(k: int | Iterable[int]) -> tuple[int, ...]:
    values = [k] if isinstance(k, int) else list(k)
    if not values or any(not isinstance(v, int) or isinstance(v, bool) or v < 1 for v in values):
        msg = f"k must be whole numbers of at least 1, e.g. k=(1, 5, 10); got {k!r}"
        raise ConfigError(msg)
    return tuple(sorted(set(values)))


def evaluate(
    retrieve: Retrieve,
    questions: str | os.PathLike[str] | Iterable[LabelledQuestion | Mapping[str, Any]],
    *,
    k: int | Iterable[int] = (1, 5, 10),
    mode: str | None = None,
    batch_size: int = 64,
    progress: bool | None = None,
    known_sources: Callable[[Sequence[str]], Collection[str]] | None = None,
) -> EvaluationResult:
    """Measure how well ``retrieve`` finds what labelled questions need.

    Args:
        retrieve: ``retrieve(questions, k)`` returns the top ``k`` documents of each question
            of a batch, best first (documents carry ``source``, ``start_index`` and
            ``end_index`` in their metadata, as search results do).
        questions: A JSONL (or JSON list) file of labelled questions, or an iterable of
            :class:`LabelledQuestion` or of mappings in the file's format.
        k: Cut-offs for ``hit@k`` and ``recall@k``; ``max(k..., 10)`` chunks are retrieved.
        mode: The search mode ``retrieve`` uses, recorded in the result.
        batch_size: Questions per ``retrieve`` call.
        progress: Show a progress bar; by default for 200 questions or more.
        known_sources: Returns which of the given sources exist; labels naming any other
            source are refused, since they could never be found.

    Returns:
        An :class:`EvaluationResult`.

    Raises:
        ConfigError: A bad argument or labelled question (naming its file and line), a
            source the index does not hold, or ``retrieve`` answered the wrong number of lists.
    """
    cuts = _check_k(k)
    if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
        msg = f"batch_size must be a whole number of at least 1, got {batch_size!r}"
        raise ConfigError(msg)
    labelled = _as_questions(questions)
    if known_sources is not None:
        _check_sources(labelled, known_sources)
    depth = max(*cuts, MRR_DEPTH)
    started = time.perf_counter()
    show = progress if progress is not None else len(labelled) >= AUTO_PROGRESS_QUESTIONS
    results: list[QuestionResult] = []
    totals: dict[str, float] = {}
    with progress_bar(len(labelled), show, unit="question", desc="evaluate") as bar:
        for first in range(0, len(labelled), batch_size):
            batch = labelled[first : first + batch_size]
            answers = retrieve([q.question for q in batch], depth)
            if len(answers) != len(batch):
                msg = f"retrieve() returned {len(answers)} result lists for {len(batch)} questions"
                raise ConfigError(msg)
            for q, documents in zip(batch, answers, strict=True):
                documents = list(documents)[:depth]
                labels = _labels_of(q)
                ranks = _label_ranks(labels, documents)
                for name, value in question_metrics(ranks, k=cuts).items():
                    totals[name] = totals.get(name, 0.0) + value
                results.append(
                    QuestionResult(
                        question=q,
                        rank=min((r for r in ranks if r is not None), default=None),
                        labels=tuple(label.text for label in labels),
                        label_ranks=tuple(ranks),
                        retrieved=tuple(_cite(doc) for doc in documents),
                    )
                )
            bar.update(len(batch))
    return EvaluationResult(
        metrics={name: total / len(results) for name, total in totals.items()},
        count=len(results),
        mode=mode,
        k=cuts,
        depth=depth,
        questions=tuple(results),
        seconds=time.perf_counter() - started,
    )


def _check_sources(
    questions: Sequence[LabelledQuestion],
    known_sources: Callable[[Sequence[str]], Collection[str]],
) -> None:
    named = sorted({q.source for q in questions if q.source is not None})
    if not named:
        return
    known = set(known_sources(named))
    unknown = [s for s in named if s not in known]
    if unknown:
        shown = ", ".join(repr(s) for s in unknown[:5]) + (" ..." if len(unknown) > 5 else "")
        msg = (
            f"{len(unknown)} labelled source(s) are not in the index: {shown}. Write "
            'each "source" exactly as the index names it (the "source" of search results; '
            "for files, the path relative to the folder added), or index those files first"
        )
        raise ConfigError(msg)
