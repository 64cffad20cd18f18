"""Shared fixtures. Every piece of state a test makes lives under its ``tmp_path``."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest


@pytest.fixture(autouse=True)
def _clean_environ(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Keep the user's OLLAMA_* / OLLAMA_RAG_* settings from leaking into tests."""
    for key in list(os.environ):
        if key.startswith(("OLLAMA_", "CHROMA_")):
            monkeypatch.delenv(key, raising=False)
    yield
