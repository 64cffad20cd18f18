"""CJKTextSplitter against LangChain's default splitter on the JSQuAD articles.

For chunk sizes 200, 300 and 400 characters (overlap 10%) it prints, per splitter: the number
of chunks, the share that ends at a sentence or paragraph boundary
(:func:`ollama_rag.splitting.ends_at_boundary`), the mean chunk length and the split
throughput. The articles are the 23 in ``../shared/eval/jsquad/passages.jsonl`` beside the
repository, one article's passages joined with blank lines.

Run: ``python -m benchmarks splitter`` or ``python -m benchmarks.bench_splitter``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from langchain_core.documents import Document
from langchain_text_splitters import RecursiveCharacterTextSplitter, TextSplitter

from ollama_rag.splitting import CJKTextSplitter, ends_at_boundary

JSQUAD_DIR = Path(__file__).resolve().parents[1].parent / "shared" / "eval" / "jsquad"
CHUNK_SIZES = (200, 300, 400)
OVERLAP_FRACTION = 0.1
# Best of several timed runs: the minimum is the least disturbed by other processes.
TIMING_RUNS = 5


def load_articles(directory: Path = JSQUAD_DIR) -> list[str]:
    """Return one text per article: its passages in file order, joined with blank lines."""
    articles: dict[str, list[str]] = {}
    with (directory / "passages.jsonl").open(encoding="utf-8") as lines:
        for line in lines:
            row = json.loads(line)
            articles.setdefault(row["title"], []).append(row["text"])
    return ["\n\n".join(passages) for passages in articles.values()]


@dataclass(frozen=True)
class Result:
    splitter: str
    chunk_size: int
    chunks: int
    at_boundary: int
    mean_length: float
    chars_per_second: float

    @property
    def boundary_share(self) -> float:
        return self.at_boundary / self.chunks if self.chunks else 0.0


def _offsets(splitter: TextSplitter, text: str) -> list[tuple[int, int]]:
    documents: list[Document] = splitter.create_documents([text])
    return [
        (d.metadata["start_index"], d.metadata["start_index"] + len(d.page_content))
        for d in documents
    ]


def measure(
    name: str, make: Callable[[int, int], TextSplitter], size: int, articles: list[str]
) -> Result:
    splitter = make(size, int(size * OVERLAP_FRACTION))
    chunks = at_boundary = total_length = 0
    for text in articles:
        for start, end in _offsets(splitter, text):
            chunks += 1
            total_length += end - start
            at_boundary += ends_at_boundary(text, end)
    best = float("inf")
    for _ in range(TIMING_RUNS):
        began = time.perf_counter()
        for text in articles:
            splitter.split_text(text)
        best = min(best, time.perf_counter() - began)
    characters = sum(len(text) for text in articles)
    return Result(name, size, chunks, at_boundary, total_length / chunks, characters / best)


SPLITTERS: dict[str, Callable[[int, int], TextSplitter]] = {
    "CJKTextSplitter": lambda size, overlap: CJKTextSplitter(size, overlap),
    "LangChain default": lambda size, overlap: RecursiveCharacterTextSplitter(
        chunk_size=size, chunk_overlap=overlap, add_start_index=True
    ),
}


def main() -> None:
    if not (JSQUAD_DIR / "passages.jsonl").is_file():
        print(f"skipped: no JSQuAD passages at {JSQUAD_DIR / 'passages.jsonl'}")
        return
    articles = load_articles()
    characters = sum(len(text) for text in articles)
    print(
        f"JSQuAD: {len(articles)} articles, {characters:,} characters; "
        f"overlap {OVERLAP_FRACTION:.0%} of chunk size; throughput best of {TIMING_RUNS}"
    )
    header = f"{'splitter':<18} {'size':>5} {'chunks':>7} {'at boundary':>12} {'mean len':>9}"
    print(f"{header} {'chars/s':>12}")
    for size in CHUNK_SIZES:
        for name, make in SPLITTERS.items():
            r = measure(name, make, size, articles)
            print(
                f"{r.splitter:<18} {r.chunk_size:>5} {r.chunks:>7} {r.boundary_share:>12.2%} "
                f"{r.mean_length:>9.1f} {r.chars_per_second:>12,.0f}"
            )


if __name__ == "__main__":
    main()
