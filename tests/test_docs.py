"""The README's and docs' examples run as written, against a real LocalOllama.

Python blocks and shell blocks (```` ```console ```` and ```` ```bash ````) of one file run in
order, in one temporary working directory, with ``OLLAMA_HOST`` pointing at the test server
(which serves bge-m3, mxbai-embed-large and nomic-embed-text stand-ins, and qwen2.5, an
``ExtractiveChatModel``). Python blocks share a
namespace. In a shell block, the lines that start with ``ollama-rag`` (or ``$ ollama-rag``,
optionally after ``NAME=value`` settings) run through the CLI, ``export NAME=value`` sets a
variable for the commands after it, and everything else (``pip install``, output) is left
alone; a command must succeed, unless the output shown under it in a console block has an
``Error:`` line, which the command must print (``…`` stands for anything). Indexes the Python
blocks left open are closed before a shell block runs, as a script would have ended. When a
file has shell commands, ``docs/`` in the working directory holds the bundled demo samples, to
index. A block preceded by ``<!-- docs-test: skip (reason) -->`` is not run; the reason must
say which test covers it instead.
"""

from __future__ import annotations

import re
import shlex
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from click.testing import CliRunner

from ollama_rag import RagIndex
from ollama_rag.cli import cli
from ollama_rag.demo import DATA_DIR
from ollama_rag.testing import LocalOllama

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
BLOCK = re.compile(
    r"(?P<skip><!-- docs-test: skip[^>]*-->\n)?```(?P<lang>python|console|bash)\n(?P<code>.*?)```",
    re.S,
)
COMMAND = re.compile(r"(?:\$ )?(?P<env>(?:[A-Z_][A-Z0-9_]*=\S+ +)*)ollama-rag (?P<args>.*)")
EXPORT = re.compile(r"(?:\$ )?export (?P<name>[A-Z_][A-Z0-9_]*)=(?P<value>\S+)\s*(?:#.*)?")


@dataclass
class Step:
    """One shell line to run: a command (``args``) or a variable to set (``export``)."""

    args: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    export: tuple[str, str] | None = None
    errors: list[str] = field(default_factory=list)  # Error: lines shown under it


def blocks(path: Path) -> list[tuple[str, str]]:
    """``(language, code)`` of every block that runs, in order."""
    text = path.read_text(encoding="utf-8")
    return [(m["lang"], m["code"]) for m in BLOCK.finditer(text) if not m["skip"]]


def python_blocks(path: Path) -> list[str]:
    return [code for lang, code in blocks(path) if lang == "python"]


def shell_steps(lang: str, code: str) -> list[Step]:
    steps: list[Step] = []
    for line in code.replace("\\\n", " ").split("\n"):
        if lang == "console" and not line.startswith("$ "):
            if steps and line.startswith("Error: "):
                steps[-1].errors.append(line)
            continue
        if (found := EXPORT.fullmatch(line)) is not None:
            steps.append(Step(export=(found["name"], found["value"])))
        elif (found := COMMAND.fullmatch(line)) is not None:
            env = dict(pair.split("=", 1) for pair in found["env"].split())
            steps.append(Step(args=shlex.split(found["args"], comments=True), env=env))
    return steps


def test_shell_lines_are_read_as_a_shell_would() -> None:
    bash = 'ollama-rag search "富士山 の" --db ./db -k 2  # a comment\npip install .\n'
    assert [s.args for s in shell_steps("bash", bash)] == [
        ["search", "富士山 の", "--db", "./db", "-k", "2"]
    ]
    console = "$ export OLLAMA_RAG_DB=./db  # set\n"
    console += "$ OLLAMA_HOST=x ollama-rag \\\n  info\nError: No … here\n"
    first, second = shell_steps("console", console)
    assert first.export == ("OLLAMA_RAG_DB", "./db")
    assert (second.args, second.env, second.errors) == (
        ["info"],
        {"OLLAMA_HOST": "x"},
        ["Error: No … here"],
    )


