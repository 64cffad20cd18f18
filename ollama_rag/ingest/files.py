"""Files → :class:`~ollama_rag.ingest.units.Unit` s: unchanged files cost a hash, bad files a line.

A file's identity is its bytes plus the options it is loaded with, so re-running with
``encoding=`` fixes a wrongly decoded file. A file whose identity matches the completion marker
stored for its source (from the same folder) is skipped without being decoded. Every entry the
walk found that is not indexed — unreadable, binary, a pipe, a broken link, a second path to a
file — ends up in the :class:`~ollama_rag.ingest.report.IngestReport` with its reason.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from ollama_rag import loading
from ollama_rag.errors import DocumentLoadError, Explained, Fix
from ollama_rag.ingest.report import IngestReport
from ollama_rag.ingest.units import Piece, Unit
from ollama_rag.loading.discovery import escape_name, unescape_name
from ollama_rag.splitting import CJKTextSplitter
from ollama_rag.storage.base import ChunkStore, StoredSource
from ollama_rag.storage.schema import ROOT, sha256

__all__ = ["FilePlanner", "roots_of"]

# How much text a planner keeps to check the language of what was indexed.
SAMPLE_PIECES = 200


class FilePlanner:
    """Plans an ``add_files`` run: which files are new or changed, and their chunks.

    Args:
        store: The index's store (asked once for what it holds of these sources).
        splitter: The index's splitter.
        report: Where skipped and failed files are reported.
        encoding: Force a text encoding instead of detecting it.
        normalize: Apply Unicode NFKC normalisation.
        max_file_bytes: Skip files larger than this.
    """

    def __init__(
        self,
        store: ChunkStore,
        splitter: CJKTextSplitter,
        report: IngestReport,
        *,
        encoding: str | None,
        normalize: bool,
        max_file_bytes: int | None,
    ) -> None:
        self.store = store
        self.splitter = splitter
        self.report = report
        self.encoding = encoding
        self.normalize = normalize
        self.max_file_bytes = max_file_bytes or loading.DEFAULT_MAX_FILE_BYTES
        self.sample: list[str] = []
        self._seen: dict[str, str] = {}

    def units(
        self, entries: list[loading.FileEntry], on_file: Callable[[], None] | None = None
    ) -> Iterator[Unit]:
        """The units of the new and changed files among ``entries``, read one at a time."""
        readable = [e.source for e in entries if e.skip_reason is None and e.error is None]
        stored = self.store.stored_sources(readable)
        for entry in entries:
            if on_file is not None:
                on_file()
            unit = self._unit(entry, stored.get(entry.source, StoredSource()))
            if unit is not None:
                if len(self.sample) < SAMPLE_PIECES:
                    self.sample.extend(p.text for p in unit.pieces[:2])
                yield unit

    def _fail(self, entry: loading.FileEntry, reason: str | Exception) -> None:
        if isinstance(reason, Exception):
            # The message itself, which may be Explained (str() would make it a plain string).
            message = reason.args[0] if reason.args else None
            reason = message if isinstance(message, str) else str(reason)
        self.report.failed.append((entry.source, reason))
        self.report.files_failed += 1

    def _unit(self, entry: loading.FileEntry, known: StoredSource) -> Unit | None:
        if entry.skip_reason is not None:  # never opened: a pipe, a device, a broken link, ...
            self.report.skipped.append((entry.source, entry.skip_reason))
            return None
        if entry.error is not None:
            self._fail(entry, entry.error)
            return None
        if (clash := self._clash(entry, known)) is not None:
            self._fail(entry, clash)
            return None
        limit = self.max_file_bytes
        try:
            size = entry.path.stat().st_size
            if size > limit:  # refused before reading, so a huge file costs no memory
                problem = f"too large ({size} bytes > {limit})"
                why = Explained(
                    f"{problem}; raise max_file_bytes= to index it",
                    problem=problem,
                    fix=Fix("max-file-size", value=str(size)),
                )
                self.report.skipped.append((entry.source, why))
                return None
            data = loading.read_bytes(entry, max_file_bytes=limit)
        except (OSError, DocumentLoadError) as err:
            self._fail(entry, err)
            return None
        # The load options are part of the identity: re-running with encoding= fixes a file.
        digest = sha256(f"{loading.file_hash(data)}\x1f{self.encoding}\x1f{self.normalize}")
        if digest in known.markers and entry.root in known.roots:
            self.report.files_unchanged += 1
            return None
        reason = loading.classify(entry, data, max_file_bytes=limit, encoding=self.encoding)
        if reason is not None:
            self.report.skipped.append((entry.source, reason))
            return None
        try:
            doc = loading.read_document(
                entry, data, encoding=self.encoding, normalize=self.normalize, max_file_bytes=limit
            )
        except DocumentLoadError as err:
            self._fail(entry, err)
            return None
        pieces = [
            Piece(text, start, start + len(text), loading.span_metadata(doc.spans, start))
            for start, text in self.splitter.split_text_with_offsets(doc.text)
        ]
        metadata = {**doc.metadata, ROOT: entry.root}
        return Unit(entry.source, pieces, unit_hash=digest, metadata=metadata)

    def _clash(self, entry: loading.FileEntry, known: StoredSource) -> str | None:
        """Why this file would overwrite another file with the same relative path, if it would.

        A file stored from another folder whose file is gone counts as moved, not as a clash.
        """
        first = self._seen.setdefault(entry.source, entry.root)
        others = [first] if first != entry.root else []
        others += [
            root
            for root in sorted(known.roots - {entry.root})
            if (Path(unescape_name(root)) / unescape_name(entry.source)).exists()
        ]
        if not others:
            return None
        problem = (
            f"{entry.root}/{entry.source} has the same source name as {others[0]}/{entry.source}, "
            "and one would replace the other in the index"
        )
        return Explained(
            f"{problem}: add their common parent folder instead, or use a separate collection=",
            problem=problem,
            fix=Fix("clash"),
        )


def roots_of(paths: Iterable[str | os.PathLike[str]]) -> list[str]:
    """The folders among ``paths``, as the POSIX roots their files are recorded under."""
    resolved = [Path(p).expanduser().resolve() for p in paths]
    return [escape_name(r.as_posix()) for r in resolved if r.is_dir()]
