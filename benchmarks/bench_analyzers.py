"""The lexical analysers on JSQuAD: how well BM25 over their terms finds the gold passage, how fast.

For each analyser that is installed (``cjk-bigram`` always, with and without unigrams;
``sudachi`` in split modes C and A, ``janome``, ``jieba`` and ``kiwi`` when their extras are),
every passage of ``../shared/eval/jsquad/passages.jsonl`` beside the repository (its text, not
its title: what a chunk holds) is analysed and indexed by a tiny in-memory BM25 (k1 = 1.2,
b = 0.75, Lucene's idf ``ln(1 + (N - df + 0.5) / (df + 0.5))``, each distinct query term once,
ties broken by passage order). Every question is a query; hit@k is the share whose gold
``passage_id`` is among the top k. Throughput is the terms the analyser produced, and the
characters it read, per second over all passages (best of several runs, after a warm-up that
loads its dictionary); load is ``get_analyzer`` plus that first call. The Korean and Chinese
analysers see Japanese here, so their rows show mostly the fallback to the default rules: what
a mixed corpus gets from them.

Run: ``python -m benchmarks analyzers`` (about a minute with every extra installed) or, small
and quick (smoke test), ``OLLAMA_RAG_BENCH_QUICK=1 python -m benchmarks analyzers``.
"""

from __future__ import annotations

import json
import math
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks import _report as report
from ollama_rag.errors import MissingExtraError
from ollama_rag.lexical.analysis import (
    Analyzer,
    CJKBigramAnalyzer,
    JanomeAnalyzer,
    JiebaAnalyzer,
    KiwiAnalyzer,
    SudachiAnalyzer,
)

JSQUAD_DIR = Path(__file__).resolve().parents[1].parent / "shared" / "eval" / "jsquad"
K1 = 1.2
B = 0.75
KS = (1, 5, 10)


@dataclass(frozen=True)
class Settings:
    """Every parameter of one run (printed with the figures)."""

    quick: bool
    passages: int | None  # the first N passages and their questions; None: all
    timing_runs: int  # throughput is the best of these (the least disturbed by other work)


FULL = Settings(quick=False, passages=None, timing_runs=3)
QUICK = Settings(quick=True, passages=40, timing_runs=1)

# label -> how to make it; a MissingExtraError means "not installed", and the row is skipped.
VARIANTS: dict[str, Callable[[], Analyzer]] = {
    "cjk-bigram": CJKBigramAnalyzer,
    "cjk-bigram +unigrams": lambda: CJKBigramAnalyzer(unigrams=True),
    "sudachi (mode C)": lambda: SudachiAnalyzer(split_mode="C"),
    "sudachi (mode A)": lambda: SudachiAnalyzer(split_mode="A"),
    "janome": JanomeAnalyzer,
    "jieba": JiebaAnalyzer,
    "kiwi": KiwiAnalyzer,
}


@dataclass(frozen=True)
class Figures:
    label: str
    identity: str
    hits: dict[int, float]  # k -> hit@k
    terms: int
    terms_per_second: float
    chars_per_second: float
    load_seconds: float
    vocabulary: int


@dataclass
class Results:
    passages: int = 0
    queries: int = 0
    figures: dict[str, Figures] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)  # label -> the install line


def load(directory: Path, limit: int | None) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """(passage id, text) and (question, gold passage id), the first ``limit`` passages only."""
    with (directory / "passages.jsonl").open(encoding="utf-8") as lines:
        passages = [(row["id"], row["text"]) for row in map(json.loads, lines)]
    passages = passages[:limit]
    kept = {pid for pid, _ in passages}
    with (directory / "queries.jsonl").open(encoding="utf-8") as lines:
        queries = [(row["question"], row["passage_id"]) for row in map(json.loads, lines)]
    return passages, [(q, pid) for q, pid in queries if pid in kept]


