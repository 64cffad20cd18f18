"""The ``ollama-rag`` command. Expected failures (``RagError``) print one line and exit 1."""

from __future__ import annotations

import click

from ollama_rag._version import __version__
from ollama_rag.errors import RagError


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="ollama-rag")
def cli() -> None:
    """Local RAG over CJK and English documents with Ollama and Chroma."""


@cli.command()
@click.option("--model", default=None, help="Embedding model on a real Ollama (default bge-m3).")
@click.option("--base-url", default=None, help="Ollama URL (default $OLLAMA_HOST or localhost).")
def demo(model: str | None, base_url: str | None) -> None:
    """Index the bundled Japanese, Chinese, Korean and English samples and answer queries.

    Uses a real Ollama when one is reachable with bge-m3 pulled; otherwise starts LocalOllama
    with a real multilingual model, so it runs on any machine.
    """
    from ollama_rag.demo.runner import run_demo

    result = run_demo(model=model, base_url=base_url, echo=click.echo)
    if not result.guard_message:
        raise click.ClickException("the model guard did not refuse a second model")


_db = click.option(
    "--db",
    "db",
    required=True,
    type=click.Path(file_okay=False),
    help="Index directory (created by `index` if missing).",
)
_base_url = click.option(
    "--base-url", default=None, help="Ollama URL (default $OLLAMA_HOST or localhost)."
)


@cli.command("index")
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True))
@_db
@click.option("--model", default=None, help="Embedding model (needed to create the index).")
@_base_url
@click.option("--glob", default="**/*", show_default=True, help="Files to consider in folders.")
@click.option("--exclude", multiple=True, help="Glob of relative paths to leave out. Repeatable.")
@click.option("--sync", is_flag=True, help="Also drop chunks of files deleted from the folders.")
@click.option("--pull", is_flag=True, help="Pull the model first if the server lacks it.")
@click.option(
    "--analyzer",
    default=None,
    help="Lexical analyser: cjk-bigram (default), sudachi, janome, jieba or kiwi (recorded).",
)
def index_command(
    paths: tuple[str, ...],
    db: str,
    model: str | None,
    base_url: str | None,
    glob: str,
    exclude: tuple[str, ...],
    sync: bool,
    pull: bool,
    analyzer: str | None,
) -> None:
    """Index files and folders into the index at --db; unchanged files cost nothing."""
    from ollama_rag.index import RagIndex

    with RagIndex(db, model=model, base_url=base_url, pull=pull, analyzer=analyzer) as index:
        report = index.add_files(
            list(paths), glob=glob, exclude=list(exclude) or None, delete_missing=sync
        )
        click.echo(str(report))
        click.echo(f"{index.count()} chunks in {db} ({index.manifest.model_label})")
    if report.files_failed:
        raise SystemExit(1)


@cli.command("search")
@click.argument("query")
@_db
@_base_url
@click.option("-k", "k", default=4, show_default=True, help="How many chunks to show.")
@click.option(
    "--mode",
    type=click.Choice(["hybrid", "dense", "lexical"]),
    default="hybrid",
    show_default=True,
    help="Dense (embeddings), lexical (BM25 over CJK-aware terms) or both fused.",
)
def search_command(query: str, db: str, base_url: str | None, k: int, mode: str) -> None:
    """Show the chunks of the index at --db that best match QUERY."""
    from ollama_rag.index import RagIndex

    with RagIndex(db, base_url=base_url) as index:
        for doc, score in index.search_with_scores(query, k=k, mode=mode):  # type: ignore[arg-type]
            where = f"{doc.metadata['source']}:{doc.metadata.get('start_index', '?')}"
            click.echo(f"{score:8.4f}  {where}  ({doc.metadata['found_by']})")
            click.echo("        " + " ".join(doc.page_content.split()))


def _cutoffs(ctx: click.Context, param: click.Parameter, value: str) -> tuple[int, ...]:
    try:
        cuts = tuple(int(part) for part in value.split(","))
    except ValueError:
        cuts = ()
    if not cuts or min(cuts) < 1:
        raise click.BadParameter(f"{value!r} is not a list of whole numbers such as 1,5,10")
    return cuts


