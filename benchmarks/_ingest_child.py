"""One ingest in a fresh interpreter (memory benchmark): ``python -m benchmarks._ingest_child``.

Reads a JSON job from argv[1], builds a RagIndex, runs ``add_files`` and prints one JSON line
with the peak RSS (``VmHWM``), the RSS before and after, chunk counts and times. A fresh
process per run means each peak belongs to that ingest alone (not to an earlier, larger one).

With ``"tracemalloc": N`` in the job it also traces Python allocations (slow: several times
the wall time) and reports the N largest growths between "index open" and "ingest done",
grouped by source line, to find what grows with the corpus.
"""

from __future__ import annotations

import json
import resource
import sys
import threading
import time
import tracemalloc
from pathlib import Path
from typing import Any

_PAGE = 4096


def _rss_bytes() -> int:
    """Current resident set size, from /proc (Linux)."""
    with open("/proc/self/statm", encoding="ascii") as statm:
        return int(statm.read().split()[1]) * _PAGE


def _peak_bytes() -> int:
    """Peak RSS of this process so far: ``VmHWM`` from /proc/self/status.

    Not ``ru_maxrss``: Linux keeps resource usage across ``execve``, so a child started by a
    big parent reports the parent's RSS at fork time as its own peak if it never exceeds it.
    ``VmHWM`` belongs to the address space, which exec replaces.
    """
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024  # kB
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux


class _Sampler(threading.Thread):
    """Samples RSS every ``interval`` seconds, to show whether memory grows during the run."""

    def __init__(self, interval: float) -> None:
        super().__init__(daemon=True)
        self.interval = interval
        self.samples: list[tuple[float, int]] = []
        self._stop_event = threading.Event()
        self._began = time.perf_counter()

    def run(self) -> None:
        while not self._stop_event.wait(self.interval):
            self.samples.append((time.perf_counter() - self._began, _rss_bytes()))

    def stop(self) -> None:
        self._stop_event.set()
        self.join()


def run(job: dict[str, Any]) -> dict[str, Any]:
    from ollama_rag import RagIndex

    trace = int(job.get("tracemalloc", 0))
    result: dict[str, Any] = {"rss_start": _rss_bytes()}
    with RagIndex(
        job["index"],
        model=job["model"],
        base_url=job["urls"],
        chunk_size=job["chunk_size"],
        chunk_overlap=job["chunk_overlap"],
        batch_size=job.get("batch_size", 64),
        concurrency=job.get("concurrency", 2),
    ) as index:
        result["rss_open"] = _rss_bytes()
        if trace:
            tracemalloc.start(10)
            before = tracemalloc.take_snapshot()
        sampler = _Sampler(float(job.get("sample_interval", 0.5)))
        sampler.start()
        began = time.perf_counter()
        report = index.add_files(job["corpus"], progress=False)
        result["seconds"] = time.perf_counter() - began
        sampler.stop()
        result["rss_end"] = _rss_bytes()
        result["samples"] = sampler.samples
        if trace:
            after = tracemalloc.take_snapshot()
            stats = after.compare_to(before, "lineno")
            result["traced_peak"] = tracemalloc.get_traced_memory()[1]
            result["growth"] = [
                {"where": str(s.traceback[0]), "size_diff": s.size_diff, "count": s.count_diff}
                for s in stats[:trace]
            ]
            tracemalloc.stop()
        result["chunks"] = index.count()
        result["chunks_embedded"] = report.chunks_embedded
        result["chunks_skipped"] = report.chunks_skipped
        result["files"] = report.files_added
        result["failed"] = report.files_failed + len(report.skipped)
        result["requests"] = report.embedding_requests
    result["peak_rss"] = _peak_bytes()
    return result


def main() -> None:
    job = json.loads(sys.argv[1])
    Path(job["index"]).mkdir(parents=True, exist_ok=True)
    print(json.dumps(run(job)), flush=True)


if __name__ == "__main__":
    main()
