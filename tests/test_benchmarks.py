"""Smoke test of the benchmarks: they are listed, and the ingestion and Chroma ones run quickly.

Only that it completes and prints sane figures is checked; the throughput and memory targets
are the benchmarks' business (``make bench``), never asserted here.
"""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path
from types import ModuleType

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
