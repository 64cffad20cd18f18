"""Crash reliability: indexes killed with SIGKILL mid-write, and vector files damaged on purpose.

Chroma writes its HNSW vector files in place, and a process killed while it does so (about one
kill in 50 during a write, before the repair existed) left them damaged: every later call on the
collection failed or crashed the process. ``RagIndex`` now detects that on open and rebuilds the
collection (``IndexRepairedWarning``, ``index.last_repair``). A FAISS index keeps every vector
in its SQLite docstore and its FAISS file is only a stamped cache, so a kill should leave
nothing to repair there; the kill loop checks that too. Two parts:

1. **Kill loop** — ``TRIALS`` trials (default 200; ``OLLAMA_RAG_BENCH_TRIALS`` overrides). Each
   trial gets a fresh index directory and a writer process running one entry point, in turn:
   ``add_texts`` (short CJK passages in several calls, alternately one source per text and one
   source per call), ``add_files`` (a folder of generated CJK files), ``sync`` (a copy of an
   index of a folder, synced after a third of its files changed, some went and some came) and
   ``delete`` (the same copy, half its sources deleted one call each). Each writes several
   hundred rows, crossing Chroma's HNSW save points (every 100 rows, ``sync_threshold``) many
   times. The parent kills the writer with SIGKILL at a moment drawn uniformly over its write
   phase (its length measured beforehand, uninterrupted: the calibration). A verifier process
   then opens the index and checks that it opens, that ``count()`` equals the rows in the
   store's own SQLite file (``chroma.sqlite3``, or the FAISS docstore ``faiss.sqlite3``, read
   directly and read-only), that ids are unique, that every source with a completion marker
   has exactly its chunks, that a search as wide as the index returns every row (every row has
   a vector), that a sample of chunks is found by its own text (within the top 3; the hash
   model gives identical text identical vectors), that the lexical index holds exactly the
   stored chunks, that the same run again completes and leaves exactly what an uninterrupted
   run leaves, and that a probe text can be added, found and deleted. On FAISS it also notes
   how the kill left the FAISS file (in step with the docstore, behind, missing or
   unreadable), checks after the kill and after the re-run that the FAISS index searches use
   holds exactly the docstore's rows and, for a sample, each row's own stored vector, and that
   the file is in step once the verifier has closed the index. A trial is **clean** (no
   damage), **repaired** (an ``IndexRepairedWarning``; every check passed) or **failed** (an
   exception, a crash, a hang or a failed check; its directory is kept and printed, with a
   copy of the index as the kill left it).
2. **Damage matrix** — one index, copied once per way a crash can damage its vector files
   (``index_metadata.pickle`` empty, cut to half, missing; ``header.bin`` empty;
   ``data_level0.bin`` cut to half, missing; ``link_lists.bin`` empty; the segment folder
   missing; a stale segment folder put back after more rows were added), plus an undamaged
   copy as the control. Each is opened: detected, repaired, chunks before and after, vectors
   recovered and embedded again, self-queries found first, and whether a write then works.
   Chroma only: the FAISS file's damage (truncated, garbage, missing, stale) is opened in
   ``tests/test_faiss.py``.

The store is ``OLLAMA_RAG_BENCH_STORE`` (``chroma`` or ``faiss``), else ``OLLAMA_RAG_STORE``
(the library's default for new indexes), else Chroma; it is printed in the first line. A FAISS
index is of the default type (``flat``).

All processes share one LocalOllama server in a process of its own (a 64-d hash model, no
delay). Writers and verifiers are forked from a ``forkserver`` that has imported ``ollama_rag``
and the store's library (chromadb or faiss), because a fresh interpreter spends 3-8 s
importing them on the benchmark machine; each still opens its index itself (see
``benchmarks/_reliability_child.py``).

Run: ``python -m benchmarks reliability`` (about 15 minutes on 2 cores), on FAISS
``OLLAMA_RAG_BENCH_STORE=faiss python -m benchmarks reliability``, or small and quick (for the
smoke test) with ``OLLAMA_RAG_BENCH_QUICK=1``.
"""

from __future__ import annotations

import math
import multiprocessing
import os
import random
import re
import shutil
import sqlite3
import statistics
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field, replace
from multiprocessing.context import ForkServerContext
from pathlib import Path
from typing import Any

