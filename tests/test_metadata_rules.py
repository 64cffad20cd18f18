"""Metadata is stored faithfully or refused before anything is embedded, naming the key.

The rules follow what a real Chroma collection does with each kind of value (the first test
checks those facts, so a Chroma upgrade that changes them shows up here). Every other test
writes through a real ``RagIndex`` on embedded Chroma with ``LocalOllama`` embedding.
"""

from __future__ import annotations

import enum
import math
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import chromadb
import numpy as np
import pytest
from langchain_core.documents import Document

from ollama_rag import ConfigError, RagIndex
from ollama_rag.testing import LocalOllama

pytestmark = pytest.mark.reliability


class Colour(enum.IntEnum):
    RED = 1


class Label(str):
    def __str__(self) -> str:
        return "not the value"


def test_chroma_mishandles_what_the_rules_refuse(tmp_path: Path) -> None:
    client = chromadb.PersistentClient(path=str(tmp_path / "chroma"))

    def add(name: str, metadata: dict[str, Any]) -> chromadb.Collection:
        col = client.create_collection(name, embedding_function=None)
        col.add(ids=["x"], embeddings=[[0.1, 0.2]], metadatas=[metadata], documents=["x"])
        return col

    # Silently changed: NaN dropped, a big int turned into an approximate float, a "chroma:"
    # key dropped on reading.
    col = add("scalars", {"nan": math.nan, "big": 2**64 + 1, "chroma:k": 1, "keep": 1})
    assert col.get(include=["metadatas"])["metadatas"] == [{"big": 2.0**64, "keep": 1}]
    # Refused only at the write, after embedding: mixed lists, even of int and float.
    with pytest.raises(ValueError, match="same type"):
        add("mixed", {"a": [1, 2.5]})
    # A list holding NaN breaks the collection for good: every later call fails.
    broken = client.create_collection("broken", embedding_function=None)
    with pytest.raises(Exception, match="log store"):
        broken.add(ids=["x"], embeddings=[[0.1, 0.2]], metadatas=[{"a": [1.0, math.nan]}])
    with pytest.raises(Exception, match="log store"):
        broken.count()


@pytest.fixture(scope="module")
def index(
    _session_ollama: LocalOllama, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RagIndex]:
    """One index for the module: every refusal must leave it empty, so tests cannot interfere."""
    path = tmp_path_factory.mktemp("metadata_rules") / "db"
    with RagIndex(path, model="bge-m3", base_url=_session_ollama.url) as opened:
        yield opened


@pytest.fixture
def server(index: RagIndex, _session_ollama: LocalOllama) -> LocalOllama:
    _session_ollama.reset_counters()
    return _session_ollama


REFUSED = [
    # (metadata, what the message must contain)
    ({"score_": math.nan}, "metadata 'score_' is nan"),
    ({"w": math.inf}, "metadata 'w' is inf"),
    ({"w": [1.0, -math.inf]}, "metadata 'w'[1] is -inf"),
    ({"n": 2**63}, "metadata 'n' = 9223372036854775808 does not fit in a signed 64-bit integer"),
    ({"n": [1, -(2**63) - 1]}, "metadata 'n'[1] = -9223372036854775809 does not fit"),
    ({"tags": [1, 2.5]}, "metadata 'tags' mixes float and int values"),
    ({"tags": [True, 1]}, "metadata 'tags' mixes bool and int values"),
    ({"tags": ["a", 1]}, "metadata 'tags' mixes int and str values"),
    ({"tags": []}, "metadata 'tags' is an empty list"),
    ({"tags": ["a", None]}, "metadata 'tags'[1] is None"),
    ({"tags": [["a"]]}, "metadata 'tags'[0] is a list"),
    ({"name": "caf\udce9"}, "metadata 'name' has a lone surrogate at offset 3"),
    ({"caf\udce9": "x"}, "metadata key 'caf\\udce9' has a lone surrogate at offset 3"),
    ({"tags": ["ok", "\udcff"]}, "metadata 'tags'[1] has a lone surrogate at offset 0"),
    ({"$lang": "ja"}, "metadata key '$lang' starts with '$'"),
    ({"#n": 1}, "metadata key '#n' starts with '#'"),
    ({"chroma:x": 1}, "metadata key 'chroma:x' starts with 'chroma:'"),
    ({"": 1}, "metadata keys must be non-empty strings"),
    ({"d": {"a": 1}}, "metadata 'd' is a dict"),
    ({"n": np.int64(3)}, "metadata 'n' is a int64; Chroma stores only str, int, float, bool"),
]


