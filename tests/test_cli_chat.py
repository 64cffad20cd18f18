"""``ollama-rag ask`` and ``ollama-rag chat``: LocalOllama's chat model over a real index.

LocalOllama serves ``qwen2.5`` as an ``ExtractiveChatModel``: it answers by quoting the
passage sentence that best matches the question, with the passage's ``[label]``, so what the
commands print can be checked against the sample files themselves.
"""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta, timezone
from pathlib import Path

import ollama as ollama_client
import pytest
from click.testing import CliRunner, Result

from ollama_rag.cli import cli
from ollama_rag.testing import NO_ANSWER, LocalOllama

FUJI = "富士山の標高は何メートルですか？"
RIVER = "长江全长多少公里？"


def run(*args: str, input: str | None = None, ok: bool = True) -> Result:
    result = CliRunner().invoke(cli, list(args), input=input)
    if ok:
        assert result.exit_code == 0, result.output
    assert "Traceback" not in result.output
    return result


def quoted(answer: str, folder: Path) -> tuple[str, str]:
    """The sentence an answer quotes and the source its citation names; both must exist."""
    found = re.fullmatch(r"(?P<text>.+?)\s*\[(?P<label>[^\]]+)\]", answer.strip())
    assert found, answer
    text, label = found["text"], found["label"]
    source = (folder / "docs" / label).read_text(encoding="utf-8")
    for sentence in re.findall(r"[^。！？!?]+[。！？!?]?", text):  # it may quote two
        assert sentence.strip() in source, (sentence, label)
    return text, label


def test_ask_streams_a_cited_answer_then_lists_the_passages(indexed: Path) -> None:
    result = run("ask", FUJI, "--db", "db", "-k", "3")
    answer, _, listing = result.stdout.partition("\n\nSources (* cited):\n")
    text, label = quoted(answer, indexed)
    assert label == "ja_fuji.md"
    assert "3,776" in text
    lines = listing.splitlines()
    assert len(lines) == 3
    assert all(re.match(r" [* ] \[[^\]]+\] \S+", line) for line in lines), lines
    assert any(line.startswith(" * [ja_fuji.md] ja_fuji.md:") for line in lines)


def test_ask_json_numbers_its_citations_and_says_which_passage_it_cites(indexed: Path) -> None:
    result = run("ask", RIVER, "--db", "db", "--json", "--citations", "number", "-k", "2")
    (record,) = [json.loads(line) for line in result.stdout.splitlines()]
    assert set(record) == {
        "question",
        "answer",
        "chat_model",
        "embedding_model",
        "mode",
        "sources",
    }
    assert record["question"] == RIVER
    assert record["chat_model"] == "qwen2.5"
    assert record["embedding_model"].startswith("bge-m3:latest")
    assert [s["label"] for s in record["sources"]] == ["1", "2"]
    cited = [s for s in record["sources"] if s["cited"]]
    assert cited
    assert all(f"[{s['label']}]" in record["answer"] for s in cited)
    # The quoted sentence is in the passage the citation points at.
    sentence = record["answer"].rsplit("[", 1)[0].strip()
    assert sentence in cited[0]["text"]
    assert cited[0]["source"] == "zh_rivers.md"
    assert "6300" in sentence


def test_ask_quiet_prints_the_answer_only_and_says_when_it_does_not_know(indexed: Path) -> None:
    result = run("ask", "火星の重力は？", "--db", "db", "-q", "--mode", "lexical")
    assert result.stdout == NO_ANSWER + "\n"
    assert result.stderr == ""


def test_both_models_stay_loaded_side_by_side_for_keep_alive(
    indexed: Path, ollama: LocalOllama
) -> None:
    run("ask", FUJI, "--db", "db", "--keep-alive", "2h", "-q")
    with ollama_client.Client(host=ollama.url) as client:
        loaded = {m.model: m.expires_at for m in client.ps().models}
    soon = datetime.now(timezone.utc) + timedelta(minutes=90)
    for model in ("bge-m3:latest", "qwen2.5:latest"):
        expires = loaded[model]
        assert expires is not None, model
        assert expires > soon, (model, expires)


def test_chat_keeps_the_conversation_and_clear_forgets_it(
    indexed: Path, ollama: LocalOllama
) -> None:
    ollama.reset_counters()
    typed = "富士山は日本で一番高い山ですか？\n標高は何メートル？\n/clear\n" + RIVER + "\n/exit\n"
    result = run("chat", "--db", "db", "-k", "2", input=typed + "never asked\n")
    answers = [
        line for line in result.stdout.splitlines() if line and not line.startswith(("  ", " *"))
    ]
    assert len(answers) == 3, result.stdout
    assert quoted(answers[0], indexed)[1] == "ja_fuji.md"
    assert quoted(answers[2], indexed)[1] == "zh_rivers.md"
    # What the model read: the second question came after the first turn; after /clear, the
    # third came alone (a system message with the passages, then the question).
    sent = ollama.received("qwen2.5")
    second = sent.index("標高は何メートル？")
    assert sent[second - 2 : second] == ["富士山は日本で一番高い山ですか？", answers[0]]
    third = sent.index(RIVER)
    assert sent[third - 1].startswith("Answer the question using only the passages below.")
    assert "never asked" not in sent
    assert "(conversation forgotten)" in result.stderr
    assert result.stderr.startswith("Chatting with qwen2.5 over db (")


def test_chat_history_zero_sends_no_earlier_turns(indexed: Path, ollama: LocalOllama) -> None:
    ollama.reset_counters()
    run("chat", "--db", "db", "--history", "0", "-q", input=f"{FUJI}\n{RIVER}\n")
    sent = ollama.received("qwen2.5")
    assert sent[sent.index(RIVER) - 1].startswith("Answer the question using only")


@pytest.mark.parametrize("command", [["ask", FUJI], ["chat"]], ids=["ask", "chat"])
def test_a_model_that_cannot_chat_or_is_missing_is_refused_with_the_fix(
    indexed: Path, command: list[str]
) -> None:
    embedding = run(*command, "--db", "db", "--model", "bge-m3", ok=False)
    assert embedding.exit_code == 1
    assert embedding.stderr == (
        'Error: "bge-m3" cannot write answers (it is an embedding model) — pass --model with a '
        "chat model, e.g. --model qwen2.5 (ollama pull qwen2.5)\n"
    )
    missing = run(*command, "--db", "db", "--model", "llama9", ok=False)
    assert missing.exit_code == 1
    assert missing.stderr.startswith('Error: Model "llama9" is not pulled on ')
    assert 'run "ollama pull llama9". Models on that server: ' in missing.stderr
    assert "qwen2.5:latest" in missing.stderr


def test_the_chat_model_comes_from_the_environment(
    indexed: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OLLAMA_RAG_CHAT_MODEL", "nomic-embed-text")
    result = run("ask", FUJI, "--db", "db", ok=False)
    assert '"nomic-embed-text" cannot write answers' in result.stderr
