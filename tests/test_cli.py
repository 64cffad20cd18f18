"""The ollama-rag command: index, search, migrate, and one-line errors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

from ollama_rag.cli import cli
from ollama_rag.testing import LocalOllama


def write_corpus(folder: Path) -> None:
    folder.mkdir()
    (folder / "fuji.md").write_text("# 富士山\n\n富士山は日本で一番高い山です。", encoding="utf-8")
    (folder / "tea.txt").write_text("中国茶有绿茶、红茶和乌龙茶。", encoding="utf-8")


def test_index_search_and_migrate(tmp_path: Path, ollama: LocalOllama) -> None:
    write_corpus(tmp_path / "docs")
    db = str(tmp_path / "db")
    runner = CliRunner()
    url = ["--base-url", ollama.url]

    indexed = runner.invoke(
        cli, ["index", str(tmp_path / "docs"), "--db", db, "--model", "bge-m3", *url]
    )
    assert indexed.exit_code == 0, indexed.output
    assert "2 added" in indexed.output
    assert "bge-m3:latest" in indexed.output

    again = runner.invoke(cli, ["index", str(tmp_path / "docs"), "--db", db, *url])
    assert "2 unchanged" in again.output

    found = runner.invoke(cli, ["search", "日本で一番高い山", "--db", db, "-k", "1", *url])
    assert found.exit_code == 0, found.output
    assert "fuji.md:" in found.output
    assert "富士山は日本で一番高い山です。" in found.output

    moved = runner.invoke(cli, ["migrate", "mxbai-embed-large", "--db", db, *url])
    assert moved.exit_code == 0, moved.output
    assert "mxbai-embed-large:latest" in moved.output


def test_expected_errors_are_one_line_without_traceback(tmp_path: Path) -> None:
    server = LocalOllama()
    server.start()
    url = server.url
    server.stop()
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "ollama_rag",
            "search",
            "x",
            "--db",
            str(tmp_path),
            "--base-url",
            url,
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"Error: No index at {tmp_path.resolve()} (collection 'default'). To create one, name the "
        f"embedding model: RagIndex('{tmp_path.resolve()}', model='bge-m3')"
    ]
    assert "Traceback" not in result.stderr


def test_unreachable_ollama_is_one_line(tmp_path: Path) -> None:
    write_corpus(tmp_path / "docs")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "ollama_rag",
            "index",
            str(tmp_path / "docs"),
            "--db",
            str(tmp_path / "db"),
            "--model",
            "bge-m3",
            "--base-url",
            "http://127.0.0.1:9",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1
    assert result.stderr.strip() == (
        'Error: Ollama is not reachable at http://127.0.0.1:9 — start it with "ollama serve"'
    )