def run_shell(steps: list[Step], monkeypatch: pytest.MonkeyPatch, where: str) -> None:
    for step in steps:
        if step.export is not None:
            monkeypatch.setenv(*step.export)
            continue
        assert step.args[0] != "serve-local", f"{where}: serve-local runs until Ctrl-C; skip it"
        result = CliRunner().invoke(cli, step.args, env=step.env)
        command = shlex.join(["ollama-rag", *step.args])
        assert "Traceback" not in result.output, f"{where}: {command}\n{result.output}"
        if not step.errors:
            assert result.exit_code == 0, f"{where}: {command}\n{result.output}"
            continue
        assert result.exit_code == 1, f"{where}: {command} should fail\n{result.output}"
        printed = result.stderr.splitlines()
        for shown in step.errors:
            pattern = re.compile(".*".join(map(re.escape, shown.split("…"))))
            assert any(pattern.fullmatch(line) for line in printed), f"{where}: {shown}\n{printed}"


def test_every_skipped_block_names_the_test_that_covers_it() -> None:
    for path in DOCS:
        for reason in re.findall(r"<!-- docs-test: skip([^>]*)-->", path.read_text("utf-8")):
            assert "tests/" in reason, f"{path.name}: skip without a covering test: {reason}"


@pytest.mark.parametrize("path", DOCS, ids=lambda p: p.name)
def test_doc_examples_run(
    path: Path, ollama: LocalOllama, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    found = blocks(path)
    if path.name in ("README.md", "getting-started.md", "concepts.md", "errors.md"):
        assert python_blocks(path), f"{path.name} should have runnable examples"
    if path.name in ("README.md", "cli.md", "evaluation.md"):
        assert any(shell_steps(lang, code) for lang, code in found if lang != "python")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("OLLAMA_HOST", ollama.url)
    namespace: dict[str, object] = {"__name__": f"docs_{path.stem}"}

    def close_indexes() -> None:
        for value in namespace.values():
            if isinstance(value, RagIndex):
                value.close()

    try:
        for n, (lang, code) in enumerate(found):
            where = f"{path.name}[block {n}]"
            if lang != "python":
                steps = shell_steps(lang, code)
                if steps and not (tmp_path / "docs").exists():
                    shutil.copytree(
                        DATA_DIR, tmp_path / "docs", ignore=shutil.ignore_patterns("*.json")
                    )
                close_indexes()
                run_shell(steps, monkeypatch, where)
                continue
            try:
                exec(compile(code, where, "exec"), namespace)
            except Exception as err:
                raise AssertionError(f"{where} failed: {err!r}\n{code}") from err
    finally:
        close_indexes()


# ------------------------------------------------------------------ the CLI reference

OPTION = re.compile(r"(?<![\w-])-{1,2}[a-z][\w-]*")
SECTION = re.compile(r"^## `ollama-rag (?P<name>[\w-]+)`\n(?P<body>.*?)(?=^## |\Z)", re.M | re.S)


def documented_options(body: str) -> set[str]:
    """The options an options table names in its first column."""
    cells = [row.split("|")[1] for row in body.splitlines() if row.startswith("| `")]
    return {
        o for cell in cells for span in re.findall(r"`([^`]*)`", cell) for o in OPTION.findall(span)
    }


def test_the_cli_reference_documents_every_command_and_option() -> None:
    import click

    text = (ROOT / "docs" / "cli.md").read_text(encoding="utf-8")
    sections = {m["name"]: m["body"] for m in SECTION.finditer(text)}
    assert set(sections) == set(cli.commands), "a section per command, and no other"
    for name, command in cli.commands.items():
        options = {
            o
            for p in command.params
            if isinstance(p, click.Option)
            for o in (*p.opts, *p.secondary_opts)
        }
        assert documented_options(sections[name]) == options - {"-h", "--help"}, name
        synopsis = sections[name].strip().splitlines()[0]
        assert synopsis.startswith(f"`ollama-rag {name}"), name
        for argument in (p for p in command.params if isinstance(p, click.Argument)):
            assert argument.name is not None
            assert argument.name.upper() in synopsis, (name, argument.name)
        help_text = command.get_help(click.Context(command, info_name=name))
        for option in options - {"-h", "--help"}:
            assert option in help_text, (name, option)
    assert "`ollama-rag --version`" in text
    assert "`ollama-rag COMMAND --help`" in text