@pytest.mark.parametrize(("metadata", "expected"), REFUSED)
def test_unstorable_metadata_is_refused_before_embedding_naming_the_key(
    index: RagIndex, server: LocalOllama, metadata: dict[str, Any], expected: str
) -> None:
    texts = ["富士山は日本で一番高い山です。", "長江は中国で一番長い川です。"]
    with pytest.raises(ConfigError, match=re.escape(f"Text 1 (source 'b.txt'): {expected}")):
        index.add_texts(texts, [{"source": "a.txt"}, {"source": "b.txt", **metadata}])
    assert server.request_count("bge-m3") == 0
    assert index.count() == 0  # the good first text was not written either


def test_documents_and_texts_without_source_are_named_by_position(
    index: RagIndex, server: LocalOllama
) -> None:
    documents = [Document("ok", metadata={"a": 1}), Document("bad", metadata={"a": math.nan})]
    with pytest.raises(ConfigError, match=r"^Document 1: metadata 'a' is nan"):
        index.add_documents(documents)
    with pytest.raises(ConfigError, match=r"^Text 0: metadata must be a dict, got a list"):
        index.add_texts(["x"], [["not", "a", "dict"]])  # type: ignore[list-item]
    assert server.request_count("bge-m3") == 0
    assert index.count() == 0


def test_text_with_a_lone_surrogate_is_refused_with_its_offset(
    index: RagIndex, server: LocalOllama
) -> None:
    raw = "ok\ncaf\xe9\n".encode("latin-1")
    text = raw.decode("utf-8", errors="surrogateescape")  # what reading with that handler gives
    with pytest.raises(ConfigError) as info:
        index.add_texts([text], source="notes.txt")
    assert str(info.value).startswith(
        "Text 0 (source 'notes.txt'): the text has a lone surrogate at offset 6"
    )
    assert "errors='replace'" in str(info.value)
    with pytest.raises(ConfigError, match=r"^Document 0: the text has a lone surrogate"):
        index.add_documents([Document(text)])
    assert server.request_count("bge-m3") == 0
    assert index.count() == 0


def test_storable_metadata_is_stored_as_given_and_none_leaves_the_key_out(
    tmp_path: Path, ollama: LocalOllama
) -> None:
    metadata = {
        "skip": None,
        "flag": True,
        "top": 2**63 - 1,
        "bottom": -(2**63),
        "ratio": np.float64(0.5),
        "colour": Colour.RED,
        "label": Label("value"),
        "ints": [Colour.RED, 2],  # an IntEnum is an int: Chroma alone refuses this mix
        "floats": [1.5, 2.0],
        "flags": [True, False],
        "words": ["富士", "山"],
        "nul": "a\x00b",  # Chroma stores NUL in metadata and text as it is
    }
    with RagIndex(tmp_path / "db", model="bge-m3", base_url=ollama.url) as index:
        index.add_texts(["富士山は日本で一番高い山です。"], [metadata], source="fuji.txt")
        (stored,) = index.vectorstore.get(include=["metadatas"])["metadatas"]
    expected = {
        "flag": True,
        "top": 2**63 - 1,
        "bottom": -(2**63),
        "ratio": 0.5,
        "colour": 1,
        "label": "value",
        "ints": [1, 2],
        "floats": [1.5, 2.0],
        "flags": [True, False],
        "words": ["富士", "山"],
        "nul": "a\x00b",
    }
    assert {k: stored[k] for k in expected} == expected
    assert "skip" not in stored
    assert type(stored["flag"]) is bool
    assert type(stored["top"]) is int
