"""What ollama-rag knows about popular Ollama embedding models, without asking a server.

Each :class:`KnownModel` records what a model's card and Ollama's own behaviour say: its vector
dimension, the context Ollama really applies (often less than the model was trained on), the
languages it was trained for, and the prefixes it expects before documents and queries. Ollama
adds no prefixes itself (the embedding models' template is ``{{ .Prompt }}``), so a model that
wants ``search_query: `` before a query only gets it if the caller adds it.

Models that are not listed still work: their dimension and context come from ``/api/show``
(:func:`ollama_rag.ollama.probe_model`); they simply get no prefixes.

Sources (``reference/ollama-api.md``, the project's Ollama reference: its section 4 table collects
the evidence below, section 1.8 the context rules):

* Effective context. Ollama embeds at most ``min(num_ctx, <arch>.context_length)`` tokens per
  input, and new builds also cap embeddings at ``num_batch = min(2048, num_ctx)`` unless the
  request or the Modelfile sets ``num_batch`` (reference §1.8, ollama#14259). So any model
  trained on more than 2048 tokens is recorded with ``context_length=2048`` and its trained value
  in ``trained_context_length``.
* bge-m3: 1024-d, ``bert.context_length`` 8192, capped to 2048 (ollama#14259); no prefixes;
  multilingual (100+ languages). Reference §4, zammad/zammad#6281 ``/api/tags`` dump.
* nomic-embed-text (v1.5): 768-d, ``nomic-bert.context_length`` 2048 (the Modelfile's
  ``num_ctx 8192`` is clamped to it since Ollama 0.9.3, ollama#11214); the prefixes
  ``search_document: `` / ``search_query: `` are required (HF model card); English.
* mxbai-embed-large: 1024-d, 512 tokens; query prompt ``Represent this sentence for searching
  relevant passages: ``, none for documents (mixedbread.ai docs); English.
* all-minilm: 384-d (22m = all-MiniLM-L6-v2, 33m = L12-v2). BERT position table 512, but a
  runner log shows a 256-token batch (ollama#14186) and sentence-transformers caps it at 256, so
  256 is recorded; the exact GGUF value is not verified. No prefixes; English.
* snowflake-arctic-embed (v1): 22m/33m 384-d, 110m 768-d, 137m (m-long, ``nomic-bert``) 768-d
  with 2048 in practice (ollama#7741), 335m (l, the ``latest`` tag) 1024-d; 512 tokens otherwise;
  the same query prompt as mxbai (HF model card table); English.
* snowflake-arctic-embed2 (568M, XLM-R based): 1024-d, 8192 trained, capped to 2048; query
  prefix ``query: `` (HF Snowflake card; not verified against a server); multilingual.
* granite-embedding: 30m English 384-d, 278m multilingual 768-d (12 languages listed on the
  Ollama library page), 512 tokens, no prefixes. Which tag ``latest`` points to is not verified;
  it is taken to be 30m, the first size the library lists.
* qwen3-embedding: 0.6b/4b/8b give 1024/2560/4096-d (MRL), trained on 32k tokens (capped to
  2048); queries take ``Instruct: <task>``, a newline, then ``Query:<query>`` (no space after
  ``Query:``, as in the official ``get_detailed_instruct``), documents nothing (ollama#12088,
  QwenLM/Qwen3-Embedding); ``latest`` is taken to be 8b (not verified); multilingual.
* embeddinggemma (300m): 768-d (MRL), 2048 tokens (Modelfile ``num_ctx 2048``, ``num_batch
  2048``, ollama#12183); query ``task: search result | query: ``, document
  ``title: none | text: `` (Google model card); multilingual.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final

from ollama_rag.errors import ConfigError, Explained, Fix
from ollama_rag.splitting import cjk_share

__all__ = [
    "KNOWN_MODELS",
    "MULTILINGUAL",
    "KnownModel",
    "is_english_only",
    "known_model",
    "recommended_model",
    "warn_if_english_only",
]

MULTILINGUAL: Final = "multilingual"
"""The ``languages`` entry of models trained on many (100+) languages."""

# Ollama embeds at most this many tokens per input unless num_batch is raised (reference §1.8).
_BATCH_CAP = 2048

_QUERY_INSTRUCTION: Final = "Represent this sentence for searching relevant passages: "
_QWEN3_QUERY: Final = (
    "Instruct: Given a web search query, retrieve relevant passages that answer the query\nQuery:"
)
_GRANITE_278M_LANGUAGES: Final = (
    "en", "de", "es", "fr", "ja", "pt", "ar", "cs", "it", "ko", "nl", "zh",
)  # fmt: skip


@dataclass(frozen=True)
class KnownModel:
    """One Ollama embedding model (one size of a family) and how to use it.

    Attributes:
        name: The Ollama name, with the size tag when the family has several sizes
            (``bge-m3``, ``snowflake-arctic-embed:22m``).
        dimension: Length of the vectors.
        context_length: Tokens Ollama really embeds per input before truncating.
        trained_context_length: The model's own context (``<arch>.context_length``).
        languages: ``("multilingual",)``, or ISO 639-1 codes such as ``("en",)``.
        document_prefix: Text to put before every document (chunk) before embedding.
        query_prefix: Text to put before every search query before embedding.
        tags: Every Ollama tag naming this size (``latest`` for the default size); quantised
            tags such as ``335m-l-fp16`` are matched by their first part.
        parameters: Parameter count as Ollama shows it, e.g. ``"567M"``.
        notes: What to know when choosing it.
        source: Where the figures come from.
    """

    name: str
    dimension: int
    context_length: int
    trained_context_length: int
    languages: tuple[str, ...]
    document_prefix: str = ""
    query_prefix: str = ""
    tags: tuple[str, ...] = ("latest",)
    parameters: str = ""
    notes: str = ""
    source: str = ""

    @property
    def family(self) -> str:
        """The model name without its tag, e.g. ``snowflake-arctic-embed``."""
        return self.name.partition(":")[0]

    @property
    def multilingual(self) -> bool:
        """Whether the model was trained for many languages."""
        return MULTILINGUAL in self.languages

    @property
    def english_only(self) -> bool:
        """Whether English is the only language the model was trained for."""
        return self.languages == ("en",)

    def supports(self, language: str) -> bool:
        """Whether the model was trained for ``language`` (an ISO 639-1 code such as ``"ja"``)."""
        return self.multilingual or _primary_language(language) in self.languages


def _entries() -> tuple[KnownModel, ...]:
    reference = "reference/ollama-api.md §4"
    arctic = "HF Snowflake/snowflake-arctic-embed model card table; " + reference
    return (
        KnownModel(
            name="bge-m3",
            dimension=1024,
            context_length=_BATCH_CAP,
            trained_context_length=8192,
            languages=(MULTILINGUAL,),
            tags=("latest", "567m"),
            parameters="567M",
            notes=(
                "Multilingual (100+ languages): the default for Chinese, Japanese and Korean. "
                "Trained on 8192 tokens, but Ollama embeds at most 2048 unless num_batch is "
                "raised (ollama#14259)."
            ),
            source=reference + "; zammad/zammad#6281 /api/tags dump; ollama#14259",
        ),
        KnownModel(
            name="nomic-embed-text",
            dimension=768,
            context_length=2048,
            trained_context_length=2048,
            languages=("en",),
            document_prefix="search_document: ",
            query_prefix="search_query: ",
            tags=("latest", "v1.5", "137m"),
            parameters="137M",
            notes=(
                "English. The task prefixes are required. The Modelfile's num_ctx 8192 is "
                "clamped to the GGUF's 2048 since Ollama 0.9.3 (ollama#11214)."
            ),
            source=reference + "; HF nomic-ai/nomic-embed-text-v1.5 card; ollama#11214",
        ),
        KnownModel(
            name="mxbai-embed-large",
            dimension=1024,
            context_length=512,
            trained_context_length=512,
            languages=("en",),
            query_prefix=_QUERY_INSTRUCTION,
            tags=("latest", "335m", "v1"),
            parameters="334M",
            notes="English. Queries take an instruction; documents none.",
            source=reference + "; mixedbread.ai docs (24 layers, 1024 dim, 512 tokens)",
        ),
        KnownModel(
            name="all-minilm",
            dimension=384,
            context_length=256,
            trained_context_length=512,
            languages=("en",),
            tags=("latest", "22m", "l6-v2"),
            parameters="22M",
            notes=(
                "English, very small and fast (all-MiniLM-L6-v2). Inputs beyond 256 tokens "
                "are cut (runner log in ollama#14186; exact GGUF value not verified)."
            ),
            source=reference + "; ollama docs/api.md example; ollama#14186",
        ),
        KnownModel(
            name="all-minilm:33m",
            dimension=384,
            context_length=256,
            trained_context_length=512,
            languages=("en",),
            tags=("33m", "l12-v2"),
            parameters="33M",
            notes="English (all-MiniLM-L12-v2); as all-minilm, 256 tokens in practice.",
            source=reference + "; ollama#14186",
        ),
        KnownModel(
            name="snowflake-arctic-embed:22m",
            dimension=384,
            context_length=512,
            trained_context_length=512,
            languages=("en",),
            query_prefix=_QUERY_INSTRUCTION,
            tags=("22m", "xs"),
            parameters="22M",
            notes="English (arctic-embed-xs).",
            source=arctic,
        ),
        KnownModel(
            name="snowflake-arctic-embed:33m",
            dimension=384,
            context_length=512,
            trained_context_length=512,
            languages=("en",),
            query_prefix=_QUERY_INSTRUCTION,
            tags=("33m", "s"),
            parameters="33M",
            notes="English (arctic-embed-s).",
            source=arctic,
        ),
        KnownModel(
            name="snowflake-arctic-embed:110m",
            dimension=768,
            context_length=512,
            trained_context_length=512,
            languages=("en",),
            query_prefix=_QUERY_INSTRUCTION,
            tags=("110m", "m"),
            parameters="110M",
            notes="English (arctic-embed-m).",
            source=arctic,
        ),
        KnownModel(
            name="snowflake-arctic-embed:137m",
            dimension=768,
            context_length=2048,
            trained_context_length=2048,
            languages=("en",),
            query_prefix=_QUERY_INSTRUCTION,
            tags=("137m", "m-long"),
            parameters="137M",
            notes=(
                "English (arctic-embed-m-long, a nomic-bert model): 2048 tokens in Ollama "
                "whatever num_ctx says (ollama#7741)."
            ),
            source=arctic + "; ollama#7741",
        ),
        KnownModel(
            name="snowflake-arctic-embed",
            dimension=1024,
            context_length=512,
            trained_context_length=512,
            languages=("en",),
            query_prefix=_QUERY_INSTRUCTION,
            tags=("latest", "335m", "l"),
            parameters="335M",
            notes="English (arctic-embed-l, the latest tag).",
            source=arctic,
        ),
        KnownModel(
            name="snowflake-arctic-embed2",
            dimension=1024,
            context_length=_BATCH_CAP,
            trained_context_length=8192,
            languages=(MULTILINGUAL,),
            query_prefix="query: ",
            tags=("latest", "568m"),
            parameters="568M",
            notes=(
                "Multilingual (XLM-R based, arctic-embed-l-v2.0). Query prefix from the model "
                "card, not verified against a server; 8192 trained, 2048 in Ollama."
            ),
            source=reference + "; HF Snowflake/snowflake-arctic-embed-l-v2.0 card",
        ),
        KnownModel(
            name="granite-embedding",
            dimension=384,
            context_length=512,
            trained_context_length=512,
            languages=("en",),
            tags=("latest", "30m", "30m-en"),
            parameters="30M",
            notes="English only (the 30m size; latest assumed to be 30m, not verified).",
            source=reference + "; ollama.com/library/granite-embedding",
        ),
        KnownModel(
            name="granite-embedding:278m",
            dimension=768,
            context_length=512,
            trained_context_length=512,
            languages=_GRANITE_278M_LANGUAGES,
            tags=("278m",),
            parameters="278M",
            notes="12 languages including Japanese, Korean and Simplified Chinese.",
            source=reference + "; ollama.com/library/granite-embedding",
        ),
        KnownModel(
            name="qwen3-embedding:0.6b",
            dimension=1024,
            context_length=_BATCH_CAP,
            trained_context_length=32768,
            languages=(MULTILINGUAL,),
            query_prefix=_QWEN3_QUERY,
            tags=("0.6b",),
            parameters="0.6B",
            notes=(
                "Multilingual (100+ languages), last-token pooling. Queries take an "
                "instruction ending in 'Query:' with no space; 32k trained, 2048 in Ollama."
            ),
            source=reference + "; ollama#12088; QwenLM/Qwen3-Embedding#177",
        ),
        KnownModel(
            name="qwen3-embedding:4b",
            dimension=2560,
            context_length=_BATCH_CAP,
            trained_context_length=32768,
            languages=(MULTILINGUAL,),
            query_prefix=_QWEN3_QUERY,
            tags=("4b",),
            parameters="4B",
            notes="As qwen3-embedding:0.6b, larger.",
            source=reference + "; ollama#12088",
        ),
        KnownModel(
            name="qwen3-embedding",
            dimension=4096,
            context_length=_BATCH_CAP,
            trained_context_length=32768,
            languages=(MULTILINGUAL,),
            query_prefix=_QWEN3_QUERY,
            tags=("latest", "8b"),
            parameters="8B",
            notes="The 8b size (latest assumed to be 8b, not verified); needs a large GPU.",
            source=reference + "; ollama#12088; ollama#13557",
        ),
        KnownModel(
            name="embeddinggemma",
            dimension=768,
            context_length=2048,
            trained_context_length=2048,
            languages=(MULTILINGUAL,),
            document_prefix="title: none | text: ",
            query_prefix="task: search result | query: ",
            tags=("latest", "300m"),
            parameters="300M",
            notes=(
                "Multilingual (100+ languages), small. Runs on Ollama 0.11.10 and later; it is "
                "known to evict other loaded models (ollama#12247)."
            ),
            source=reference + "; ollama#12183 (ollama show); Google model card",
        ),
    )


KNOWN_MODELS: Mapping[str, KnownModel] = MappingProxyType({m.name: m for m in _entries()})
"""Every known model by :attr:`KnownModel.name`; look names up with :func:`known_model`."""

# family -> tag -> entry; a family with one entry also answers to tags not listed.
_BY_FAMILY: dict[str, dict[str, KnownModel]] = {}
for _model in KNOWN_MODELS.values():
    for _tag in _model.tags:
        _BY_FAMILY.setdefault(_model.family, {})[_tag] = _model
del _model, _tag

_OFFICIAL_NAMESPACES = ("registry.ollama.ai/library/", "library/")


def _split_name(name: str) -> tuple[str, str] | None:
    """``(family, tag)`` of an official library model name, or None for anyone else's model."""
    text = name.strip().lower()
    if not text or re.search(r"\s", text):
        return None
    for namespace in _OFFICIAL_NAMESPACES:
        if text.startswith(namespace):
            text = text[len(namespace) :]
            break
    # A remaining slash names a user's or another registry's model (hf.co/..., me/bge-m3):
    # its weights can be anything, so the registry must not vouch for it.
    if "/" in text:
        return None
    family, _, tag = text.partition(":")
    return family, tag or "latest"


