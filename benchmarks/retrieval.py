"""``python -m benchmarks.retrieval``: the retrieval-quality benchmark (see ``bench_retrieval``)."""

from benchmarks.bench_retrieval import main

if __name__ == "__main__":
    main()