@cli.command("eval")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--db", "db", required=True, type=click.Path(file_okay=False), help="Index.")
@click.option("--collection", default="default", show_default=True, help="Collection name.")
@click.option(
    "--mode",
    type=click.Choice(["hybrid", "dense", "lexical"]),
    default=None,
    help="Search mode to evaluate (default: the index's default).",
)
@click.option(
    "--k",
    "k",
    default="1,5,10",
    show_default=True,
    callback=_cutoffs,
    help="Cut-offs for hit@k and recall@k.",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.option("--details", is_flag=True, help="Also show each question's rank (misses in text).")
@_base_url
def eval_command(
    file: str,
    db: str,
    collection: str,
    mode: str | None,
    k: tuple[int, ...],
    as_json: bool,
    details: bool,
    base_url: str | None,
) -> None:
    """Measure the index at --db on FILE, labelled questions in JSON Lines.

    Each line is {"question": ..., "answer": ...} or {"question": ..., "source": ...,
    "start": ..., "end": ...}; see docs/evaluation.md. Prints hit@k, recall@k, MRR@10 and
    nDCG@10.
    """
    import json
    from pathlib import Path

    from ollama_rag.errors import IndexNotFoundError
    from ollama_rag.evaluation import load_questions
    from ollama_rag.index import RagIndex

    questions = load_questions(file)  # a bad file fails before the index is opened
    # Opening a directory creates an empty index in it: never for a command that only reads.
    directory = Path(db)
    if not directory.is_dir() or not any(directory.iterdir()):
        msg = f"no index at {db}; build one first: ollama-rag index PATH --db {db} --model MODEL"
        raise click.ClickException(msg)
    try:
        index = RagIndex(db, base_url=base_url, collection=collection)
    except IndexNotFoundError:
        msg = (
            f"no index in collection {collection!r} at {db}; build one first: "
            f"ollama-rag index PATH --db {db} --model MODEL"
        )
        raise click.ClickException(msg) from None
    with index:
        result = index.evaluate(questions, k=k, mode=mode)
    if as_json:
        click.echo(json.dumps(result.to_dict(details=details), ensure_ascii=False))
        return
    click.echo(str(result))
    if details:
        for miss in result.misses():
            click.echo(f"  miss: {miss.question.question}  (labels: {'; '.join(miss.labels)})")


@cli.command("migrate")
@click.argument("model")
@click.option(
    "--db", "db", required=True, type=click.Path(exists=True, file_okay=False), help="Index."
)
@_base_url
def migrate_command(model: str, db: str, base_url: str | None) -> None:
    """Re-embed the index at --db with MODEL (crash-safe; run again to resume)."""
    from ollama_rag.index import RagIndex

    with RagIndex(db, base_url=base_url, model=model, on_mismatch="migrate") as index:
        click.echo(f"{index.count()} chunks in {db} now use {index.manifest.model_label}")


@cli.command("serve-local")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind.")
@click.option("--port", default=11434, show_default=True, type=int, help="Port (0 = any free).")
@click.option(
    "--model",
    "models",
    multiple=True,
    metavar="SPEC",
    help="A model to serve, e.g. 'use-multilingual' or 'bge-m3=hash:1024:8192'. Repeatable.",
)
def serve_local(host: str, port: int, models: tuple[str, ...]) -> None:
    """Run LocalOllama, an Ollama-protocol server for tests and demos, until Ctrl-C."""
    from ollama_rag.testing import parse_model_spec, run_server

    for spec in models:
        try:
            parse_model_spec(spec)
        except ValueError as err:
            raise click.BadParameter(str(err), param_hint="--model") from None
    try:
        run_server(host=host, port=port, model_specs=list(models))
    except OSError as err:
        msg = f"cannot serve on {host}:{port} ({err.strerror or err}); pick another --port"
        raise click.ClickException(msg) from None


@cli.command("doctor")
@click.option("--base-url", default=None, help="Ollama URL (default $OLLAMA_HOST or localhost).")
@click.option(
    "--model",
    default=None,
    help="Embedding model to check (default bge-m3, else the first one on the server).",
)
@click.option(
    "--path",
    default=None,
    type=click.Path(dir_okay=True, file_okay=True, path_type=str),
    help="Index directory to check (writable? which models do its collections record?).",
)
def doctor_command(base_url: str | None, model: str | None, path: str | None) -> None:
    """Check Ollama, the embedding model, sqlite3, chromadb and the index directory.

    Prints one line per check, with the command that fixes each failure under it. Exits 0
    when nothing failed and 1 otherwise, so scripts and CI can gate on it.
    """
    from ollama_rag.doctor import doctor

    report = doctor(base_url=base_url, model=model, path=path)
    click.echo(str(report))
    if not report.ok:
        # SystemExit, not ctx.exit(): main() runs click with standalone_mode=False, which
        # would turn ctx.exit(1) into a return value and the process would exit 0.
        raise SystemExit(1)


def main() -> None:
    """Entry point of the ``ollama-rag`` console script."""
    try:
        cli(standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        raise SystemExit(130) from None
    except click.ClickException as err:
        err.show()
        raise SystemExit(err.exit_code) from None
    except RagError as err:
        click.echo(f"Error: {err}", err=True)
        raise SystemExit(1) from None