from benchmarks._corpus import documents, passages, write_corpus
from benchmarks._reliability_child import (
    COLLECTION,
    ENTRY_POINTS,
    Dump,
    Expected,
    Inspection,
    Job,
    TextCall,
    Verification,
    inspect,
    verify,
    write,
)
from benchmarks._report import QUICK_ENV as QUICK_ENV  # re-exported: the smoke test sets it
from benchmarks._report import machine, mode, quick_requested, seconds, summary, table, verdict
from benchmarks._servers import ServerProcess
from ollama_rag.storage.kinds import STORE_ENV, STORE_KINDS, StoreKind, store_version

TRIALS_ENV = "OLLAMA_RAG_BENCH_TRIALS"
BENCH_STORE_ENV = "OLLAMA_RAG_BENCH_STORE"
MODEL = "bench-embed"
SEED = 11
# Imported once in the forkserver, so that every forked writer and verifier starts at once.
PRELOAD: dict[str, list[str]] = {
    "chroma": ["ollama_rag.storage.chroma", "chromadb", "chromadb.api.rust", "langchain_chroma"],
    "faiss": ["ollama_rag.storage.faiss", "faiss"],
}
# Seconds a process may take before it counts as hung.
READY_TIMEOUT = 120.0
VERIFY_TIMEOUT = 300.0


@dataclass(frozen=True)
class Settings:
    """Every parameter of one run (printed with the figures)."""

    quick: bool
    trials: int
    passages: int  # add_texts: short passages, one chunk each
    calls: int  # add_texts: calls they are added in
    files: int  # add_files, and the folder synced and deleted from
    chars_per_file: int
    extra_passages: int  # the damage matrix's stale mode: rows added after the copy
    calibration_runs: int
    sample: int  # chunks searched by their own text per check
    damages: tuple[str, ...]  # damage matrix modes (see DAMAGES)
    store: StoreKind = "chroma"  # the store of every index
    chunk_size: int = 100
    chunk_overlap: int = 10
    dimension: int = 64


# Sized on the 2-core benchmark machine (under load from other processes): 400-800 rows per
# write, about 2 s of write phase, about 4 s a trial with the verification.
FULL = Settings(
    quick=False,
    trials=200,
    passages=600,
    calls=4,
    files=30,
    chars_per_file=1800,
    extra_passages=300,
    calibration_runs=3,
    sample=50,
    damages=(),  # all of them
)
# Small enough for the smoke test (tests/test_benchmarks.py): one trial per entry point.
QUICK = Settings(
    quick=True,
    trials=4,
    passages=120,
    calls=4,
    files=6,
    chars_per_file=1800,
    extra_passages=120,
    calibration_runs=1,
    sample=10,
    damages=("none (control)", "pickle half", "segment missing", "stale segment"),
)


def settings_for(
    quick: bool | None = None, trials: int | None = None, store: str | None = None
) -> Settings:
    """QUICK or FULL (``OLLAMA_RAG_BENCH_QUICK``); ``trials``, else ``$OLLAMA_RAG_BENCH_TRIALS``.

    The store is ``store``, else ``$OLLAMA_RAG_BENCH_STORE``, else ``$OLLAMA_RAG_STORE`` (the
    library's default for new indexes), else ``"chroma"``.

    Raises:
        ValueError: The number of trials is not a positive integer, or the store is unknown.
    """
    name = store or os.environ.get(BENCH_STORE_ENV) or os.environ.get(STORE_ENV) or "chroma"
    kinds = [kind for kind in STORE_KINDS if kind == name]
    if not kinds:
        msg = f"the store must be one of {', '.join(STORE_KINDS)}, got {name!r}"
        raise ValueError(msg)
    s = replace(QUICK if quick_requested(quick) else FULL, store=kinds[0])
    given = os.environ.get(TRIALS_ENV, "").strip()
    if trials is None and given:
        trials = int(given) if given.isdigit() else 0
    if trials is not None:
        if trials < 1:
            msg = f"the number of trials must be a positive integer, got {trials or given!r}"
            raise ValueError(msg)
        s = replace(s, trials=trials)
    return s


# ---------------------------------------------------------------------------- processes