def known_model(name: str) -> KnownModel | None:
    """Look a model name up in the registry, tags and official namespaces included.

    ``bge-m3``, ``bge-m3:latest``, ``library/bge-m3`` and
    ``registry.ollama.ai/library/bge-m3:latest`` are one model. A size tag picks the size,
    with or without a quantisation suffix; the single-size families answer to any tag (their
    tags differ only in quantisation or version label). Models from other namespaces
    (``hf.co/...``, ``user/model``) are never matched.

    >>> known_model("snowflake-arctic-embed:22m").dimension
    384
    >>> known_model("qwen3-embedding:4b-q8_0").dimension
    2560
    >>> known_model("nomic-embed-text:v1.5").name
    'nomic-embed-text'
    >>> known_model("someone/bge-m3") is None
    True

    Args:
        name: An Ollama model name as a user would type it.

    Returns:
        The entry, or None when the model (or the size its tag names) is not known.
    """
    parts = _split_name(name)
    if parts is None:
        return None
    family, tag = parts
    sizes = _BY_FAMILY.get(family)
    if sizes is None:
        return None
    # The longest listed tag the given one starts with: "137m-m-long-fp16" is 137m, "m-long"
    # is m-long rather than m.
    matches = [t for t in sizes if tag == t or tag.startswith(t + "-")]
    if matches:
        return sizes[max(matches, key=len)]
    distinct = set(sizes.values())
    return next(iter(distinct)) if len(distinct) == 1 else None


