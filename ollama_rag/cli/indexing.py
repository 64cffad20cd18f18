"""Commands that write an index: ``index``, ``delete``, ``migrate``."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any, Literal

import click

from ollama_rag.cli.errors import Call, say
from ollama_rag.cli.options import (
    ByteSize,
    Output,
    base_url_option,
    collection_option,
    db_option,
    json_option,
    open_index,
    quiet_option,
)

if TYPE_CHECKING:
    from ollama_rag.ingest.report import IngestReport

__all__ = ["delete_command", "index_command", "migrate_command"]

INTERRUPTED_INDEX = (
    "Interrupted. Kept what was committed: {files} file(s) ({chunks} chunks written in this "
    "run; the index holds {total}). Run the same command again to resume: committed files are "
    "skipped and nothing is embedded twice."
)
INTERRUPTED_MIGRATE = (
    "Interrupted. The index still uses {model}. Run the same command again to resume: the "
    "chunks re-embedded so far are kept."
)


def _encoding(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """Refuse an unknown codec before anything is opened."""
    if value is None:
        return None
    from ollama_rag.errors import ConfigError
    from ollama_rag.loading.encoding import check_codec

    try:
        check_codec(value)
    except ConfigError as err:
        raise click.BadParameter(err.problem, ctx, param) from None
    return value


def _report_lines(report: IngestReport, call: Call) -> tuple[list[str], list[str]]:
    """Failed and skipped files, one line each; files missing the same extra share one line."""
    failed, skipped = [], []
    missing: dict[str, list[str]] = {}
    for source, reason in report.failed:
        fix = getattr(reason, "fix", None)
        if fix is not None and fix.action == "install":
            missing.setdefault(str(fix.value), []).append(source)
        else:
            failed.append(f"  failed  {source}: {say(reason, call)}")
    for extra, sources in missing.items():
        names = ", ".join(sources[:3]) + (
            f" and {len(sources) - 3} more" if len(sources) > 3 else ""
        )
        failed.append(
            f"  failed  {len(sources)} file(s) need the [{extra}] extra ({names}): "
            f"pip install 'ollama-rag[{extra}]'"
        )
    skipped = [f"  skipped {source}: {say(reason, call)}" for source, reason in report.skipped]
    return failed, skipped


def _report_record(report: IngestReport, call: Call) -> dict[str, Any]:
    fields = dataclasses.asdict(report)
    fields["failed"] = [{"source": s, "reason": say(r, call)} for s, r in report.failed]
    fields["skipped"] = [{"source": s, "reason": say(r, call)} for s, r in report.skipped]
    return fields


@click.command("index")
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True))
@db_option()
@collection_option
@click.option(
    "--model", default=None, metavar="NAME", help="Embedding model (needed to create the index)."
)
@base_url_option
@click.option(
    "--glob",
    default="**/*",
    show_default=True,
    metavar="PATTERN",
    help="Files to consider in folders.",
)
@click.option(
    "--exclude",
    multiple=True,
    metavar="PATTERN",
    help="Glob of relative paths to leave out. Repeatable.",
)
@click.option("--sync", is_flag=True, help="Also drop chunks of files deleted from the folders.")
@click.option("--pull", is_flag=True, help="Pull the model first if the server lacks it.")
@click.option(
    "--analyzer",
    default=None,
    metavar="NAME",
    help="Lexical analyser: cjk-bigram (default), sudachi, janome, jieba or kiwi (recorded).",
)
@click.option(
    "--store",
    type=click.Choice(["chroma", "faiss"]),
    default=None,
    help="Vector store of a new index (default chroma, or $OLLAMA_RAG_STORE; recorded).",
)
@click.option(
    "--faiss-index",
    type=click.Choice(["flat", "hnsw"]),
    default=None,
    help="FAISS index type of a new FAISS index: flat (exact, default) or hnsw (recorded).",
)
@click.option(
    "--encoding",
    default=None,
    metavar="CODEC",
    callback=_encoding,
    help="Decode text files with this codec (e.g. cp932) instead of detecting it.",
)
@click.option("--normalize", is_flag=True, help="Apply Unicode NFKC (full-width to half-width).")
@click.option(
    "--max-file-size",
    type=ByteSize(),
    default=None,
    help="Skip files larger than this, e.g. 200M (default 50M).",
)
@json_option
@quiet_option
@click.pass_context
def index_command(
    ctx: click.Context,
    paths: tuple[str, ...],
    db: str,
    collection: str,
    model: str | None,
    base_url: str | None,
    glob: str,
    exclude: tuple[str, ...],
    sync: bool,
    pull: bool,
    analyzer: str | None,
    store: Literal["chroma", "faiss"] | None,
    faiss_index: Literal["flat", "hnsw"] | None,
    encoding: str | None,
    normalize: bool,
    max_file_size: int | None,
    as_json: bool,
    quiet: bool,
) -> None:
    """Index files and folders into the index at --db; unchanged files cost nothing.

    Creates the index when --model is given and there is none yet. Ctrl-C keeps every file
    committed so far; running the same command again resumes. Exits 1 when a file could not
    be read (the others are indexed).
    """
    from ollama_rag.index import RagIndex
    from ollama_rag.ingest.report import IngestReport

    out = Output(as_json, quiet)
    call = Call.of(ctx)
    report = IngestReport()
    with RagIndex(
        db,
        model=model,
        base_url=base_url,
        collection=collection,
        pull=pull,
        analyzer=analyzer,
        store=store,
        faiss_index=faiss_index,
    ) as index:
        before = index.count()
        try:
            index.add_files(
                list(paths),
                glob=glob,
                exclude=list(exclude) or None,
                delete_missing=sync,
                encoding=encoding,
                normalize=normalize,
                max_file_bytes=max_file_size,
                progress=out.progress,
                report=report,
            )
        except KeyboardInterrupt:
            total = index.count()
            if as_json:
                out.record({**_report_record(report, call), "interrupted": True, "chunks": total})
            click.echo(
                INTERRUPTED_INDEX.format(
                    files=report.files_added + report.files_updated,
                    chunks=max(total - before, 0),
                    total=total,
                ),
                err=True,
            )
            raise SystemExit(130) from None
        total, label = index.count(), index.manifest.model_label
    failed, skipped = _report_lines(report, call)
    if as_json:
        out.record({**_report_record(report, call), "interrupted": False, "chunks": total})
    else:
        out.show(str(report).splitlines()[0])
        for line in [*failed, *skipped]:
            out.show(line)
        out.show(f"{total} chunks in {db} ({label})")
        if quiet:
            for line in failed:  # what went wrong is never quiet
                click.echo(line, err=True)
    if report.files_failed:
        raise SystemExit(1)


@click.command("delete")
@db_option()
@collection_option
@click.option(
    "--source",
    "sources",
    multiple=True,
    metavar="SOURCE",
    help="A source, as `ollama-rag sources` lists it. Repeatable.",
)
@click.option("--id", "ids", multiple=True, metavar="ID", help="A chunk id. Repeatable.")
@base_url_option
@quiet_option
def delete_command(
    db: str,
    collection: str,
    sources: tuple[str, ...],
    ids: tuple[str, ...],
    base_url: str | None,
    quiet: bool,
) -> None:
    """Delete every chunk of a source (--source), or chunks by id (--id).

    Says what was removed. Exits 1 when a source or id was not in the index (the others are
    deleted).
    """
    if not sources and not ids:
        msg = "nothing to delete: pass --source SOURCE or --id ID (each repeatable)"
        raise click.UsageError(msg)
    out = Output(quiet=quiet)
    missing = 0
    with open_index(db, collection, base_url, read_only=False) as index:
        for source in dict.fromkeys(sources):
            removed = index.delete(source=source)
            if removed:
                out.show(f"removed {removed} chunks of {source}")
            else:
                missing += 1
                click.echo(f"no source {source} in the index (see: ollama-rag sources)", err=True)
        if ids:
            wanted = list(dict.fromkeys(ids))
            removed = index.delete(ids=wanted)
            out.show(f"removed {removed} of {len(wanted)} chunk id(s)")
            if removed < len(wanted):
                missing += 1
                click.echo(f"{len(wanted) - removed} chunk id(s) were not in the index", err=True)
        out.show(f"{index.count()} chunks left in {db}")
    if missing:
        raise SystemExit(1)


@click.command("migrate")
@click.argument("model")
@db_option()
@collection_option
@base_url_option
@click.option("--pull", is_flag=True, help="Pull MODEL first if the server lacks it.")
@quiet_option
def migrate_command(
    model: str, db: str, collection: str, base_url: str | None, pull: bool, quiet: bool
) -> None:
    """Re-embed the index at --db with MODEL (crash-safe; run again to resume).

    The stored chunk texts are embedded again (no source files needed); the index switches to
    MODEL only once every chunk has its new vector, so an interruption leaves it on the old
    model, and running the command again resumes.
    """
    from ollama_rag.errors import EmbeddingModelMismatchError

    out = Output(quiet=quiet)
    try:
        index = open_index(db, collection, base_url, read_only=False)
    except EmbeddingModelMismatchError:
        # The recorded model itself changed (re-pulled): only a migration can open it now.
        index = open_index(
            db, collection, base_url, read_only=False, model=model, on_mismatch="migrate"
        )
    with index:
        old = index.manifest.model_label
        try:
            if pull:
                from ollama_rag.pull import ensure_model

                for url in index.base_urls:
                    ensure_model(model, base_url=url, progress=out.progress is None)
            report = index.migrate(model, progress=out.progress)
        except KeyboardInterrupt:
            click.echo(INTERRUPTED_MIGRATE.format(model=old), err=True)
            raise SystemExit(130) from None
        out.show(f"{index.count()} chunks in {db} now use {index.manifest.model_label}")
        if report.chunks_embedded or report.chunks_skipped:
            out.show(
                f"{report.chunks_embedded} chunks embedded, {report.chunks_skipped} reused, "
                f"in {report.seconds:.1f} s"
            )
