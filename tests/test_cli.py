"""The ollama-rag command: every command's output, --json, --db/$OLLAMA_RAG_DB, --collection.

Commands run in-process through click's CliRunner against a real LocalOllama and a real Chroma
under ``tmp_path``; tests about processes (Ctrl-C, a second process, a terminal) are in
test_cli_processes.py, and the errors in the command's terms in test_cli_errors.py.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from ollama_rag.cli import cli
from ollama_rag.cli.show import display_width, location, snippet
from ollama_rag.testing import LocalOllama

pytestmark = pytest.mark.usefixtures("store_kind")

SEARCH_KEYS = {
    "rank",
    "score",
    "found_by",
    "id",
    "source",
    "start_index",
    "end_index",
    "line",
    "page",
    "heading",
    "text",
    "metadata",
}
INFO_KEYS = {
    "db",
    "collection",
    "model",
    "digest",
    "dimension",
    "context_length",
    "chunk_size",
    "chunk_overlap",
    "document_prefix",
    "query_prefix",
    "splitter",
    "analyzer",
    "fusion",
    "library_version",
    "created_at",
    "updated_at",
    "format",
    "store",
    "vector_index",
    "store_version",
    "chunks",
    "sources",
    "incomplete_sources",
    "disk_bytes",
    "collections",
}
INDEX_KEYS = {
    "files_added",
    "files_updated",
    "files_unchanged",
    "files_deleted",
    "files_failed",
    "chunks_embedded",
    "chunks_skipped",
    "embedding_requests",
    "seconds",
    "skipped",
    "failed",
    "interrupted",
    "chunks",
}


def run(*args: str, ok: bool = True) -> Result:
    result = CliRunner().invoke(cli, list(args))
    if ok:
        assert result.exit_code == 0, result.output
    assert "Traceback" not in result.output
    return result


def records(text: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in text.splitlines()]


def test_index_reports_and_reindexing_costs_nothing(samples: Path, ollama: LocalOllama) -> None:
    first = run("index", "docs", "--db", "db", "--model", "bge-m3")
    assert first.stdout.startswith("8 added, 0 updated, 0 unchanged")
    assert first.stdout.splitlines()[-1].startswith("30 chunks in db (bge-m3:latest (digest ")
    ollama.reset_counters()
    again = run("index", "docs", "--db", "db")
    assert again.stdout.startswith("0 added, 0 updated, 8 unchanged")
    assert ollama.request_count("bge-m3") == 0
    assert run("index", "docs", "--db", "db", "--quiet").output == ""


def test_index_json_is_one_object(samples: Path) -> None:
    (samples / "docs" / "notes.xyz").write_text("unsupported", encoding="utf-8")
    result = run("index", "docs", "--db", "db", "--model", "bge-m3", "--json")
    (report,) = records(result.stdout)
    assert set(report) == INDEX_KEYS
    assert report["files_added"] == 8
    assert report["chunks"] == 30
    assert report["interrupted"] is False
    assert report["skipped"] == [{"source": "notes.xyz", "reason": "unsupported file type .xyz"}]


def test_search_shows_rank_score_place_and_the_matching_part(
    indexed: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "100")  # snippets are as wide as the terminal
    result = run("search", "富士山の標高は何メートル", "--db", "db", "-k", "2")
    heads = result.stdout.splitlines()[0::2]
    snippets = result.stdout.splitlines()[1::2]
    assert heads[0].startswith(" 1. ")
    assert heads[1].startswith(" 2. ")
    assert "ja_fuji.md:1  § 富士山と日本の山" in heads[0]
    assert heads[0].endswith("[both]")
    assert all(s.startswith("    ") and "\n" not in s for s in snippets)
    assert "標高は3,776" in snippets[0]


def test_search_json_is_one_line_per_result_with_the_line_of_the_file(indexed: Path) -> None:
    result = run("search", "麓から眺める富士", "--db", "db", "-k", "3", "--json")
    hits = records(result.stdout)
    assert [h["rank"] for h in hits] == [1, 2, 3]
    assert all(set(h) == SEARCH_KEYS for h in hits)
    top = hits[0]
    assert top["source"] == "ja_fuji.md"
    assert "root" not in top["metadata"]  # a path of the indexing machine stays out
    lines = (indexed / "docs" / "ja_fuji.md").read_text(encoding="utf-8").split("\n")
    first_line = str(top["text"]).split("\n")[0]
    assert isinstance(top["line"], int)
    assert first_line in lines[top["line"] - 1]
    assert hits[0]["score"] >= hits[1]["score"] >= hits[2]["score"]  # type: ignore[operator]


def test_a_file_edited_since_indexing_gets_no_line_number(indexed: Path) -> None:
    fuji = indexed / "docs" / "ja_fuji.md"
    fuji.write_text("新しい一行。\n" + fuji.read_text(encoding="utf-8"), encoding="utf-8")
    (hit,) = records(run("search", "富士山", "--db", "db", "-k", "1", "--json").stdout)
    assert hit["source"] == "ja_fuji.md"
    assert hit["line"] is None  # not a wrong number: the offsets no longer match the file


@pytest.mark.parametrize(
    ("text", "query", "width", "expected"),
    [
        ("short text", "x", 40, "short text"),
        ("line one\n\n  line   two", "two", 40, "line one line two"),
        ("a" * 30 + " needle " + "b" * 30, "needle", 20, "…aaaa needle bbbbbb…"),
        (
            "富士山は日本で一番高い山で、標高は三七七六メートルです。",
            "標高",
            20,
            "…で、標高は三七七六…",
        ),
        ("nothing matches here at all", "zzz", 12, "nothing mat…"),
    ],
)
def test_snippets_are_one_line_around_the_match(
    text: str, query: str, width: int, expected: str
) -> None:
    got = snippet(text, query, width)
    assert got == expected
    assert display_width(got) <= width


def test_locations_name_line_page_and_heading() -> None:
    assert location("a.md", {"heading": "A > B"}, 12) == "a.md:12  § A > B"
    assert location("b.pdf", {"page": 3}, None) == "b.pdf p.3"
    assert location("notes", {}, None) == "notes"


@pytest.mark.parametrize("faiss_index", ["flat", "hnsw"])
def test_index_store_chooses_the_store_of_a_new_index_and_it_is_kept(
    samples: Path, store_kind: str, faiss_index: str
) -> None:
    pytest.importorskip("faiss")
    other = "chroma" if store_kind == "faiss" else "faiss"
    options = ["--faiss-index", faiss_index] if store_kind == "faiss" else []
    run("index", "docs", "--db", "db", "--model", "bge-m3", "--store", store_kind, *options)
    (info,) = records(run("info", "--db", "db", "--json").stdout)
    assert info["store"] == store_kind
    assert info["vector_index"] == (faiss_index if store_kind == "faiss" else "")
    again = run("index", "docs", "--db", "db").stdout  # the recorded store, without --store
    assert again.startswith("0 added, 0 updated, 8 unchanged")
    refused = run("index", "docs", "--db", "db", "--store", other, ok=False)
    assert refused.exit_code != 0
    assert f"is a {store_kind} index, not a {other} one" in refused.output


def index_into(collection: str, path: str, model: str) -> None:
    run("index", path, "--db", "db", "--collection", collection, "--model", model, "-q")


def test_info_shows_the_manifest_contents_and_neighbours(indexed: Path) -> None:
    index_into("bikes", "docs/en_bicycle.md", "nomic-embed-text")
    text = run("info", "--db", "db").stdout
    assert "model     bge-m3:latest (digest " in text
    assert "chunks    30 from 8 sources" in text
    assert "  bikes: nomic-embed-text:latest, 768-d, " in text
    assert "  default: bge-m3:latest, 1024-d, 30 chunks  (this one)" in text
    (info,) = records(run("info", "--db", "db", "--collection", "bikes", "--json").stdout)
    assert set(info) == INFO_KEYS
    assert info["collection"] == "bikes"
    assert info["model"] == "nomic-embed-text:latest"
    assert info["dimension"] == 768
    assert info["sources"] == 1
    assert info["incomplete_sources"] == 0
    disk = info["disk_bytes"]
    assert isinstance(disk, dict)
    assert disk["total"] >= disk["vectors"] + disk["database"] + disk["lexical"] > 0
    names = {c["name"] for c in info["collections"]}  # type: ignore[union-attr]
    assert names == {"bikes", "default"}


def test_sources_lists_chunk_counts(indexed: Path) -> None:
    result = run("sources", "--db", "db")
    assert "      2  ja_fuji.md" in result.stdout.splitlines()
    assert result.stderr.strip() == "8 sources, 30 chunks"
    listed = records(run("sources", "--db", "db", "--json").stdout)
    assert {"source": "ja_fuji.md", "chunks": 2, "complete": True} in listed
    assert sum(int(s["chunks"]) for s in listed) == 30  # type: ignore[call-overload]


def test_reading_commands_need_no_ollama(
    indexed: Path, closed_port_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OLLAMA_HOST", closed_port_url)
    for command in (["info"], ["sources"], ["export"], ["search", "富士山", "--mode", "lexical"]):
        run(*command, "--db", "db")
    dense = run("search", "富士山", "--db", "db", "--base-url", closed_port_url, ok=False)
    assert dense.exit_code == 1
    assert dense.stderr == (
        f'Error: Ollama is not reachable at {closed_port_url} — start it with "ollama serve"\n'
    )


def test_export_writes_every_chunk_and_vectors_on_request(indexed: Path) -> None:
    plain = records(run("export", "--db", "db").stdout)
    assert len(plain) == 30
    assert all(set(r) == {"id", "text", "metadata"} for r in plain)
    assert all("content_hash" not in r["metadata"] for r in plain)  # type: ignore[operator]
    result = run("export", "--db", "db", "--vectors", "--output", "chunks.jsonl")
    assert result.stdout == ""
    assert result.stderr == "30 chunks written to chunks.jsonl\n"
    full = records((indexed / "chunks.jsonl").read_text(encoding="utf-8"))
    assert [r["id"] for r in full] == [r["id"] for r in plain]
    vector = full[0]["vector"]
    assert isinstance(vector, list)
    assert len(vector) == 1024
    assert math.isclose(math.fsum(v * v for v in vector), 1.0, rel_tol=1e-5)
    assert [p.name for p in indexed.iterdir() if p.name.startswith(".chunks")] == []


def test_delete_says_what_it_removed(indexed: Path) -> None:
    chunks = records(run("export", "--db", "db").stdout)
    ids = [r["id"] for r in chunks if r["metadata"]["source"] == "ko_hangul.md"]  # type: ignore[index]
    result = run("delete", "--db", "db", "--source", "ja_fuji.md", "--source", "zh_tea.md")
    assert result.stdout.splitlines() == [
        "removed 2 chunks of ja_fuji.md",
        "removed 2 chunks of zh_tea.md",
        "26 chunks left in db",
    ]
    by_id = run("delete", "--db", "db", "--id", str(ids[0]), "--id", "not-an-id", ok=False)
    assert by_id.exit_code == 1
    assert "removed 1 of 2 chunk id(s)" in by_id.stdout
    assert by_id.stderr == "1 chunk id(s) were not in the index\n"
    gone = run("delete", "--db", "db", "--source", "ja_fuji.md", ok=False)
    assert gone.exit_code == 1
    assert gone.stderr == "no source ja_fuji.md in the index (see: ollama-rag sources)\n"
    nothing = run("delete", "--db", "db", ok=False)
    assert nothing.exit_code == 2
    assert "nothing to delete: pass --source SOURCE or --id ID" in nothing.stderr
    assert "25 chunks" in run("info", "--db", "db").stdout


def test_db_comes_from_the_environment(indexed: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    missing = run("sources", ok=False)
    assert missing.exit_code == 2
    assert "Error: no index directory: pass --db DIR or set OLLAMA_RAG_DB=DIR" in missing.stderr
    monkeypatch.setenv("OLLAMA_RAG_DB", "db")
    assert "8 sources" in run("sources").stderr
    assert "30 chunks" in run("info").stdout
    assert run("search", "富士山", "-k", "1", "--json").stdout.count("\n") == 1


def test_collections_keep_indexes_apart(samples: Path) -> None:
    index_into("japanese", "docs/ja_fuji.md", "bge-m3")
    index_into("english", "docs/en_bicycle.md", "bge-m3")
    for collection, source in (("japanese", "ja_fuji.md"), ("english", "en_bicycle.md")):
        found = records(
            run("search", "mountain", "--db", "db", "--collection", collection, "--json").stdout
        )
        assert {h["source"] for h in found} == {source}


def test_migrate_reembeds_and_says_with_what(indexed: Path) -> None:
    result = run("migrate", "mxbai-embed-large", "--db", "db")
    moved, work = result.stdout.splitlines()
    # mxbai-embed-large's context is shorter than bge-m3's: its chunks are shorter, so more.
    assert re.fullmatch(r"4\d chunks in db now use mxbai-embed-large:latest \(digest .*", moved)
    assert re.fullmatch(r"4\d chunks embedded, 0 reused, in \d+\.\d s", work)
    assert run("migrate", "mxbai-embed-large", "--db", "db", "--quiet").output == ""


def test_eval_reads_the_index_and_prints_json(indexed: Path) -> None:
    labels = indexed / "questions.jsonl"
    labels.write_text(
        '{"question": "富士山の標高は？", "answer": "3,776"}\n'
        '{"question": "Who built the first bicycle?", "source": "en_bicycle.md"}\n',
        encoding="utf-8",
    )
    (result,) = records(run("eval", "questions.jsonl", "--db", "db", "--json").stdout)
    assert result["count"] == 2
    assert set(result["metrics"]) >= {"hit@1", "mrr@10"}  # type: ignore[arg-type]
    text = run("eval", "questions.jsonl", "--db", "db", "--details").stdout
    assert "2 questions" in text


def tree(folder: Path) -> dict[str, tuple[int, str]]:
    """Every path under ``folder``: size and content hash of files (-1 for folders)."""
    return {
        str(p.relative_to(folder)): (
            (p.stat().st_size, hashlib.sha256(p.read_bytes()).hexdigest())
            if p.is_file()
            else (-1, "")
        )
        for p in sorted(folder.rglob("*"))
    }


READING = [
    ["search", "富士山"],
    ["info"],
    ["sources"],
    ["export", "--output", "out.jsonl"],
    ["eval", "questions.jsonl"],
    ["ask", "富士山"],
    ["chat"],
]
WRITING = [["delete", "--source", "ja_fuji.md"], ["migrate", "mxbai-embed-large"]]


@pytest.mark.parametrize("command", READING + WRITING, ids=lambda c: c[0])
@pytest.mark.parametrize("where", ["missing", "empty", "papers"])
def test_a_wrong_db_leaves_the_disk_as_it_was(
    samples: Path, command: list[str], where: str
) -> None:
    (samples / "questions.jsonl").write_text('{"question": "q", "answer": "a"}\n', encoding="utf-8")
    (samples / "empty").mkdir()
    (samples / "papers").mkdir()
    (samples / "papers" / "notes.txt").write_text("not an index", encoding="utf-8")
    before = tree(samples)
    result = run(*command, "--db", where, ok=False)
    assert result.exit_code == 1
    assert result.stderr.startswith(f"Error: No index at {(samples / where).resolve()} ")
    assert tree(samples) == before


@pytest.mark.parametrize("command", READING, ids=lambda c: c[0])
def test_a_wrong_collection_leaves_the_disk_as_it_was(indexed: Path, command: list[str]) -> None:
    (indexed / "questions.jsonl").write_text('{"question": "q", "answer": "a"}\n', encoding="utf-8")
    before = tree(indexed)
    result = run(*command, "--db", "db", "--collection", "nope", ok=False)
    assert result.exit_code == 1
    assert "the directory holds the index(es) 'default'" in result.stderr
    assert tree(indexed) == before


def test_commands_that_touch_an_index_share_the_index_options() -> None:
    touching = {"index", "search", "info", "sources", "export", "delete", "migrate", "eval"}
    touching |= {"ask", "chat"}
    for name in touching:
        options = {o for p in cli.commands[name].params for o in p.opts}
        assert {"--db", "--collection"} <= options, name
        # Only the commands that may call Ollama take its URL.
        assert ("--base-url" in options) == (name not in {"info", "sources", "export"}), name
    for name in ("search", "index", "info", "sources", "doctor", "eval"):
        assert "--json" in {o for p in cli.commands[name].params for o in p.opts}, name


def test_doctor_json(samples: Path, ollama: LocalOllama) -> None:
    (report,) = records(run("doctor", "--model", "bge-m3", "--json").stdout)
    assert report["ok"] is True
    assert report["base_url"] == ollama.url
    checks = report["checks"]
    assert isinstance(checks, list)
    assert {"name", "ok", "detail", "fix"} == set(checks[0])
    assert [c["name"] for c in checks][:2] == ["server", "model"]