def is_english_only(name: str) -> bool:
    """Whether ``name`` is a known model trained on English only.

    Unknown models give False: nothing is known against them.

    >>> is_english_only("nomic-embed-text"), is_english_only("bge-m3")
    (True, False)
    """
    model = known_model(name)
    return model is not None and model.english_only


def _primary_language(language: str) -> str:
    return re.split(r"[-_]", language.strip().lower(), maxsplit=1)[0]


_ENGLISH = {"en", "eng", "english"}


def recommended_model(language: str) -> str:
    """The embedding model to pull for text in ``language``.

    English gets ``nomic-embed-text`` (small, strong on English); everything else, CJK above
    all, gets the multilingual ``bge-m3``.

    >>> recommended_model("ja"), recommended_model("zh-Hant"), recommended_model("en")
    ('bge-m3', 'bge-m3', 'nomic-embed-text')

    Args:
        language: An ISO 639-1 code or BCP 47 tag (``"ja"``, ``"zh-CN"``, ``"en"``), or
            ``"multilingual"``.

    Returns:
        An Ollama model name.

    Raises:
        ConfigError: ``language`` is empty.
    """
    primary = _primary_language(language)
    if not primary:
        msg = 'recommended_model() needs a language code, e.g. "ja", "zh", "ko" or "en"'
        raise ConfigError(msg)
    return "nomic-embed-text" if primary in _ENGLISH else "bge-m3"


# Above this share of CJK characters, an English-only model gets a warning.
CJK_WARNING_SHARE = 0.3


def warn_if_english_only(model: str, sample: str, *, stacklevel: int = 2) -> None:
    """Warn when an English-only model is fed mostly CJK text (it embeds it poorly).

    Args:
        model: The embedding model.
        sample: Some of the text being indexed.
        stacklevel: Passed to :func:`warnings.warn`, so the warning points at the user's call.
    """
    share = cjk_share(sample[:20000])
    if share >= CJK_WARNING_SHARE and is_english_only(model):
        better = recommended_model("ja")
        problem = (
            f"{model} is an English-only embedding model, but {share:.0%} of this text "
            f"is Chinese, Japanese or Korean, which it embeds poorly"
        )
        python_fix = (
            f'Use a multilingual model: run "ollama pull {better}", then index.migrate("{better}")'
        )
        warnings.warn(
            Explained(
                f"{problem}. {python_fix}", problem=problem, fix=Fix("migrate", model=better)
            ),
            UserWarning,
            stacklevel=stacklevel + 1,
        )