class Processes:
    """Runs the child functions in processes forked from a preloaded forkserver."""

    def __init__(self, store: str) -> None:
        self.context: ForkServerContext = multiprocessing.get_context("forkserver")
        self.context.set_forkserver_preload(
            ["ollama_rag", *PRELOAD[store], "benchmarks._reliability_child"]
        )
        # Start it now (the imports take seconds), while the parent writes the corpora.
        from multiprocessing import forkserver

        forkserver.ensure_running()

    def start(self, target: Any, *args: Any) -> tuple[Any, Any]:
        """Start ``target(*args, conn)``; returns (process, the parent's end of the pipe)."""
        receiver, sender = self.context.Pipe(duplex=False)
        process = self.context.Process(target=target, args=(*args, sender), daemon=True)
        process.start()
        sender.close()
        return process, receiver

    def call(self, target: Any, *args: Any, timeout: float) -> Any:
        """Run ``target`` to its end and return what it sent; raises if it died or hung."""
        process, receiver = self.start(target, *args)
        try:
            if not receiver.poll(timeout):
                process.kill()
                msg = f"{target.__name__} hung for {timeout:g} s"
                raise RuntimeError(msg)
            return receiver.recv()
        except EOFError:
            process.join()
            msg = f"{target.__name__} died with status {process.exitcode}"
            raise RuntimeError(msg) from None
        finally:
            process.join(timeout=30)
            receiver.close()


def exit_description(code: int | None) -> str:
    if code is None:
        return "still running"
    if code < 0:
        import signal

        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit status {code}"


# ---------------------------------------------------------------------------- the workload


@dataclass
class Workload:
    """The corpora, the template index (a folder's index) and a job per entry point."""

    settings: Settings
    work: Path
    url: str
    template: Path
    template_dump: Dump
    jobs: dict[str, Job]
    rows_written: dict[str, int] = field(default_factory=dict)

    def job(self, entry: str, index: Path) -> Job:
        """The entry point's job on ``index`` (a copy of the template for sync and delete)."""
        if entry in ("sync", "delete"):
            shutil.copytree(self.template, index)
        else:
            index.mkdir(parents=True)
        return replace(self.jobs[entry], index=str(index))


def _texts(settings: Settings) -> tuple[TextCall, ...]:
    half = settings.passages // 2
    ja = passages(half, language="ja", chars=(40, 80), per_title=4, seed=SEED)
    zh = passages(settings.passages - half, language="zh", chars=(40, 80), per_title=4, seed=SEED)
    texts = [p.text for pair in zip(ja, zh, strict=False) for p in pair]
    texts += [p.text for p in ja[len(zh) :]] + [p.text for p in zh[len(ja) :]]
    per_call = math.ceil(len(texts) / settings.calls)
    return tuple(
        TextCall(
            tuple(texts[start : start + per_call]),
            None if call % 2 == 0 else f"passages-{call}.md",
        )
        for call, start in enumerate(range(0, len(texts), per_call))
    )


