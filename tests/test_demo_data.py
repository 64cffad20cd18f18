"""The bundled demo documents and queries: encoding, sizes, coverage, and answerable queries."""

from __future__ import annotations

import dataclasses
import json
import re
from collections import Counter
from importlib import resources
from pathlib import Path

import pytest

from ollama_rag.demo import DATA_DIR, SampleQuery, sample_queries

# Characters per document (len() of the decoded text), per language.
SIZE_RANGES = {"ja": (1200, 2000), "zh": (1200, 2000), "en": (5000, 7000), "ko": (600, 1000)}
DOCS_PER_LANGUAGE = {"ja": 3, "zh": 2, "en": 2, "ko": 1}
QUERY_KEYS = {"query", "language", "expected_source", "answer_hint"}

KANA = re.compile(r"[\u3040-\u30ff]")
HAN = re.compile(r"[\u4e00-\u9fff]")
HANGUL = re.compile(r"[\uac00-\ud7a3]")

DOCS = sorted(DATA_DIR.glob("*.md"))


def language_of(path: Path) -> str:
    return path.name.split("_", 1)[0]


def text_of(name: str) -> str:
    return (DATA_DIR / name).read_text(encoding="utf-8")


def paragraphs(text: str) -> list[str]:
    """Body paragraphs: blank-line separated blocks that are not headings or lists."""
    blocks = [b.strip() for b in text.split("\n\n")]
    return [b for b in blocks if b and not b.startswith(("#", "- "))]


def test_the_expected_documents_are_there() -> None:
    assert Counter(language_of(p) for p in DOCS) == DOCS_PER_LANGUAGE
    assert {p.name for p in DATA_DIR.iterdir()} == {p.name for p in DOCS} | {"queries.json"}


def test_data_is_reachable_as_package_resources() -> None:
    # What an installed wheel offers: the files must live inside the package, not beside it.
    data = resources.files("ollama_rag.demo") / "data"
    assert sorted(e.name for e in data.iterdir() if e.name.endswith(".md")) == [
        p.name for p in DOCS
    ]
    assert (data / "queries.json").is_file()


@pytest.mark.parametrize("path", DOCS, ids=lambda p: p.name)
def test_document_is_clean_utf8_markdown(path: Path) -> None:
    raw = path.read_bytes()
    text = raw.decode("utf-8")  # strict: any invalid byte fails here
    assert not raw.startswith(b"\xef\xbb\xbf"), "no BOM"
    assert "\r" not in text, "LF line endings only"
    assert text.endswith("\n")
    assert "\ufffd" not in text
    assert text.startswith("# "), "starts with a title heading"
    assert len(re.findall(r"^## ", text, flags=re.MULTILINE)) >= 3
    assert len(paragraphs(text)) >= 4


@pytest.mark.parametrize("path", DOCS, ids=lambda p: p.name)
def test_document_size_is_in_range(path: Path) -> None:
    low, high = SIZE_RANGES[language_of(path)]
    assert low <= len(path.read_text(encoding="utf-8")) <= high


@pytest.mark.parametrize("path", DOCS, ids=lambda p: p.name)
def test_document_is_in_its_language(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    language = language_of(path)
    if language == "ja":
        assert len(KANA.findall(text)) > 300
        assert "「" in text
        assert "」" in text
        assert re.search(r"\d", text), "numbers mixed in"
        assert re.search(r"[A-Za-z]{3,}", text), "a few English terms mixed in"
        # Every body paragraph ends a sentence with 。
        assert all(p.endswith("。") for p in paragraphs(text))
    elif language == "zh":
        assert len(HAN.findall(text)) > 800
        assert not KANA.search(text), "simplified Chinese, no Japanese kana"
        assert re.search(r"\d", text)
        assert all(p.endswith("。") for p in paragraphs(text))
    elif language == "ko":
        assert len(HANGUL.findall(text)) > 300
    else:
        assert language == "en"
        assert not HAN.search(text)
        assert not KANA.search(text)
        assert not HANGUL.search(text)
        assert all(p.endswith((".", ":")) for p in paragraphs(text))


def test_queries_json_has_exactly_the_documented_fields() -> None:
    raw = json.loads((DATA_DIR / "queries.json").read_text(encoding="utf-8"))
    assert isinstance(raw, list)
    for item in raw:
        assert set(item) == QUERY_KEYS
        assert all(isinstance(item[key], str) and item[key].strip() for key in QUERY_KEYS)


def test_sample_queries_loads_frozen_records() -> None:
    queries = sample_queries()
    assert queries
    assert all(isinstance(q, SampleQuery) for q in queries)
    with pytest.raises(dataclasses.FrozenInstanceError):
        queries[0].query = "changed"  # type: ignore[misc]
    assert len({q.query for q in queries}) == len(queries), "no duplicate questions"


@pytest.mark.parametrize("query", sample_queries(), ids=lambda q: q.expected_source)
def test_query_is_answered_by_its_document_only(query: SampleQuery) -> None:
    assert query.language in SIZE_RANGES
    assert (DATA_DIR / query.expected_source).is_file()
    assert query.answer_hint in text_of(query.expected_source)
    # The topics are distinct, so the hint must not point at a second document.
    others = [p.name for p in DOCS if p.name != query.expected_source]
    assert not [name for name in others if query.answer_hint in text_of(name)]
    # Phrased as a question, not copied from the document.
    assert query.query.rstrip("？?") not in text_of(query.expected_source)


def test_queries_cover_every_language_and_cross_lingual_pairs() -> None:
    queries = sample_queries()
    same = Counter(q.language for q in queries if q.expected_source.startswith(q.language + "_"))
    assert same["ja"] >= 3
    assert same["zh"] >= 3
    assert same["en"] >= 3
    assert same["ko"] >= 1
    cross = {
        (q.language, q.expected_source.split("_", 1)[0])
        for q in queries
        if not q.expected_source.startswith(q.language + "_")
    }
    assert {("en", "ja"), ("ja", "zh")} <= cross
    assert {q.expected_source for q in queries} == {p.name for p in DOCS}, "every document is asked"
