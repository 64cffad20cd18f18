"""What one ingestion call did: :class:`IngestReport`."""

from __future__ import annotations

from dataclasses import dataclass, field

from ollama_rag.display import Html, escape, table

__all__ = ["IngestReport"]


@dataclass
class IngestReport:
    """What one ``add_files``/``sync`` call did.

    Attributes:
        files_added: Sources new to the index.
        files_updated: Sources whose content changed and was replaced.
        files_unchanged: Sources skipped because their content is already indexed.
        files_deleted: Sources removed because their file disappeared (``delete_missing``).
        files_failed: Files that could not be read or decoded (see ``failed``).
        chunks_embedded: Chunks sent to Ollama.
        chunks_skipped: Chunks already stored, or whose vector was reused.
        embedding_requests: ``/api/embed`` requests made (including retries).
        seconds: Wall time.
        skipped: ``(source, reason)`` for entries not indexed on purpose: unsupported, empty,
            binary or too large files, pipes, sockets, devices, broken links, symlink loops,
            second paths to a file already indexed.
        failed: ``(source, reason)`` for files that could not be read or decoded, and folders
            that could not be listed.
    """

    files_added: int = 0
    files_updated: int = 0
    files_unchanged: int = 0
    files_deleted: int = 0
    files_failed: int = 0
    chunks_embedded: int = 0
    chunks_skipped: int = 0
    embedding_requests: int = 0
    seconds: float = 0.0
    skipped: list[tuple[str, str]] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)

    def __str__(self) -> str:
        line = (
            f"{self.files_added} added, {self.files_updated} updated, "
            f"{self.files_unchanged} unchanged, {self.files_deleted} deleted, "
            f"{self.files_failed} failed, {len(self.skipped)} skipped; "
            f"{self.chunks_embedded} chunks embedded, {self.chunks_skipped} reused; "
            f"{self.embedding_requests} requests in {self.seconds:.1f} s"
        )
        problems = [f"  failed  {s}: {r}" for s, r in self.failed]
        problems += [f"  skipped {s}: {r}" for s, r in self.skipped]
        return "\n".join([line, *problems])

    def _repr_html_(self) -> str:
        problems = [("failed", *item) for item in self.failed]
        problems += [("skipped", *item) for item in self.skipped]
        caption = Html(f"<b>IngestReport</b>: {escape(str(self).splitlines()[0])}")
        return table(problems, head=("", "source", "reason") if problems else (), caption=caption)