def _edit_folder(folder: Path, settings: Settings) -> dict[str, int]:
    """Turn the synced folder into its second version: a third changed, some gone, some new."""
    changed = gone = 0
    new = max(1, settings.files // 6)
    others = documents(settings.files + new, chars=settings.chars_per_file, seed=SEED + 2)
    for index, path in enumerate(sorted(folder.glob("*.txt"))):
        if index % 7 == 3:
            path.unlink()
            gone += 1
        elif index % 3 == 0:
            path.write_text(others[index].text, encoding="utf-8")
            changed += 1
    for index in range(new):
        text = others[settings.files + index].text
        (folder / f"new-{index:05d}.txt").write_text(text, encoding="utf-8")
    return {"changed": changed, "gone": gone, "new": new}


def prepare(settings: Settings, work: Path, url: str, processes: Processes) -> Workload:
    """Write the corpora, build the template index (in a child) and make every job."""
    s = settings
    files = write_corpus(
        work / "files", files=s.files, chars_per_file=s.chars_per_file, seed=SEED
    ).directory
    synced = write_corpus(
        work / "synced", files=s.files, chars_per_file=s.chars_per_file, seed=SEED + 1
    ).directory
    base = Job(
        entry="add_files",
        index=str(work / "template"),
        model=MODEL,
        url=url,
        chunk_size=s.chunk_size,
        chunk_overlap=s.chunk_overlap,
        store=s.store,
        folder=str(synced),
        dump=True,
    )
    template_dump = _run_to_end(processes, base)
    _edit_folder(synced, s)
    sources = sorted(template_dump)
    jobs = {
        "add_texts": replace(base, entry="add_texts", folder="", calls=_texts(s), dump=False),
        "add_files": replace(base, folder=str(files), dump=False),
        "sync": replace(base, entry="sync", dump=False),
        "delete": replace(
            base, entry="delete", folder="", deletes=tuple(sources[1::2]), dump=False
        ),
    }
    return Workload(s, work, url, work / "template", template_dump, jobs)


def _run_to_end(processes: Processes, job: Job) -> Dump:
    """Run a writer to its end (no kill) and return its dump."""
    process, receiver = processes.start(write, job)
    try:
        dump: Dump | None = None
        while dump is None:
            if not receiver.poll(READY_TIMEOUT):
                process.kill()
                msg = f"writer of {job.entry} on {job.index} hung"
                raise RuntimeError(msg)
            kind, value = receiver.recv()
            if kind == "error":
                msg = f"writer of {job.entry} on {job.index} failed:\n{value}"
                raise RuntimeError(msg)
            if kind == "dump":
                dump = value
        return dump
    finally:
        process.join(timeout=30)
        receiver.close()


# ---------------------------------------------------------------------------- calibration


@dataclass(frozen=True)
class Calibration:
    """One entry point run uninterrupted: its write phase and the states it may leave."""

    entry: str
    phases: tuple[float, ...]  # seconds from "ready" to the index closed, per run
    rows: int  # rows written (added or deleted)
    expected: Expected

    @property
    def phase(self) -> float:
        return statistics.median(self.phases)


def _timed_run(processes: Processes, job: Job) -> tuple[float, Dump | None]:
    process, receiver = processes.start(write, job)
    try:
        phase = math.nan
        dump: Dump | None = None
        while True:
            if not receiver.poll(READY_TIMEOUT):
                process.kill()
                msg = f"calibration run of {job.entry} hung"
                raise RuntimeError(msg)
            try:
                kind, value = receiver.recv()
            except EOFError:
                break
            if kind == "error":
                msg = f"calibration run of {job.entry} failed:\n{value}"
                raise RuntimeError(msg)
            if kind == "done":
                phase = float(value)
            elif kind == "dump":
                dump = value
        return phase, dump
    finally:
        process.join(timeout=30)
        receiver.close()


def calibrate(workload: Workload, processes: Processes) -> dict[str, Calibration]:
    s = workload.settings
    calibrations: dict[str, Calibration] = {}
    for entry in ENTRY_POINTS:
        phases: list[float] = []
        final: Dump | None = None
        for run in range(s.calibration_runs):
            job = workload.job(entry, workload.work / "calibration" / f"{entry}-{run}")
            phase, dump = _timed_run(processes, replace(job, dump=run == 0))
            phases.append(phase)
            final = dump if run == 0 else final
        assert final is not None
        before = workload.template_dump if entry in ("sync", "delete") else {}
        allowed: dict[str, dict[str, frozenset[str]]] = {}
        for state in (before, final):
            for source, (marker, chunks) in state.items():
                if marker is not None:
                    allowed.setdefault(source, {})[marker] = chunks
        old = {c for _, chunks in before.values() for c in chunks}
        new = {c for _, chunks in final.values() for c in chunks}
        calibrations[entry] = Calibration(
            entry, tuple(phases), len(old ^ new), Expected(allowed, final)
        )
    shutil.rmtree(workload.work / "calibration", ignore_errors=True)
    return calibrations


# ---------------------------------------------------------------------------- the kill loop


@dataclass
class Trial:
    """One trial's outcome."""

    number: int
    entry: str
    delay: float  # seconds after "ready" the kill was due
    phase: float  # the calibrated write phase it was drawn from
    killed: bool
    outcome: str  # "clean", "repaired" or "failed"
    problems: list[str] = field(default_factory=list)
    repairs: list[str] = field(default_factory=list)
    kept: int = 0
    embedded: int = 0
    seconds: float = 0.0
    writer_seconds: float = 0.0
    verify_seconds: float = 0.0
    faiss_file: str | None = None  # FAISS: the file as the kill left it
    kept_at: Path | None = None


def run_trial(
    number: int,
    entry: str,
    delay: float,
    calibration: Calibration,
    workload: Workload,
    processes: Processes,
    keep: list[Path],
) -> Trial:
    """Write, kill, verify; keep the directory when the trial failed."""
    s = workload.settings
    began = time.perf_counter()
    folder = workload.work / "trials" / f"trial-{number:04d}"
    job = workload.job(entry, folder / "index")
    trial = Trial(number, entry, delay, calibration.phase, killed=False, outcome="failed")
    process, receiver = processes.start(write, job)
    try:
        if not receiver.poll(READY_TIMEOUT):
            process.kill()
            trial.problems.append(f"the writer hung before its first write ({READY_TIMEOUT:g} s)")
        else:
            kind, value = receiver.recv()
            if kind != "ready":
                trial.problems.append(f"the writer failed before its first write:\n{value}")
            elif receiver.poll(delay):  # it ended (or died) before the kill was due
                try:
                    kind, value = receiver.recv()
                    if kind == "error":
                        trial.problems.append(f"the writer failed:\n{value}")
                except EOFError:
                    process.join()
                    trial.problems.append(f"the writer died: {exit_description(process.exitcode)}")
            else:
                process.kill()
                trial.killed = True
    except EOFError:
        process.join()
        trial.problems.append(f"the writer died: {exit_description(process.exitcode)}")
    finally:
        process.join(timeout=30)
        receiver.close()
    trial.writer_seconds = time.perf_counter() - began
    if not trial.problems:
        shutil.copytree(folder / "index", folder / "as-killed")
        _verify(trial, job, calibration.expected, s, processes)
    if trial.problems:
        trial.outcome = "failed"
        destination = _keep_dir(keep) / folder.name
        shutil.move(str(folder), destination)
        trial.kept_at = destination
    else:
        trial.outcome = "repaired" if trial.repairs else "clean"
        shutil.rmtree(folder, ignore_errors=True)
    trial.seconds = time.perf_counter() - began
    return trial


def _verify(trial: Trial, job: Job, expected: Expected, s: Settings, processes: Processes) -> None:
    began = time.perf_counter()
    process, receiver = processes.start(verify, job, expected, s.sample, SEED + trial.number)
    try:
        if not receiver.poll(VERIFY_TIMEOUT):
            process.kill()
            trial.problems.append(f"the verifier hung ({VERIFY_TIMEOUT:g} s)")
            return
        try:
            result: Verification = receiver.recv()
        except EOFError:
            process.join()
            trial.problems.append(f"the verifier crashed: {exit_description(process.exitcode)}")
            return
    finally:
        process.join(timeout=30)
        receiver.close()
        trial.verify_seconds = time.perf_counter() - began
    trial.repairs = result.repairs
    trial.kept, trial.embedded = result.kept, result.embedded
    trial.faiss_file = result.faiss_file
    trial.problems.extend(result.problems)
    if result.error is not None:
        trial.problems.append(f"the verifier raised:\n{result.error}")


def _keep_dir(keep: list[Path]) -> Path:
    """A directory outside the temporary one for failed trials (made on first use)."""
    if not keep:
        keep.append(Path(tempfile.mkdtemp(prefix="ollama-rag-reliability-failed-")))
    return keep[0]


_REPAIRED = re.compile(r"was damaged \((?P<damage>.*)\), as a process")
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def damage_kind(warning: str) -> str:
    """The damage named in an ``IndexRepairedWarning``, with numbers and segment ids taken out.

    >>> damage_kind("The index at x was damaged (header.bin has 0 bytes of 96), as a process")
    'header.bin has N bytes of N'
    """
    found = _REPAIRED.search(warning)
    text = found.group("damage") if found else warning[:80]
    return re.sub(r"\d+", "N", _UUID.sub("<segment>", text))


def upper_bound(failures: int, trials: int, confidence: float = 0.95) -> float:
    """One-sided exact (Clopper-Pearson) upper bound on a failure rate; 3/n-like at 0 failures."""
    if trials == 0:
        return 1.0
    if failures >= trials:
        return 1.0

    def cdf(p: float) -> float:
        return sum(
            math.comb(trials, k) * p**k * (1 - p) ** (trials - k) for k in range(failures + 1)
        )

    low, high = failures / trials, 1.0
    for _ in range(60):
        middle = (low + high) / 2
        if cdf(middle) > 1 - confidence:
            low = middle
        else:
            high = middle
    return high


# ---------------------------------------------------------------------------- damage matrix


def _vector_folder(index: Path) -> Path:
    """The collection's vector segment folder (its id, from Chroma's SQLite)."""
    with sqlite3.connect(f"file:{index / 'chroma.sqlite3'}?mode=ro", uri=True) as db:
        (segment,) = db.execute(
            "SELECT s.id FROM segments s JOIN collections c ON s.collection = c.id "
            "WHERE c.name = ? AND s.scope = 'VECTOR'",
            (COLLECTION,),
        ).fetchone()
    return index / str(segment)


def _cut(path: Path, fraction: float) -> None:
    with path.open("r+b") as handle:
        handle.truncate(int(path.stat().st_size * fraction))


DAMAGES: dict[str, tuple[str, Any]] = {
    "none (control)": ("an undamaged copy", lambda folder: None),
    "pickle empty": (
        "index_metadata.pickle emptied",
        lambda folder: _cut(folder / "index_metadata.pickle", 0),
    ),
    "pickle half": (
        "index_metadata.pickle cut to half",
        lambda folder: _cut(folder / "index_metadata.pickle", 0.5),
    ),
    "pickle missing": (
        "index_metadata.pickle removed",
        lambda folder: (folder / "index_metadata.pickle").unlink(),
    ),
    "header empty": ("header.bin emptied", lambda folder: _cut(folder / "header.bin", 0)),
    "data half": (
        "data_level0.bin cut to half",
        lambda folder: _cut(folder / "data_level0.bin", 0.5),
    ),
    "data missing": (
        "data_level0.bin removed",
        lambda folder: (folder / "data_level0.bin").unlink(),
    ),
    "links empty": ("link_lists.bin emptied", lambda folder: _cut(folder / "link_lists.bin", 0)),
    "segment missing": ("the vector segment folder removed", shutil.rmtree),
    "stale segment": (
        "the segment folder copied, more rows added, the old copy put back",
        None,  # made by damage_matrix itself
    ),
}


@dataclass
class MatrixRow:
    """One damage mode's result."""

    mode: str
    description: str
    before: int
    found: str | None  # what the file check says is wrong (None: nothing)
    inspection: Inspection | None
    failure: str | None  # the process crashed or hung

    @property
    def ok(self) -> bool:
        i = self.inspection
        if self.failure is not None or i is None or i.error is not None:
            return False
        whole = i.lost == 0 and i.extra == 0 and i.top1 == i.searched and i.writable
        if self.mode == "none (control)":
            return self.found is None and not i.repairs and whole
        return self.found is not None and bool(i.repairs) and whole


def damage_matrix(workload: Workload, processes: Processes) -> list[MatrixRow]:
    from ollama_rag.storage.chroma_files import check

    s = workload.settings
    base_ids = frozenset(c for _, chunks in workload.template_dump.values() for c in chunks)
    rows: list[MatrixRow] = []
    for number, (name, (description, damage)) in enumerate(DAMAGES.items()):
        if s.damages and name not in s.damages:
            continue
        index = workload.work / "matrix" / f"mode-{number}"
        shutil.copytree(workload.template, index)
        job = replace(workload.jobs["add_files"], index=str(index))
        before = base_ids
        if damage is None:  # stale: the folder as it was, after more rows were written
            folder = _vector_folder(index)
            old = index.parent / f"mode-{number}-old-segment"
            shutil.copytree(folder, old)
            extra = passages(s.extra_passages, language="ja", chars=(40, 80), seed=SEED + 5)
            more = replace(
                workload.jobs["add_texts"],
                index=str(index),
                calls=(TextCall(tuple(p.text for p in extra), "stale-extra.md"),),
                dump=True,
            )
            dump = _run_to_end(processes, more)
            before = frozenset(c for _, chunks in dump.values() for c in chunks)
            shutil.rmtree(folder)
            old.rename(folder)
        else:
            damage(_vector_folder(index))
        found = check(index, COLLECTION)
        failure = None
        inspection: Inspection | None = None
        try:
            inspection = processes.call(
                inspect, job, before, s.sample, SEED + number, timeout=VERIFY_TIMEOUT
            )
        except RuntimeError as err:
            failure = str(err)
        rows.append(MatrixRow(name, description, len(before), found, inspection, failure))
    return rows


# ---------------------------------------------------------------------------- results


@dataclass
class Results:
    """The figures, for the smoke test and for anyone calling :func:`main`."""

    trials: list[Trial] = field(default_factory=list)
    calibrations: dict[str, Calibration] = field(default_factory=dict)
    matrix: list[MatrixRow] = field(default_factory=list)
    verdicts: dict[str, bool] = field(default_factory=dict)
    kept: Path | None = None

    @property
    def outcomes(self) -> Counter[str]:
        return Counter(t.outcome for t in self.trials)

    @property
    def kills(self) -> int:
        return sum(t.killed for t in self.trials)

    @property
    def failure_rate(self) -> float:
        return self.outcomes["failed"] / len(self.trials) if self.trials else math.nan

    @property
    def failure_upper_bound(self) -> float:
        return upper_bound(self.outcomes["failed"], len(self.trials))

    @property
    def damage_kinds(self) -> Counter[str]:
        return Counter(damage_kind(w) for t in self.trials for w in t.repairs)


def _percent(part: int, whole: int) -> str:
    return f"{part / whole:.1%}" if whole else "n/a"


STORE_NOTES = {
    "chroma": "Chroma sync_threshold 100",
    "faiss": "FAISS flat index, its file saved once a tenth of it changed, and on close",
}


def report_calibration(workload: Workload, calibrations: dict[str, Calibration]) -> None:
    s = workload.settings
    print(
        f"workload: add_texts {s.passages} passages of 40-80 characters in {s.calls} calls; "
        f"add_files a folder of {s.files} files of ~{s.chars_per_file} characters; sync the "
        f"template index (the same kind of folder) after it changed; delete half its "
        f"{len(workload.template_dump)} sources; chunk_size {s.chunk_size}, overlap "
        f"{s.chunk_overlap}; hash model {s.dimension}-d, no delay; {STORE_NOTES[s.store]}"
    )
    print(f"calibration: each entry point run uninterrupted {s.calibration_runs} time(s)")
    chroma = s.store == "chroma"
    rows = [
        [
            c.entry,
            str(c.rows),
            *([str(c.rows // 100)] if chroma else []),
            " ".join(f"{p:.2f}" for p in c.phases),
            seconds(c.phase),
        ]
        for c in calibrations.values()
    ]
    saves = ["~HNSW saves"] if chroma else []
    headers = ["entry point", "rows written", *saves, "write phase, runs (s)", "kill window"]
    print(table(headers, rows))


FAISS_FILE_STATES = ("in step", "behind", "missing", "unreadable")


def report_trials(results: Results, total: float) -> None:
    trials = results.trials
    n = len(trials)
    outcomes = results.outcomes
    failed = outcomes["failed"]
    print(
        f"1. Kill loop: {n} trials, SIGKILL at a uniform moment of the write phase; "
        f"{results.kills} writers killed, {n - results.kills} finished before their kill was due"
    )
    rows = [
        [name, str(outcomes[name]), _percent(outcomes[name], n)]
        for name in ("clean", "repaired", "failed")
    ]
    print(table(["outcome", "trials", "rate"], rows))
    bound = results.failure_upper_bound
    how = "rule of three: ~3/n" if failed == 0 else "exact binomial"
    print(
        f"failure rate: {failed}/{n} = {_percent(failed, n)}; 95% upper bound {bound:.2%} "
        f"(one-sided, {how})"
    )
    rows = []
    for entry in ENTRY_POINTS:
        mine = [t for t in trials if t.entry == entry]
        count = Counter(t.outcome for t in mine)
        rows.append(
            [
                entry,
                str(len(mine)),
                str(sum(t.killed for t in mine)),
                str(count["clean"]),
                str(count["repaired"]),
                str(count["failed"]),
                f"{statistics.fmean(t.seconds for t in mine):.2f} s" if mine else "",
            ]
        )
    headers = ["entry point", "trials", "killed", "clean", "repaired", "failed", "time/trial"]
    print(table(headers, rows))
    kinds = results.damage_kinds
    if kinds:
        print("damage seen (from the warnings):")
        for kind, count_ in kinds.most_common():
            print(f"  {count_:4d} x {kind}")
    else:
        print("damage seen: none (no trial needed a repair)")
    files = Counter(t.faiss_file for t in trials if t.faiss_file is not None)
    if files:
        print(
            "the FAISS file as the kill left it: "
            + ", ".join(f"{files[state]} {state}" for state in FAISS_FILE_STATES if files[state])
            + " (behind: caught up on open; missing or unreadable: rebuilt from the docstore)"
        )
    repaired = [t for t in trials if t.repairs]
    if repaired:
        print(
            f"repairs: {len(repaired)}; per repair, mean vectors recovered "
            f"{statistics.fmean(t.kept for t in repaired):.1f}, mean chunks embedded again "
            f"{statistics.fmean(t.embedded for t in repaired):.1f} (totals "
            f"{sum(t.kept for t in repaired)} / {sum(t.embedded for t in repaired)})"
        )
        for t in repaired:
            print(
                f"  trial {t.number} ({t.entry}, kill at {t.delay:.2f} of {t.phase:.2f} s): "
                f"{t.kept} recovered, {t.embedded} embedded again"
            )
    if n:
        each = statistics.fmean(t.seconds for t in trials)
        writer = statistics.fmean(t.writer_seconds for t in trials)
        verifier = statistics.fmean(t.verify_seconds for t in trials)
        print(
            f"time: {seconds(total)} for {n} trials, {each:.2f} s a trial (writer until killed "
            f"{writer:.2f} s, verification {verifier:.2f} s)"
        )
    for t in trials:
        if t.outcome == "failed":
            print(
                f"FAILED trial {t.number} ({t.entry}, kill at {t.delay:.2f} of {t.phase:.2f} s, "
                f"{'killed' if t.killed else 'not killed'}); kept at {t.kept_at} (the index as the "
                "kill left it: as-killed/; after verification: index/)"
            )
            for problem in t.problems:
                print("    " + problem.rstrip().replace("\n", "\n    "))


def report_matrix(matrix: list[MatrixRow]) -> None:
    print(
        "2. Damage matrix: one index, a copy damaged per mode, then opened (searchable = "
        "sampled chunks found first by their own text; writable = a probe added and found)"
    )
    rows = []
    for row in matrix:
        i = row.inspection
        if i is None or i.error is not None or row.failure is not None:
            state = row.failure or "error"
            rows.append([row.mode, "yes" if row.found else "no", state, str(row.before)])
            rows[-1] += ["", "", "", "", "", verdict(False)]
            continue
        rows.append(
            [
                row.mode,
                "yes" if row.found else "no",
                "yes" if i.repairs else "no",
                str(row.before),
                str(i.count),
                str(i.lost),
                "" if i.kept is None else str(i.kept),
                "" if i.embedded is None else str(i.embedded),
                f"{i.top1}/{i.searched}",
                "yes" if i.writable else "no",
                verdict(row.ok),
            ]
        )
    headers = [
        "damage",
        "detected",
        "repaired",
        "chunks before",
        "after",
        "lost",
        "recovered",
        "re-embedded",
        "searchable",
        "writable",
        "verdict",
    ]
    print(table(headers, rows))
    for row in matrix:
        print(f"  {row.mode}: {row.description}; the check says: {row.found or 'nothing wrong'}")
        i = row.inspection
        if i is not None and i.error is not None:
            print("    " + i.error.rstrip().replace("\n", "\n    "))


# ---------------------------------------------------------------------------- main


def main(quick: bool | None = None, trials: int | None = None, store: str | None = None) -> Results:
    s = settings_for(quick, trials, store)
    results = Results()
    print(
        f"mode: {mode(s.quick)}; store: {s.store} ({store_version(s.store)}); trials: "
        f"{s.trials}; seed {SEED}; {machine()}",
        flush=True,
    )
    keep: list[Path] = []
    processes = Processes(s.store)
    server = ServerProcess(MODEL, dimension=s.dimension, seed=SEED)
    try:
        with tempfile.TemporaryDirectory(prefix="ollama-rag-bench-") as tmp:
            work = Path(tmp)
            url = server.wait_ready()
            workload = prepare(s, work, url, processes)
            results.calibrations = calibrate(workload, processes)
            report_calibration(workload, results.calibrations)
            print(flush=True)
            rng = random.Random(SEED)
            began = time.perf_counter()
            for number in range(s.trials):
                entry = ENTRY_POINTS[number % len(ENTRY_POINTS)]
                calibration = results.calibrations[entry]
                delay = rng.uniform(0.0, calibration.phase)
                trial = run_trial(number, entry, delay, calibration, workload, processes, keep)
                results.trials.append(trial)
                server.drain()  # so the server does not hoard the texts it was sent
                done = number + 1
                if not s.quick and (done % 25 == 0 or trial.outcome == "failed"):
                    counts = results.outcomes
                    print(
                        f"  ... trial {done}/{s.trials}: {counts['clean']} clean, "
                        f"{counts['repaired']} repaired, {counts['failed']} failed; "
                        f"{(time.perf_counter() - began) / done:.2f} s a trial",
                        flush=True,
                    )
            total = time.perf_counter() - began
            report_trials(results, total)
            print(flush=True)
            if s.store == "chroma":
                results.matrix = damage_matrix(workload, processes)
                report_matrix(results.matrix)
            else:
                print(
                    "2. Damage matrix: Chroma's vector files only (a FAISS file truncated, "
                    "garbage, missing or stale is opened in tests/test_faiss.py)"
                )
    finally:
        server.close()
    results.kept = keep[0] if keep else None
    results.verdicts["kill loop: no failed trial"] = results.outcomes["failed"] == 0
    for row in results.matrix:
        results.verdicts[f"damage {row.mode}"] = row.ok
    if results.kept is not None:
        print(f"failed trials kept in {results.kept}")
    print()
    print(summary(results.verdicts))
    return results


if __name__ == "__main__":
    main()