class BM25:
    """Okapi BM25 over pre-analysed documents: enough to compare analysers, nothing more."""

    def __init__(self, documents: Sequence[list[str]], *, k1: float = K1, b: float = B) -> None:
        self.postings: dict[str, list[tuple[int, int]]] = {}
        self.lengths = [len(terms) for terms in documents]
        for doc, terms in enumerate(documents):
            for term, tf in Counter(terms).items():
                self.postings.setdefault(term, []).append((doc, tf))
        n = len(documents)
        average = sum(self.lengths) / n if n else 0.0
        self.idf = {
            term: math.log(1 + (n - len(p) + 0.5) / (len(p) + 0.5))
            for term, p in self.postings.items()
        }
        # The length part of the denominator, per document, computed once.
        self.norm = [k1 * (1 - b + b * length / (average or 1)) for length in self.lengths]
        self.k1 = k1

    def top(self, query: list[str], k: int) -> list[int]:
        scores: dict[int, float] = {}
        for term in dict.fromkeys(query):
            idf = self.idf.get(term)
            if idf is None:
                continue
            for doc, tf in self.postings[term]:
                scores[doc] = scores.get(doc, 0.0) + idf * tf * (self.k1 + 1) / (
                    tf + self.norm[doc]
                )
        return sorted(scores, key=lambda doc: (-scores[doc], doc))[:k]


def measure(
    label: str,
    analyzer: Analyzer,
    passages: list[tuple[str, str]],
    queries: list[tuple[str, str]],
    settings: Settings,
    load_seconds: float,
) -> Figures:
    texts = [text for _, text in passages]
    best = math.inf
    documents: list[list[str]] = []
    for _ in range(settings.timing_runs):
        began = time.perf_counter()
        documents = [analyzer.terms(text) for text in texts]
        best = min(best, time.perf_counter() - began)
    index = BM25(documents)
    position = {pid: n for n, (pid, _) in enumerate(passages)}
    found = Counter[int]()
    for question, gold in queries:
        top = index.top(analyzer.query_terms(question), max(KS))
        rank = top.index(position[gold]) if position[gold] in top else None
        for k in KS:
            found[k] += rank is not None and rank < k
    terms = sum(map(len, documents))
    return Figures(
        label=label,
        identity=analyzer.identity,
        hits={k: found[k] / len(queries) for k in KS},
        terms=terms,
        terms_per_second=terms / best,
        chars_per_second=sum(map(len, texts)) / best,
        load_seconds=load_seconds,
        vocabulary=len(index.postings),
    )


def main(quick: bool | None = None) -> Results:
    settings = QUICK if report.quick_requested(quick) else FULL
    results = Results()
    print(f"mode: {report.mode(settings.quick)}; {report.machine()}")
    if not (JSQUAD_DIR / "passages.jsonl").is_file():
        print(f"skipped: no JSQuAD passages at {JSQUAD_DIR / 'passages.jsonl'}")
        print("summary: 0 of 0 targets met (no data)")
        return results
    passages, queries = load(JSQUAD_DIR, settings.passages)
    results.passages, results.queries = len(passages), len(queries)
    print(
        f"JSQuAD: {len(passages)} passages, {len(queries)} questions; BM25 k1={K1} b={B}; "
        f"throughput best of {settings.timing_runs}"
    )
    for label, make in VARIANTS.items():
        began = time.perf_counter()
        try:
            analyzer = make()
        except MissingExtraError as err:
            results.skipped[label] = str(err)
            continue
        analyzer.terms("ウォームアップ warm-up 준비 预热")  # loads the dictionary
        loaded = time.perf_counter() - began
        results.figures[label] = measure(label, analyzer, passages, queries, settings, loaded)
    headers = [
        "analyser",
        *(f"hit@{k}" for k in KS),
        "terms",
        "vocab",
        "terms/s",
        "chars/s",
        "load",
    ]
    rows = [
        [
            f.label,
            *(f"{f.hits[k]:.3f}" for k in KS),
            f"{f.terms:,}",
            f"{f.vocabulary:,}",
            f"{f.terms_per_second:,.0f}",
            f"{f.chars_per_second:,.0f}",
            report.seconds(f.load_seconds),
        ]
        for f in results.figures.values()
    ]
    print(report.table(headers, rows))
    for f in results.figures.values():
        print(f"  {f.label}: {f.identity}")
    for label, fix in results.skipped.items():
        print(f"  not installed: {label} ({fix})")
    # No targets: the figures inform the choice of default analyser, they gate nothing.
    print(report.summary({}))
    return results


if __name__ == "__main__":
    main()
