"""How :class:`ExtractiveChatModel` answers: it quotes the context that best matches the question.

Pure text functions, no server state. The rules (docs/testing.md repeats them):

- **The question** is the last user message; when it has several lines, the last line with a
  question label (``Question:``, ``Q:``, ``質問：``, ``问题：``, ``問題：``, ``질문:``), else the
  last line ending in ``?`` or ``？``, else the last non-empty line. Its label is dropped.
- **The context** is every other line of the system, user and tool messages (assistant turns
  are the model's own words, not evidence). It is cut into passages at blank lines and at lines
  that begin with a citation marker such as ``[1]`` or ``[fuji.md]``; when any passage begins
  with a marker only those passages count, so instructions around the context are never quoted.
- **Sentences** end at ``。！？!?``, at a ``.`` followed by a space, a marker or the end, and at
  line ends; a marker right after a sentence belongs to it.
- **Score**: the share of the question's character bigrams (inside each run of letters, digits
  or CJK characters, after NFKC and casefolding, markers left out) that the sentence also has,
  plus half the share found only elsewhere in its passage.
- **The answer** quotes the best sentence and any other within 0.1 of it (at most
  ``max_sentences``, in context order), followed by the markers that came with them (once for
  a run of sentences citing the same); a sentence several passages repeat is quoted once, with
  all their markers. No sentence reaching ``min_score`` gives the fixed :data:`NO_ANSWER`.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = ["NO_ANSWER", "answer", "as_json"]

NO_ANSWER = "I don't know: the context does not say."

_MARKER = r"\[[^\[\]\n]{1,80}\]"
_MARKER_RE = re.compile(_MARKER)
_HEADER_RE = re.compile(rf"^\s*((?:{_MARKER}\s*)+)")
# A sentence ends at CJK or ASCII terminators (a "." only before a space, a marker or the end, so
# "3.14" and "fuji.md" stay whole), taking any markers that directly follow it.
_END_RE = re.compile(rf"(?:[。！？!?]+|\.(?=\s|\[|$))(?:\s*{_MARKER})*")
_LABEL_RE = re.compile(r"^\s*(?:question|q|質問|问题|問題|질문)\s*[:：]\s*", re.IGNORECASE)
_RUN_RE = re.compile(r"[^\W_]+")
# A sentence is read in its passage: bigrams found only in the sentences around it count this
# much ("標高は3776メートルです。" answers "富士山の標高は？" when its passage names 富士山).
_NEARBY = 0.5
# Within this much of the best score a second sentence is quoted too (a two-sentence answer).
_TIE = 0.1


@dataclass
class _Sentence:
    text: str
    passage: set[str]  # the features of the whole passage it stands in
    markers: list[str] = field(default_factory=list)
    score: float = 0.0


def _features(text: str) -> set[str]:
    """Character bigrams inside letter/digit/CJK runs (a one-character run counts whole)."""
    norm = unicodedata.normalize("NFKC", _MARKER_RE.sub(" ", text)).casefold()
    grams: set[str] = set()
    for run in _RUN_RE.findall(norm):
        if len(run) == 1:
            grams.add(run)
        grams.update(run[i : i + 2] for i in range(len(run) - 1))
    return grams


def _question(text: str) -> tuple[str, list[str]]:
    """The question line of the last user message, label dropped, and the other lines."""
    lines = text.splitlines()
    filled = [i for i, line in enumerate(lines) if line.strip()]
    if not filled:
        return "", []
    labelled = [i for i in filled if _LABEL_RE.match(lines[i])]
    asked = [i for i in filled if lines[i].rstrip().endswith(("?", "？"))]
    pick = (labelled or asked or filled)[-1]
    return _LABEL_RE.sub("", lines[pick]).strip(), lines[:pick] + lines[pick + 1 :]


def _passages(texts: Sequence[str]) -> list[tuple[list[str], str]]:
    """``(header markers, text)`` of every passage; marked ones only, if there are any."""
    passages: list[tuple[list[str], list[str]]] = []
    for text in texts:
        current: tuple[list[str], list[str]] | None = None
        for line in text.splitlines():
            header = _HEADER_RE.match(line)
            if not line.strip():
                current = None
                continue
            if header or current is None:
                markers = _MARKER_RE.findall(header.group(1)) if header else []
                current = (markers, [])
                passages.append(current)
                line = line[header.end() :] if header else line
            current[1].append(line)
    found = [(markers, "\n".join(lines)) for markers, lines in passages]
    marked = [p for p in found if p[0]]
    return marked or found


def _sentences(markers: list[str], text: str) -> list[_Sentence]:
    passage = _features(text)
    out: list[_Sentence] = []
    for line in text.splitlines():
        pieces, start = [], 0
        for end in _END_RE.finditer(line):
            pieces.append(line[start : end.end()])
            start = end.end()
        pieces.append(line[start:])
        for piece in pieces:
            piece = piece.strip()
            if _features(piece):
                out.append(_Sentence(piece, passage, [m for m in markers if m not in piece]))
    return out


def _join(parts: Sequence[str]) -> str:
    """Join with a space after ASCII text (``. [1]``), without one after CJK text (``。[1]``)."""
    text = ""
    for part in parts:
        if text and text[-1].isascii():
            text += " "
        text += part
    return text


def answer(
    messages: Sequence[Mapping[str, Any]],
    *,
    min_score: float,
    max_sentences: int,
    no_answer: str = NO_ANSWER,
) -> str:
    """The reply to a conversation: quoted context sentences with their markers, or ``no_answer``.

    Args:
        messages: Ollama chat messages (``role``, ``content``), oldest first.
        min_score: The least share of the question's bigrams a quoted sentence must have.
        max_sentences: The most sentences quoted.
        no_answer: The reply when no sentence reaches ``min_score``.
    """
    users = [i for i, m in enumerate(messages) if m.get("role") == "user"]
    question, rest = _question(str(messages[users[-1]].get("content", ""))) if users else ("", [])
    texts = [
        str(m.get("content", ""))
        for i, m in enumerate(messages)
        if m.get("role") in ("system", "user", "tool") and (not users or i != users[-1])
    ]
    texts.append("\n".join(rest))
    wanted = _features(question)
    if not wanted:
        return no_answer
    unique: dict[str, _Sentence] = {}
    for markers, text in _passages(texts):
        for sentence in _sentences(markers, text):
            # A sentence repeated by overlapping chunks is quoted once, with every marker.
            seen = unique.setdefault(sentence.text, sentence)
            seen.markers.extend(m for m in sentence.markers if m not in seen.markers)
    for sentence in unique.values():
        own = wanted & _features(sentence.text)
        nearby = (wanted & sentence.passage) - own
        sentence.score = (len(own) + _NEARBY * len(nearby)) / len(wanted)
    ranked = sorted(unique.values(), key=lambda s: -s.score)
    if not ranked or ranked[0].score < max(min_score, 1e-9):
        return no_answer
    chosen = {id(s) for s in ranked[:max_sentences] if s.score >= ranked[0].score - _TIE}
    groups: list[tuple[list[str], list[str]]] = []  # (texts, markers): one citation per run
    for sentence in unique.values():
        if id(sentence) not in chosen:
            continue
        if groups and groups[-1][1] == sentence.markers:
            groups[-1][0].append(sentence.text)
        else:
            groups.append(([sentence.text], sentence.markers))
    return _join([_join([*texts, *markers]) for texts, markers in groups])


def as_json(text: str, schema: Any) -> str:
    """``text`` as the JSON object a ``format`` asks for.

    ``"json"`` gives ``{"answer": text}``; a JSON schema with properties puts ``text`` under its
    first string property (``answer`` if it has none).
    """
    key = "answer"
    properties = schema.get("properties") if isinstance(schema, dict) else None
    if isinstance(properties, dict):
        strings = [
            k for k, v in properties.items() if isinstance(v, dict) and v.get("type") == "string"
        ]
        key = next(iter(strings), key)
    return json.dumps({key: text}, ensure_ascii=False)
