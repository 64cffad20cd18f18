"""Smoke test of the benchmarks: they are listed, and the ingestion, entry point, search,
Chroma, reliability, repeated-text, analyser, snapshot and store ones run quickly.

Only that it completes and prints sane figures is checked; the throughput and memory targets
are the benchmarks' business (``make bench``), never asserted here. The one exception is the
reliability benchmark's damage matrix, which is deterministic: a damaged copy that is not
repaired whole is a regression of the repair, not a missed target.
"""

from __future__ import annotations

import importlib
import json
import math
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def bench_ingest(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    monkeypatch.syspath_prepend(str(ROOT))  # benchmarks/ is not an installed package
    import benchmarks.bench_ingest

    return benchmarks.bench_ingest


def test_list_names_both_benchmarks() -> None:
    listed = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--list"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout.split()
    assert "bench_ingest" in listed
    assert "bench_splitter" in listed
    assert "bench_chroma_writes" in listed
    assert "bench_entrypoints" in listed
    assert "bench_search" in listed
    assert "bench_reliability" in listed
    assert "bench_duplicates" in listed
    assert "bench_analyzers" in listed
    assert "bench_stores" in listed


@pytest.mark.slow
def test_ingest_benchmark_quick_mode(
    bench_ingest: ModuleType, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv(bench_ingest.QUICK_ENV, "1")

    results = bench_ingest.main()

    out = capsys.readouterr().out
    assert "mode: QUICK" in out
    for header in (
        "1. Overhead",
        "2. Scale-out",
        "3. Re-sync",
        "4. Against the plain LangChain composition",
        "5. Memory",
        "Bounds of the scale-out",
        "summary:",
    ):
        assert header in out, header
    assert "measure" in out
    assert "verdict" in out
    assert results.chunks > 0
    assert results.resync_requests == 0
    ratios = [
        results.overhead,
        results.resync_share,
        results.langchain_ratio,
        results.memory_ratio,
        *results.speedups.values(),
    ]
    assert results.speedups
    for ratio in ratios:
        assert math.isfinite(ratio)
        assert ratio > 0
    assert set(results.verdicts) >= {"overhead", "re-sync requests", "re-sync time", "memory"}


@pytest.mark.slow
def test_chroma_writes_benchmark_quick_mode(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.syspath_prepend(str(ROOT))
    import benchmarks.bench_chroma_writes as bench

    results = bench.main(quick=True)

    out = capsys.readouterr().out
    assert "mode: QUICK" in out
    assert set(results) == {variant.label for variant in bench.VARIANTS} | {bench.SQLITE_LABEL}
    for label, ms in results.items():
        assert label in out
        assert math.isfinite(ms)
        assert ms > 0


def _benchmark(monkeypatch: pytest.MonkeyPatch, name: str) -> ModuleType:
    """Import ``benchmarks.<name>`` (benchmarks/ is not an installed package)."""
    monkeypatch.syspath_prepend(str(ROOT))
    return importlib.import_module(f"benchmarks.{name}")


@pytest.mark.slow
def test_entrypoints_benchmark_quick_mode(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    bench = _benchmark(monkeypatch, "bench_entrypoints")
    monkeypatch.delenv(bench.ENTRYPOINTS_ENV, raising=False)
    monkeypatch.delenv(bench.SHAPES_ENV, raising=False)
    # As in CI, which checks out the repository without ../shared: that shape is skipped.
    monkeypatch.setattr(bench, "JSQUAD", tmp_path / "absent.jsonl")

    results = bench.main(quick=True)

    out = capsys.readouterr().out
    assert "mode: QUICK" in out
    assert "skipped shape ja-jsquad" in out
    assert set(results.skipped) == {"ja-jsquad"}
    assert "summary:" in out
    assert results.entry_points == set(bench.ENTRY_POINT_NAMES)
    for figure in results.figures:
        assert figure.entry.label in out
        assert set(figure.runs) == {1, *bench.QUICK.hosts}
        ratios = [figure.overhead, *(figure.speedup(h) for h in bench.QUICK.hosts)]
        for ratio in ratios:
            assert math.isfinite(ratio)
            assert ratio > 0
        best = figure.best(1)
        assert best.chunks > 0
        assert best.inputs >= best.chunks  # generated text: nothing reused by content
    assert len(results.verdicts) == len(results.figures) * (1 + len(bench.QUICK.hosts))


def _run_quick(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], name: str
) -> tuple[ModuleType, Any, str]:
    """Run ``benchmarks.<name>`` in quick mode: the module, its results and what it printed."""
    bench = _benchmark(monkeypatch, name)
    results = bench.main(quick=True)
    out = capsys.readouterr().out
    assert "mode: QUICK" in out
    assert "summary:" in out
    return bench, results, out


@pytest.mark.slow
def test_search_benchmark_quick_mode(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    bench, results, _ = _run_quick(monkeypatch, capsys, "bench_search")

    assert set(results.figures) == set(bench.QUICK.dimensions)
    for figures in results.figures.values():
        assert figures.chunks > 0
        assert figures.queries == bench.QUICK.queries
        values = [figures.ratio, *figures.p50.values(), *figures.p95.values()]
        for value in values:
            assert math.isfinite(value)
            assert value > 0
        assert math.isfinite(figures.hybrid_ratio)
        assert set(figures.p50) >= {
            bench.SEARCH,
            bench.HYBRID,
            bench.LEXICAL,
            bench.BASELINE,
            bench.MMR,
            bench.FILTERED,
        }
    assert set(results.verdicts) == {
        f"{what} {d}-d"
        for d in bench.QUICK.dimensions
        for what in ("search/baseline", "hybrid/dense")
    }


@pytest.mark.slow
def test_retrieval_benchmark_quick_mode(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    # A data set of the jsquad layout, written here, so the test does not need ../shared.
    folder = tmp_path / "mini"
    folder.mkdir()
    passages = [
        {
            "id": "a1p0",
            "title": "富士山",
            "text": "富士山は日本で一番高い山で、標高は3776メートルです。",
        },
        {"id": "a1p1", "title": "富士山", "text": "富士山は静岡県と山梨県にまたがっています。"},
        {"id": "a2p0", "title": "琵琶湖", "text": "琵琶湖は滋賀県にある日本最大の湖です。"},
    ]
    queries = [
        {"question": "日本で一番高い山の標高は？", "passage_id": "a1p0", "answer": "3776メートル"},
        {"question": "富士山はどの県にまたがる？", "passage_id": "a1p1", "answer": "山梨県"},
        {"question": "日本最大の湖は？", "passage_id": "a2p0", "answer": "琵琶湖"},
    ]
    for name, rows in (("passages", passages), ("queries", queries)):
        lines = (json.dumps(r, ensure_ascii=False) for r in rows)
        (folder / f"{name}.jsonl").write_text("\n".join(lines), encoding="utf-8")
    bench = _benchmark(monkeypatch, "bench_retrieval")
    monkeypatch.setattr(bench, "DEFAULT_SET", tmp_path / "absent")
    monkeypatch.setenv(bench.SETS_ENV, str(folder))

    _, results, out = _run_quick(monkeypatch, capsys, "bench_retrieval")

    assert "no data set at" in out  # the missing default set is skipped, not fatal
    assert set(results.results) == {("mini", s) for s in bench.SPLITTERS}
    for evaluated in results.results.values():
        assert set(evaluated) == set(bench.MODES)
        for result in evaluated.values():
            assert result.count == 3
            assert 0 <= result.metrics["hit@1"] <= result.metrics["hit@10"] <= 1
        assert evaluated["lexical"].metrics["hit@10"] == 1.0  # every answer is in the index


@pytest.mark.slow
def test_reliability_benchmark_quick_mode(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    bench = _benchmark(monkeypatch, "bench_reliability")
    monkeypatch.delenv(bench.TRIALS_ENV, raising=False)

    results = bench.main(quick=True)

    out = capsys.readouterr().out
    assert "mode: QUICK" in out
    for header in ("calibration:", "1. Kill loop", "failure rate:", "2. Damage matrix", "summary:"):
        assert header in out, header
    assert set(results.calibrations) == set(bench.ENTRY_POINTS)
    for calibration in results.calibrations.values():
        assert math.isfinite(calibration.phase)
        assert calibration.phase > 0
        assert calibration.rows > 0
        assert calibration.expected.final
    assert len(results.trials) == bench.QUICK.trials
    assert {t.entry for t in results.trials} == set(bench.ENTRY_POINTS)
    for trial in results.trials:
        assert trial.outcome in {"clean", "repaired", "failed"}
        assert 0 <= trial.delay <= trial.phase
        assert trial.seconds > 0
    assert 0 <= results.failure_rate <= results.failure_upper_bound <= 1
    # The damage matrix is deterministic: each damage is found and repaired, nothing is lost.
    assert [row.mode for row in results.matrix] == list(bench.QUICK.damages)
    for row in results.matrix:
        assert row.ok, (row.mode, row.found, row.inspection, row.failure)
    assert results.verdicts["damage none (control)"]


@pytest.mark.slow
def test_duplicates_benchmark_quick_mode(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    bench, results, out = _run_quick(monkeypatch, capsys, "bench_duplicates")

    cases = {(n, case) for n in bench.QUICK.indexes for case in bench.cases(bench.QUICK)}
    assert set(results.capped) == set(results.uncapped) == cases
    for n, case in cases:
        assert case in out
        for figures in (results.capped[n, case], results.uncapped[n, case]):
            assert 0.0 <= figures.recall3 <= figures.recall5 <= 1.0
            assert figures.rows > 0
    assert len(results.verdicts) == len(cases) - len(bench.QUICK.indexes)  # "none" has none


@pytest.mark.slow
def test_analyzers_benchmark_quick_mode(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    bench, results, out = _run_quick(monkeypatch, capsys, "bench_analyzers")

    if not (bench.JSQUAD_DIR / "passages.jsonl").is_file():
        pytest.skip(f"no JSQuAD beside the repository at {bench.JSQUAD_DIR}")
    assert results.passages == bench.QUICK.passages
    assert results.queries > 0
    # The default analyser needs nothing, so its two rows are always there.
    assert {"cjk-bigram", "cjk-bigram +unigrams"} <= set(results.figures)
    assert set(results.figures) | set(results.skipped) == set(bench.VARIANTS)
    for label, figures in results.figures.items():
        assert label in out
        assert 0.0 <= figures.hits[1] <= figures.hits[5] <= figures.hits[10] <= 1.0
        assert figures.terms > 0
        assert math.isfinite(figures.terms_per_second)
        assert figures.terms_per_second > 0
    for fix in results.skipped.values():
        assert "pip install 'ollama-rag[" in fix


def test_analyzers_benchmark_without_the_data_says_so(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    bench = _benchmark(monkeypatch, "bench_analyzers")
    monkeypatch.setattr(bench, "JSQUAD_DIR", tmp_path / "absent")

    results = bench.main(quick=True)

    assert "skipped: no JSQuAD passages at" in capsys.readouterr().out
    assert not results.figures


@pytest.mark.slow
def test_snapshot_benchmark_quick_mode(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    bench = _benchmark(monkeypatch, "bench_snapshot")

    (row,) = bench.main(quick=True)

    out = capsys.readouterr().out
    assert "mode: QUICK" in out
    assert "read-only open" in out
    assert row.chunks > 300  # passages of ~280 characters make more than one chunk on average
    assert row.megabytes > 0
    # The read-only open includes the copy; the CLI search includes a read-only open.
    assert 0 < row.copy < row.read_only < row.cli


def test_stores_benchmark_quick_mode(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("faiss")
    bench = _benchmark(monkeypatch, "bench_stores")
    monkeypatch.setenv(bench.SIZES_ENV, "100")
    monkeypatch.setenv(bench.STORE_SIZES_ENV, "300")

    results = bench.main(quick=True)

    out = capsys.readouterr().out
    assert "bench_stores: QUICK" in out
    assert "Through the library (add_texts, search), 100 chunks" in out
    assert "The store alone (ChunkStore.write, query), 300 chunks" in out
    assert set(results) == {"library", "store"}
    for part, size in (("library", 100), ("store", 300)):
        figures = results[part][size]
        assert set(figures) == {"faiss", "faiss-hnsw", "chroma"}
        for name, f in figures.items():
            assert f.ingest > 0, name
            assert len(f.latencies) == len(f.filtered) == bench.QUICK.queries
            assert f.disk > 0, name
            # A graph over a few hundred rows, searched with a wide beam, finds what the exact
            # search finds: a lower figure means the stores or the comparison went wrong.
            assert f.recall >= 0.9, (part, name, f.recall)
            if part == "store":
                assert list(f.shapes) == list(bench._shapes(size))
                assert all(p50 > 0 for p50 in f.shapes.values()), f.shapes
    # The store-alone part's exact answers are numpy's; flat must find exactly those.
    assert results["store"][300]["faiss"].recall == 1.0
    assert "query p50 by filter" in out


def test_stores_benchmark_runs_the_chosen_stores_alone(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    bench = _benchmark(monkeypatch, "bench_stores")
    monkeypatch.setenv(bench.SIZES_ENV, "0")
    monkeypatch.setenv(bench.STORE_SIZES_ENV, "300")
    monkeypatch.setenv(bench.STORES_ENV, "chroma")

    results = bench.main(quick=True)

    assert set(results["store"][300]) == {"chroma"}
    assert results["store"][300]["chroma"].recall >= 0.9  # against numpy's exact answers
    monkeypatch.setenv(bench.STORES_ENV, "chroma,faiss-ivf")
    with pytest.raises(SystemExit, match="faiss-ivf"):
        bench.main(quick=True)


@pytest.mark.slow
def test_reliability_benchmark_quick_mode_on_faiss(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("faiss")
    bench = _benchmark(monkeypatch, "bench_reliability")
    monkeypatch.delenv(bench.TRIALS_ENV, raising=False)

    results = bench.main(quick=True, store="faiss")

    out = capsys.readouterr().out
    assert "store: faiss" in out
    for header in ("calibration:", "1. Kill loop", "failure rate:", "summary:"):
        assert header in out, header
    assert set(results.calibrations) == set(bench.ENTRY_POINTS)
    assert len(results.trials) == bench.QUICK.trials
    for trial in results.trials:
        assert trial.outcome in {"clean", "repaired", "failed"}
        assert 0 <= trial.delay <= trial.phase
        if trial.outcome != "failed":
            assert trial.faiss_file in bench.FAISS_FILE_STATES
    assert 0 <= results.failure_rate <= results.failure_upper_bound <= 1
    assert results.matrix == []  # the damage matrix is Chroma's
