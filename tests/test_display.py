"""What notebooks show: every ``_repr_html_`` is an escaped table built by ``ollama_rag.display``.

Search results, the index, its manifest and the reports hold user text (chunks, file names,
error details); a ``<script>`` in a document must show as text in a notebook, never run.
"""

from __future__ import annotations

import asyncio
import doctest
import pickle
import re
from pathlib import Path

import pytest
from langchain_core.documents import Document

import ollama_rag
from ollama_rag import IndexManifest, IngestReport, RagIndex, SearchResults
from ollama_rag import display as display_module
from ollama_rag.display import SNIPPET_CHARS, Html, escape, snippet, table
from ollama_rag.testing import LocalOllama

PACKAGE = Path(ollama_rag.__file__).parent
SCRIPT = "<script>alert('x')</script>"
JA = "富士山は日本で一番高い山で、標高は3776メートルです。山梨県と静岡県にまたがっています。"


def cells(page: str) -> list[str]:
    """The text of every ``<td>`` of ``page``."""
    return re.findall(r"<td[^>]*>(.*?)</td>", page)


# ---------------------------------------------------------------- the helpers


def test_table_escapes_every_cell_but_html() -> None:
    page = table(
        [("a<b", Html("<b>bold</b>"), 1.5)], head=("x&y", "b", "n"), caption="<c>", align="lrr"
    )
    assert page == (
        "<table><caption>&lt;c&gt;</caption>"
        "<thead><tr><th>x&amp;y</th><th>b</th><th>n</th></tr></thead>"
        "<tbody><tr><td style='text-align:left'>a&lt;b</td>"
        "<td style='text-align:right'><b>bold</b></td>"
        "<td style='text-align:right'>1.5</td></tr></tbody></table>"
    )
    assert isinstance(page, Html)  # a table can be a cell of another


def test_row_titles_and_no_header() -> None:
    page = table([("model", "bge-m3")], row_head=True)
    assert page == (
        "<table><tbody><tr><th style='text-align:left'>model</th>"
        "<td style='text-align:left'>bge-m3</td></tr></tbody></table>"
    )


@pytest.mark.parametrize(
    ("text", "limit", "expected"),
    [
        ("short", 10, "short"),
        ("line one\n\n  line two", 50, "line one line two"),
        ("0123456789", 10, "0123456789"),
        ("0123456789A", 10, "012345678…"),
        ("富士山は日本で一番高い山", 5, "富士山は…"),
    ],
)
def test_snippet_is_one_line_and_capped(text: str, limit: int, expected: str) -> None:
    assert snippet(text, limit) == expected


def test_doctests() -> None:
    assert doctest.testmod(display_module).failed == 0


def test_escape_quotes_attributes_too() -> None:
    assert escape("'\"<>&") == "&#x27;&quot;&lt;&gt;&amp;"
    assert escape(Html("<i>")) == "<i>"
    assert escape(3) == "3"


def test_html_is_escaped_in_one_module() -> None:
    # Every repr builds its HTML with ollama_rag.display, so none can forget to escape.
    users = sorted(
        str(path.relative_to(PACKAGE))
        for path in PACKAGE.rglob("*.py")
        if path.name != "display.py" and re.search(r"^import html$", path.read_text(), re.M)
    )
    assert users == []


# ---------------------------------------------------------------- search results


def doc(text: str, **metadata: object) -> Document:
    base: dict[str, object] = {
        "source": "a.md",
        "start_index": 0,
        "end_index": len(text),
        "score": 0.5,
        "dense_score": 0.5,
        "lexical_score": None,
        "found_by": "dense",
    }
    return Document(page_content=text, metadata={**base, **metadata})


def test_search_results_are_a_plain_list() -> None:
    docs = [doc("a"), doc("b")]
    results = SearchResults(docs)
    assert isinstance(results, list)
    assert results == docs
    assert results[0] is docs[0]
    assert results[:1] == docs[:1]
    assert [d.page_content for d in results] == ["a", "b"]
    assert repr(results) == repr(docs)  # printing is unchanged; only notebooks see a table
    assert pickle.loads(pickle.dumps(results)) == docs


def test_search_results_table_has_a_row_per_hit() -> None:
    page = SearchResults(
        [
            doc("first", score=0.912345, dense_score=0.8, lexical_score=3.25, found_by="both"),
            doc("second", source="b.pdf", page=3, start_index=10, end_index=16),
        ]
    )._repr_html_()
    assert "<caption>SearchResults: 2 results</caption>" in page
    heads = re.findall(r"<th>(.*?)</th>", page)
    assert heads == ["rank", "score", "dense", "lexical", "found by", "source", "location", "text"]
    assert cells(page) == [
        *("1", "0.912", "0.800", "3.250", "both", "a.md", "0–5", "first"),
        *("2", "0.500", "0.500", "–", "dense", "b.pdf", "p. 3 · 10–16", "second"),
    ]


