"""Commands that only read an index: ``search``, ``info``, ``sources``, ``export``, ``eval``.

Each opens the index read-only: a private snapshot, so it works while another process is
indexing into the same directory, and nothing on the disk changes. A ``--db`` that holds no
index is refused before anything is created.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from ollama_rag.cli.options import (
    Output,
    base_url_option,
    collection_option,
    db_option,
    dumps,
    json_option,
    open_index,
    quiet_option,
)
from ollama_rag.cli.show import SourceLines, human_size, location, snippet

if TYPE_CHECKING:
    from ollama_rag.index import RagIndex

__all__ = [
    "eval_command",
    "export_command",
    "info_command",
    "search_command",
    "sources_command",
]

# Search results: the indent of the snippet under its heading line.
_INDENT = "    "


@click.command("search")
@click.argument("query")
@db_option()
@collection_option
@base_url_option
@click.option(
    "-k", "k", default=4, show_default=True, type=click.IntRange(min=1), help="Results to show."
)
@click.option(
    "--mode",
    type=click.Choice(["hybrid", "dense", "lexical"]),
    default="hybrid",
    show_default=True,
    help="Dense (embeddings), lexical (BM25 over CJK-aware terms) or both fused.",
)
@json_option
def search_command(
    query: str, db: str, collection: str, base_url: str | None, k: int, mode: str, as_json: bool
) -> None:
    """Show the chunks of the index at --db that best match QUERY.

    Each result: rank, score, where it is (file:line, PDF page, heading), and the part of the
    chunk that matches, on one line. --mode lexical needs no Ollama.
    """
    out = Output(as_json)
    lines = SourceLines()
    width = max(40, shutil.get_terminal_size((100, 24)).columns - len(_INDENT))
    with open_index(db, collection, base_url) as index:
        hits = index.search_with_scores(query, k=k, mode=mode, include_root=True)  # type: ignore[arg-type]
    for rank, (doc, score) in enumerate(hits, start=1):
        metadata = dict(doc.metadata)
        line = lines.line(metadata, doc.page_content)
        metadata.pop("root", None)  # an absolute path of the indexing machine: not output
        source = str(metadata.get("source", ""))
        if as_json:
            out.record(
                {
                    "rank": rank,
                    "score": score,
                    "found_by": metadata.get("found_by"),
                    "id": metadata.get("id"),
                    "source": source,
                    "start_index": metadata.get("start_index"),
                    "end_index": metadata.get("end_index"),
                    "line": line,
                    "page": metadata.get("page"),
                    "heading": metadata.get("heading"),
                    "text": doc.page_content,
                    "metadata": metadata,
                }
            )
            continue
        found_by = f"  [{metadata['found_by']}]" if mode == "hybrid" else ""
        click.echo(f"{rank:>2}. {score:.4f}  {location(source, metadata, line)}{found_by}")
        click.echo(_INDENT + snippet(doc.page_content, query, width))
    if not hits and not as_json:
        click.echo("no results", err=True)


def _info(index: RagIndex, db: str) -> dict[str, Any]:
    """Everything ``info`` reports, as its JSON object."""
    from ollama_rag.storage.base import folder_size
    from ollama_rag.storage.kinds import store_version

    sources = index.sources()
    usage = index.disk_usage()
    return {
        "db": db,
        "collection": index.collection_name,
        **dataclasses.asdict(index.manifest),
        "store_version": store_version(index.manifest.store),
        "chunks": index.count(),
        "sources": len(sources),
        "incomplete_sources": sum(not s.complete for s in sources),
        "disk_bytes": {"total": folder_size(db), **usage},
        "collections": [
            {
                "name": c.name,
                "model": c.manifest.model if c.manifest else None,
                "dimension": c.manifest.dimension if c.manifest else None,
                "chunks": c.chunks,
            }
            for c in index.collections()
        ],
    }


def _info_lines(info: dict[str, Any]) -> Iterator[str]:
    disk = info["disk_bytes"]
    parts = ", ".join(f"{name} {human_size(disk[name])}" for name in disk if name != "total")
    rows = [
        ("index", f"{info['db']} (collection {info['collection']!r})"),
        (
            "model",
            f"{info['model']} (digest {info['digest'].removeprefix('sha256:')[:12] or 'unknown'}, "
            f"{info['dimension']}-d, context {info['context_length']} tokens)",
        ),
        ("prefixes", f"document {info['document_prefix']!r}, query {info['query_prefix']!r}"),
        (
            "chunking",
            f"{info['splitter']}, {info['chunk_size']} chars, overlap {info['chunk_overlap']}",
        ),
        ("analyzer", info["analyzer"] or "cjk-bigram (default)"),
        ("store", f"Chroma {info['store_version']}, embedded"),
        ("chunks", f"{info['chunks']} from {info['sources']} sources"),
        (
            "on disk",
            f"{human_size(disk['total'])} in {info['db']}" + (f" ({parts})" if parts else ""),
        ),
        ("created", f"{info['created_at']} (ollama-rag {info['library_version'] or '?'})"),
        ("updated", info["updated_at"]),
    ]
    if info["incomplete_sources"]:
        rows.insert(
            7,
            (
                "incomplete",
                f"{info['incomplete_sources']} source(s) half-written by an interrupted run; "
                "run the same index command again to finish them",
            ),
        )
    width = max(len(name) for name, _ in rows)
    yield from (f"{name:<{width}}  {value}" for name, value in rows)
    yield f"collections in {info['db']}:"
    for c in info["collections"]:
        what = (
            f"{c['model']}, {c['dimension']}-d, {c['chunks']} chunks"
            if c["model"]
            else f"not an ollama-rag index ({c['chunks']} records)"
        )
        mark = "  (this one)" if c["name"] == info["collection"] else ""
        yield f"  {c['name']}: {what}{mark}"


@click.command("info")
@db_option()
@collection_option
@json_option
def info_command(db: str, collection: str, as_json: bool) -> None:
    """Show the index at --db: its model and settings, contents, size on disk, neighbours.

    Needs no Ollama.
    """
    with open_index(db, collection) as index:
        info = _info(index, db)
    if as_json:
        Output(as_json).record(info)
        return
    for line in _info_lines(info):
        click.echo(line)


@click.command("sources")
@db_option()
@collection_option
@json_option
def sources_command(db: str, collection: str, as_json: bool) -> None:
    """List the sources in the index at --db, with their chunk counts.

    A source marked incomplete was left half-written by an interrupted run; running the same
    index command again finishes it. Needs no Ollama.
    """
    out = Output(as_json)
    with open_index(db, collection) as index:
        sources = index.sources()
    for s in sources:
        if as_json:
            out.record({"source": s.source, "chunks": s.chunks, "complete": s.complete})
        else:
            mark = "" if s.complete else "  (incomplete: run the index command again)"
            click.echo(f"{s.chunks:>7}  {s.source}{mark}")
    if not as_json:
        chunks = sum(s.chunks for s in sources)
        click.echo(f"{len(sources)} sources, {chunks} chunks", err=True)


@contextmanager
def _written(output: str | None) -> Iterator[Callable[[str], object]]:
    """Write to stdout, or to a file that appears whole once the block succeeds (or never)."""
    if output is None:
        yield lambda text: click.echo(text, nl=False)
        return
    target = Path(output)
    try:
        fd, temporary = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    except OSError as err:
        raise click.FileError(output, hint=err.strerror or str(err)) from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as file:
            yield file.write
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _vector(values: Any) -> list[float]:
    # 9 significant digits give back the same float32; repr of its float64 would print 17.
    return [float(format(v, ".9g")) for v in values]


@click.command("export")
@db_option()
@collection_option
@click.option("--vectors", is_flag=True, help="Include each chunk's vector (L2-normalised).")
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, writable=True),
    default=None,
    help="Write to FILE (created whole, or not at all) instead of stdout.",
)
@quiet_option
def export_command(
    db: str, collection: str, vectors: bool, output: str | None, quiet: bool
) -> None:
    """Write every chunk of the index at --db as JSON Lines: id, text, metadata (, vector).

    Needs no Ollama.
    """
    count = 0
    with open_index(db, collection) as index, _written(output) as write:
        for chunk in index.iter_chunks(vectors=vectors):
            record: dict[str, Any] = {
                "id": chunk.id,
                "text": chunk.text,
                "metadata": chunk.metadata,
            }
            if vectors and chunk.vector is not None:
                record["vector"] = _vector(chunk.vector)
            write(dumps(record) + "\n")
            count += 1
    if output is not None:
        Output(quiet=quiet).say(f"{count} chunks written to {output}")


def _cutoffs(ctx: click.Context, param: click.Parameter, value: str) -> tuple[int, ...]:
    try:
        cuts = tuple(int(part) for part in value.split(","))
    except ValueError:
        cuts = ()
    if not cuts or min(cuts) < 1:
        raise click.BadParameter(f"{value!r} is not a list of whole numbers such as 1,5,10")
    return cuts


@click.command("eval")
@click.argument("file", type=click.Path(dir_okay=False))
@db_option()
@collection_option
@click.option(
    "--mode",
    type=click.Choice(["hybrid", "dense", "lexical"]),
    default=None,
    help="Search mode to evaluate (default: hybrid).",
)
@click.option(
    "-k",
    "--k",
    "k",
    default="1,5,10",
    show_default=True,
    callback=_cutoffs,
    help="Cut-offs for hit@k and recall@k.",
)
@click.option("--details", is_flag=True, help="Also show each question's rank (misses in text).")
@base_url_option
@json_option
@quiet_option
def eval_command(
    file: str,
    db: str,
    collection: str,
    mode: str | None,
    k: tuple[int, ...],
    details: bool,
    base_url: str | None,
    as_json: bool,
    quiet: bool,
) -> None:
    """Measure the index at --db on FILE, labelled questions in JSON Lines.

    Each line is {"question": ..., "answer": ...} or {"question": ..., "source": ...,
    "start": ..., "end": ...}; see docs/evaluation.md. Prints hit@k, recall@k, MRR@10 and
    nDCG@10.
    """
    from ollama_rag.evaluation import load_questions

    out = Output(as_json, quiet)
    questions = load_questions(file)  # a bad file fails before the index is opened
    with open_index(db, collection, base_url) as index:
        result = index.evaluate(questions, k=k, mode=mode, progress=out.progress)
    if as_json:
        out.record(result.to_dict(details=details))
        return
    click.echo(str(result))
    if details:
        for miss in result.misses():
            click.echo(f"  miss: {miss.question.question}  (labels: {'; '.join(miss.labels)})")
