"""``ollama-rag demo`` end to end with no Ollama: LocalOllama with the real multilingual model.

(Without the ``[local]`` extra it says one line: tests/test_cli_errors.py.)
"""

from __future__ import annotations

import socket

import pytest

from ollama_rag.demo import sample_queries
from ollama_rag.demo.runner import CHAT_LANGUAGES, CHAT_MODEL, run_demo


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.mark.slow
def test_the_demo_indexes_searches_answers_with_citations_and_guards(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OLLAMA_HOST", f"http://127.0.0.1:{closed_port()}")
    lines: list[str] = []
    result = run_demo(echo=lines.append)
    text = "\n".join(lines)
    assert result.backend == "LocalOllama"
    assert "No usable Ollama" in text
    assert result.queries == len(sample_queries())
    assert result.top1_hits >= result.queries - 2, result.misses
    assert result.re_add_requests == 0
    assert "cannot be used with nomic-embed-text" in result.guard_message
    # One cited answer per language, citing the document the question is about.
    expected = {q.query: q.expected_source for q in sample_queries()}
    assert len(result.answers) == len(CHAT_LANGUAGES)
    for question, answer in result.answers:
        assert answer.endswith(f"[{expected[question]}]"), (question, answer)
    assert f'Cited answers from "{CHAT_MODEL}"' in text