def test_search_results_with_scores_show_the_documents() -> None:
    page = SearchResults([(doc("pair"), 0.5)])._repr_html_()
    assert "<caption>SearchResults: 1 result</caption>" in page
    assert cells(page)[-1] == "pair"


def test_search_results_escape_text_and_names() -> None:
    page = SearchResults(
        [doc(f"before {SCRIPT} after", source="<img src=x onerror=alert(1)>.md", heading="<h1>")]
    )._repr_html_()
    assert "<script>" not in page
    assert "<img" not in page
    assert "<h1>" not in page
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in page
    assert "&lt;img src=x onerror=alert(1)&gt;.md" in page


def test_long_chunks_are_cut_in_the_table() -> None:
    page = SearchResults([doc("あ" * 5000)])._repr_html_()
    assert cells(page)[-1] == "あ" * (SNIPPET_CHARS - 1) + "…"
    assert len(page) < 2000


def test_no_results_is_an_empty_table() -> None:
    page = SearchResults([])._repr_html_()
    assert "<caption>SearchResults: 0 results</caption>" in page
    assert "<td" not in page


def test_index_searches_return_search_results(tmp_path: Path, ollama: LocalOllama) -> None:
    with RagIndex(tmp_path / "db", model="bge-m3", base_url=ollama.url) as index:
        index.add_texts([f"{JA}\n\n{SCRIPT} 富士山の危ないメモ。"], source="<evil>.md")
        hits = index.search("富士山", k=2)
        scored = index.search_with_scores("富士山", k=2, mode="dense")
        mmr = index.max_marginal_relevance_search("富士山", k=1)
        asynchronous = asyncio.run(index.searcher.asearch_with_scores("富士山", k=1))
        retrieved = index.as_retriever().invoke("富士山")
    for results in (hits, scored, mmr, asynchronous):
        assert type(results) is SearchResults
    assert isinstance(scored[0], tuple)
    assert isinstance(scored[0][0], Document)
    assert isinstance(hits[0], Document)
    assert type(retrieved) is list  # LangChain's contract: plain documents
    page = hits._repr_html_()
    assert "&lt;evil&gt;.md" in page
    assert "<script>" not in page
    assert "<evil>" not in page


# ---------------------------------------------------------------- index, manifest, reports


def manifest(**changes: object) -> IndexManifest:
    values: dict[str, object] = {
        "model": "bge-m3:latest",
        "digest": "sha256:" + "ab" * 32,
        "dimension": 1024,
        "context_length": 8192,
        "chunk_size": 1000,
        "chunk_overlap": 100,
    }
    return IndexManifest(**{**values, **changes})  # type: ignore[arg-type]


def test_manifest_is_a_table_of_what_built_the_index() -> None:
    page = manifest(query_prefix="<q>: ")._repr_html_()
    assert page.startswith("<table><caption>IndexManifest</caption>")
    rows = dict(re.findall(r"<th style='text-align:left'>(.*?)</th><td[^>]*>(.*?)</td>", page))
    assert rows["model"] == "bge-m3:latest (digest abababababab, 1024-d)"
    assert rows["chunking"] == "1000 chars, overlap 100"
    assert rows["prefixes"] == "document &#x27;&#x27;, query &#x27;&lt;q&gt;: &#x27;"
    assert rows["fusion"] == "(not calibrated)"


def test_index_table_adds_where_and_how_many(tmp_path: Path, ollama: LocalOllama) -> None:
    with RagIndex(tmp_path / "db", model="bge-m3", base_url=ollama.url) as index:
        index.add_texts([JA])
        page = index._repr_html_()
        rows = dict(re.findall(r"<th style='text-align:left'>(.*?)</th><td[^>]*>(.*?)</td>", page))
        recorded = [label for label, _ in index.manifest.rows()]
        assert list(rows) == ["path", "collection", "chunks", *recorded]
    assert page.startswith("<table><caption>RagIndex</caption>")
    assert rows["chunks"] == "1"
    assert rows["model"].startswith("bge-m3:latest")


def test_ingest_report_escapes_the_problems() -> None:
    report = IngestReport(files_added=1, failed=[("<a>.md", "bad <byte>")], skipped=[("b", "c")])
    page = report._repr_html_()
    assert page.startswith("<table><caption><b>IngestReport</b>: 1 added, ")
    assert cells(page) == ["failed", "&lt;a&gt;.md", "bad &lt;byte&gt;", "skipped", "b", "c"]
    assert "<thead>" not in IngestReport()._repr_html_()  # nothing to list, no header
