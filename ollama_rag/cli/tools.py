"""Commands around an index: ``doctor``, ``demo``, ``serve-local``."""

from __future__ import annotations

import dataclasses

import click

from ollama_rag.cli.options import Output, base_url_option, db_option, json_option

__all__ = ["demo_command", "doctor_command", "serve_local_command"]


@click.command("doctor")
@base_url_option
@click.option(
    "--model",
    default=None,
    metavar="NAME",
    help="Embedding model to check (default bge-m3, else the first one on the server).",
)
@db_option(required=False, names=("--db", "--path"))
@json_option
def doctor_command(base_url: str | None, model: str | None, db: str | None, as_json: bool) -> None:
    """Check Ollama, the embedding model, sqlite3, chromadb and the index directory.

    Prints one line per check, with the command that fixes each failure under it. Exits 0
    when nothing failed and 1 otherwise, so scripts and CI can gate on it. --path is an older
    name of --db.
    """
    from ollama_rag.doctor import doctor

    report = doctor(base_url=base_url, model=model, path=db)
    if as_json:
        Output(as_json).record(
            {
                "ok": report.ok,
                "base_url": report.base_url,
                "model": report.model,
                "checks": [dataclasses.asdict(check) for check in report.checks],
            }
        )
    else:
        click.echo(str(report))
    if not report.ok:
        # SystemExit, not ctx.exit(): main() runs click with standalone_mode=False, which
        # would turn ctx.exit(1) into a return value and the process would exit 0.
        raise SystemExit(1)


@click.command("demo")
@click.option(
    "--model",
    default=None,
    metavar="NAME",
    help="Embedding model on a real Ollama (default bge-m3).",
)
@base_url_option
def demo_command(model: str | None, base_url: str | None) -> None:
    """Index the bundled Japanese, Chinese, Korean and English samples and answer queries.

    Uses a real Ollama when one is reachable with bge-m3 pulled; otherwise starts LocalOllama
    with a real multilingual model (the [local] extra), so it runs on any machine.
    """
    from ollama_rag.demo.runner import run_demo

    result = run_demo(model=model, base_url=base_url, echo=click.echo)
    if not result.guard_message:
        raise click.ClickException("the model guard did not refuse a second model")


@click.command("serve-local")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind.")
@click.option("--port", default=11434, show_default=True, type=int, help="Port (0 = any free).")
@click.option(
    "--model",
    "models",
    multiple=True,
    metavar="SPEC",
    help="A model to serve, e.g. 'use-multilingual' or 'bge-m3=hash:1024:8192'. Repeatable.",
)
def serve_local_command(host: str, port: int, models: tuple[str, ...]) -> None:
    """Run LocalOllama, an Ollama-protocol server for tests and demos, until Ctrl-C."""
    from ollama_rag.errors import MissingExtraError
    from ollama_rag.testing import parse_model_spec, run_server

    for spec in models:
        try:
            parse_model_spec(spec)
        except MissingExtraError:
            raise  # one line naming the pip install, like every missing extra
        except ValueError as err:
            raise click.BadParameter(str(err), param_hint="--model") from None
    try:
        run_server(host=host, port=port, model_specs=list(models))
    except OSError as err:
        msg = f"cannot serve on {host}:{port} ({err.strerror or err}); pick another --port"
        raise click.ClickException(msg) from None
