"""CJKTextSplitter: literal chunk tables, offset exactness, properties and JSQuAD quality."""

from __future__ import annotations

import doctest
import json
import random
import re
import time
from pathlib import Path

import pytest
from langchain_core.documents import Document

from ollama_rag import splitting
from ollama_rag.errors import ConfigError
from ollama_rag.splitting import (
    CJK_SEPARATORS,
    DEFAULT_CHUNK_OVERLAP,
    DEFAULT_CHUNK_SIZE,
    DEFAULT_MAX_CHUNK_CHARS,
    MIN_CHUNK_CHARS,
    CJKTextSplitter,
    chunk_settings_for_context,
    ends_at_boundary,
    is_cjk,
)

JSQUAD_DIR = Path(__file__).resolve().parents[1].parent / "shared" / "eval" / "jsquad"

# (text, chunk_size, chunk_overlap, expected chunks)
JAPANESE = [
    (
        "吾輩は猫である。名前はまだ無い。どこで生れたかとんと見当がつかぬ。",
        20,
        0,
        ["吾輩は猫である。名前はまだ無い。", "どこで生れたかとんと見当がつかぬ。"],
    ),
    (
        "「はい。」と言った。『いいえ！』と答えた。",
        10,
        0,
        ["「はい。」と言った。", "『いいえ！』", "と答えた。"],
    ),
    ("本当！？すごい……。でも、まあいいか。", 10, 0, ["本当！？すごい……。", "でも、まあいいか。"]),
    ("えっ!?そうなの?知らなかった。", 8, 0, ["えっ!?", "そうなの?", "知らなかった。"]),
    (
        "注意：この操作は戻せません；よく確認してください。",
        14,
        0,
        ["注意：この操作は戻せません；", "よく確認してください。"],
    ),
    (
        "東京、大阪、名古屋、福岡、札幌、仙台",
        9,
        0,
        ["東京、大阪、", "名古屋、福岡、", "札幌、仙台"],
    ),
    ("全角の数字は３．１４です．次の文．", 14, 0, ["全角の数字は３．１４です．", "次の文．"]),
]
CHINESE = [
    (
        "今天天气很好。我们去公园散步吧！你觉得怎么样？",
        12,
        0,
        ["今天天气很好。", "我们去公园散步吧！", "你觉得怎么样？"],
    ),
    ("他说：“你好。”然后离开了。", 8, 0, ["他说：“你好。”", "然后离开了。"]),
    (
        "虽然下雨了，但是我们还是去了公园。公园里人很少。",
        12,
        0,
        ["虽然下雨了，", "但是我们还是去了公园。", "公园里人很少。"],
    ),
    ("价格是1,000元，含税1,100元。", 14, 0, ["价格是1,000元，", "含税1,100元。"]),
]
KOREAN = [
    (
        "안녕하세요. 저는 학생입니다. 만나서 반갑습니다!",
        16,
        0,
        ["안녕하세요. 저는 학생입니다.", "만나서 반갑습니다!"],
    ),
    (
        "저는 학생입니다. 한국어를 공부합니다? 네!",
        12,
        0,
        ["저는 학생입니다.", "한국어를 공부합니다?", "네!"],
    ),
    ("서울, 부산, 대구, 인천", 8, 0, ["서울, 부산,", "대구, 인천"]),
]
ENGLISH = [
    (
        "The quick brown fox jumps. It lands softly! Does it run? Yes.",
        30,
        0,
        ["The quick brown fox jumps.", "It lands softly! Does it run?", "Yes."],
    ),
    ("Pi is about 3.14159. It never ends.", 20, 0, ["Pi is about 3.14159.", "It never ends."]),
    ('He said "Stop." Then he left.', 16, 0, ['He said "Stop."', "Then he left."]),
]
MIXED = [
    (
        "バージョン3.14をリリースした。Node.jsとPython 3.12に対応。",
        20,
        0,
        ["バージョン3.14をリリースした。", "Node.jsとPython", "3.12に対応。"],
    ),
    (
        "価格は1,000円、税込みで1,100円です。",
        14,
        0,
        ["価格は1,000円、", "税込みで1,100円です。"],
    ),
    (
        "詳細はhttps://example.com/?q=1を参照。以上。",
        32,
        0,
        ["詳細はhttps://example.com/?q=1を参照。", "以上。"],
    ),
    (
        "モデル名はbge-m3:latest。次に、ollama pull bge-m3を実行する。",
        25,
        0,
        ["モデル名はbge-m3:latest。", "次に、", "ollama pull bge-m3を実行する。"],
    ),
    (
        "RAGは「Retrieval-Augmented Generation」の略です。LLMと組み合わせる。",
        30,
        0,
        ["RAGは「Retrieval-Augmented", "Generation」の略です。", "LLMと組み合わせる。"],
    ),
]
LAYOUT = [
    (
        "第一段落です。\n\n第二段落です。\n二行目です。",
        16,
        0,
        ["第一段落です。", "第二段落です。\n二行目です。"],
    ),
    (
        "第一段落です。\n\n第二段落です。\n二行目です。",
        10,
        0,
        ["第一段落です。", "第二段落です。", "二行目です。"],
    ),
    ("第一段落です。\n\n\n  第二段落です。", 10, 0, ["第一段落です。", "第二段落です。"]),
    ("一行目\r\n二行目\r\n三行目", 5, 0, ["一行目", "二行目", "三行目"]),
    ("あいうえおかきくけこさしすせそ", 6, 0, ["あいうえおか", "きくけこさし", "すせそ"]),
    (
        "あいうえおかきくけこさしすせそ",
        6,
        2,
        ["あいうえおか", "おかきくけこ", "けこさしすせ", "すせそ"],
    ),
    ("短い。", 10, 0, ["短い。"]),
    ("", 10, 0, []),
    ("  \n\n \u3000 ", 10, 0, []),
]
OVERLAP = [
    ("一。二。三。四。五。", 6, 2, ["一。二。三。", "三。四。五。"]),
    (
        "这是第一句。这是第二句。这是第三句。这是第四句。",
        12,
        6,
        ["这是第一句。这是第二句。", "这是第二句。这是第三句。", "这是第三句。这是第四句。"],
    ),
    ("はい。はい。はい。はい。", 6, 3, ["はい。はい。", "はい。はい。", "はい。はい。"]),
]
TABLE = JAPANESE + CHINESE + KOREAN + ENGLISH + MIXED + LAYOUT + OVERLAP


@pytest.mark.parametrize(("text", "chunk_size", "overlap", "expected"), TABLE)
def test_split_text(text: str, chunk_size: int, overlap: int, expected: list[str]) -> None:
    assert CJKTextSplitter(chunk_size, overlap).split_text(text) == expected


@pytest.mark.parametrize(("text", "chunk_size", "overlap", "expected"), TABLE)
def test_create_documents_offsets_are_exact(
    text: str, chunk_size: int, overlap: int, expected: list[str]
) -> None:
    docs = CJKTextSplitter(chunk_size, overlap).create_documents([text])
    assert [d.page_content for d in docs] == expected
    for doc in docs:
        start, end = doc.metadata["start_index"], doc.metadata["end_index"]
        assert text[start:end] == doc.page_content


def test_repeated_sentences_get_their_own_offsets() -> None:
    # LangChain's find()-based offsets can land on an earlier copy; ours must not.
    text = "同じ文です。\n\n" * 6 + "同じ文です。"
    docs = CJKTextSplitter(8, 4).create_documents([text])
    starts = [d.metadata["start_index"] for d in docs]
    assert starts == [i * 8 for i in range(7)]
    assert all(
        text[d.metadata["start_index"] : d.metadata["end_index"]] == "同じ文です。" for d in docs
    )


def test_offsets_where_find_would_pick_an_earlier_copy() -> None:
    # LangChain's create_documents searches from previous_end - chunk_overlap and would put
    # the second chunk at 1, where the same two characters occur first.
    spans = CJKTextSplitter(3, 2).split_text_with_offsets("いあ、あ、い、")
    assert spans == [(0, "いあ、"), (3, "あ、"), (5, "い、")]


def test_kept_overlap_followed_by_whitespace_is_not_repeated() -> None:
    # _merge_splits alone would emit "。" at 12 twice.
    text = "あ\n\n。、、い、\n\n\n\n。\n\n。あ、、、、。"
    spans = CJKTextSplitter(5, 4).split_text_with_offsets(text)
    assert [start for start, _ in spans] == [0, 3, 12, 15, 16, 18]


def test_repeated_text_with_overlap_and_flushes() -> None:
    sentence = "はい。"
    text = (sentence * 3 + "ああああああああああああ" + "\n\n") * 3
    spans = CJKTextSplitter(7, 3).split_text_with_offsets(text)
    starts = [start for start, _ in spans]
    assert starts == sorted(set(starts))
    for start, chunk in spans:
        assert text[start : start + len(chunk)] == chunk


def test_metadata_is_copied_and_offsets_added() -> None:
    source = {"source": "a.txt", "tags": ["x"]}
    docs = CJKTextSplitter(10, 0).create_documents(
        ["一文目です。二文目です。", "三文目。"], metadatas=[source, {"source": "b.txt"}]
    )
    assert [d.metadata for d in docs] == [
        {"source": "a.txt", "tags": ["x"], "start_index": 0, "end_index": 6},
        {"source": "a.txt", "tags": ["x"], "start_index": 6, "end_index": 12},
        {"source": "b.txt", "start_index": 0, "end_index": 4},
    ]
    docs[0].metadata["tags"].append("y")
    assert docs[1].metadata["tags"] == ["x"]
    assert source == {"source": "a.txt", "tags": ["x"]}


def test_split_documents_keeps_input_metadata() -> None:
    docs = CJKTextSplitter(10, 0).split_documents(
        [Document(page_content="一文目です。二文目です。", metadata={"source": "a.txt", "page": 3})]
    )
    assert [(d.page_content, d.metadata) for d in docs] == [
        ("一文目です。", {"source": "a.txt", "page": 3, "start_index": 0, "end_index": 6}),
        ("二文目です。", {"source": "a.txt", "page": 3, "start_index": 6, "end_index": 12}),
    ]


def test_add_start_index_false_adds_no_offsets() -> None:
    docs = CJKTextSplitter(10, 0, add_start_index=False).create_documents(["一文目です。"])
    assert docs[0].metadata == {}


def test_metadatas_length_mismatch() -> None:
    with pytest.raises(ConfigError, match="1 metadata dicts for 2 texts"):
        CJKTextSplitter(10, 0).create_documents(["一。", "二。"], metadatas=[{}])


def test_empty_metadatas_list_means_none_as_in_langchain() -> None:
    docs = CJKTextSplitter(10, 0).create_documents(["一。"], metadatas=[])
    assert docs[0].metadata == {"start_index": 0, "end_index": 2}


def test_strip_whitespace_false_keeps_exact_slices() -> None:
    text = "一文目です。 二文目です。\n\n三文目。"
    spans = CJKTextSplitter(8, 0, strip_whitespace=False).split_text_with_offsets(text)
    assert [chunk for _, chunk in spans] == ["一文目です。 ", "二文目です。", "\n\n三文目。"]
    assert "".join(chunk for _, chunk in spans) == text
    assert all(text[s : s + len(c)] == c for s, c in spans)


def test_custom_separators_are_regexes_and_end_with_characters() -> None:
    splitter = CJKTextSplitter(6, 0, separators=[re.escape("|")])
    assert splitter.separators == ("\\|", "")
    assert splitter.split_text("ab|cd|efghijklmn") == ["ab|cd|", "efghij", "klmn"]
    assert CJKTextSplitter(6, 0, separators=["a", "", "b"]).separators == ("a", "")


def test_defaults() -> None:
    splitter = CJKTextSplitter()
    assert splitter._chunk_size == DEFAULT_CHUNK_SIZE
    assert splitter._chunk_overlap == DEFAULT_CHUNK_OVERLAP
    assert splitter.separators == CJK_SEPARATORS
    assert chunk_settings_for_context(512) == (DEFAULT_CHUNK_SIZE, DEFAULT_CHUNK_OVERLAP)


# ------------------------------------------------------------------ errors


@pytest.mark.parametrize(("chunk_size", "overlap"), [(100, 100), (100, 150), (1, 1)])
def test_overlap_not_below_size_is_config_error(chunk_size: int, overlap: int) -> None:
    with pytest.raises(ConfigError) as info:
        CJKTextSplitter(chunk_size, overlap)
    message = str(info.value)
    assert f"chunk_overlap ({overlap})" in message
    assert f"chunk_size ({chunk_size})" in message
    assert "chunk_overlap=" in message  # names the fix
    assert isinstance(info.value, ValueError)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"chunk_size": 0, "chunk_overlap": 0}, "chunk_size must be at least 1, got 0"),
        ({"chunk_size": 10, "chunk_overlap": -1}, "chunk_overlap must be 0 or more, got -1"),
        ({"chunk_size": 10, "chunk_overlap": 0, "keep_separator": "start"}, "keep_separator"),
        ({"chunk_size": 10, "chunk_overlap": 0, "separators": ["("]}, "re.escape"),
    ],
)
def test_bad_arguments_are_config_errors(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(match)):
        CJKTextSplitter(**kwargs)  # type: ignore[arg-type]


# ------------------------------------------------------------------ separators


@pytest.mark.parametrize(
    ("text", "pieces"),
    [
        ("「はい。」と言った。", ["「はい。」", "と言った。"]),
        ("本当！？まさか。", ["本当！？", "まさか。"]),
        ('He won! She said "Wow!" and left.', ["He won! ", 'She said "Wow!" ', "and left."]),
        ("すごい!」と", ["すごい!」", "と"]),
        ("Yahoo!'s tale", ["Yahoo!'s tale"]),
        ("3.14 and ３．１４", ["3.14 and ３．１４"]),
        ("https://a.example/?q=1&x=2", ["https://a.example/?q=1&x=2"]),
        ("そうですね……でも", ["そうですね……でも"]),
        ("End. Next", ["End. ", "Next"]),
        ("U.S.A.の", ["U.S.A.の"]),
    ],
)
def test_sentence_tier(text: str, pieces: list[str]) -> None:
    cuts = [m.end() for m in re.finditer(CJK_SEPARATORS[2], text) if m.end() < len(text)]
    got = [text[a:b] for a, b in zip([0, *cuts], [*cuts, len(text)], strict=True)]
    assert got == pieces


@pytest.mark.parametrize(
    ("tier", "text", "matches"),
    [
        (3, "注意：時刻は10:30です; 次", ["：", "; "]),
        (3, "a:b", []),
        (4, "東京、大阪，北京, Seoul,1,000", ["、", "，", ", "]),
        (0, "a\n\n  \nb\nc", ["\n\n  \n"]),
        (1, "a\nb", ["\n"]),
    ],
)
def test_other_tiers(tier: int, text: str, matches: list[str]) -> None:
    assert [m.group() for m in re.finditer(CJK_SEPARATORS[tier], text)] == matches


# ------------------------------------------------------------------ properties

_TOKENS = [
    "吾輩", "は", "猫", "である", "。", "、", "！", "？", "「", "」", "『", "』", "（", "）",
    "\n", "\n\n", " ", "\u3000", "Hello", "world", ".", ",", "!", "?", "3.14", "1,000",
    "안녕", "하세요", "；", "：", "……", "我们", "，", "https://x.example/?a=1", "ああああああ",
    "𠮷野家", "😀",
]  # fmt: skip


def _random_text(seed: int) -> str:
    rng = random.Random(seed)
    return "".join(rng.choice(_TOKENS) for _ in range(rng.randint(0, 300)))


_PROPERTY_CASES = [
    (seed, size, overlap)
    for seed in range(40)
    for size, overlap in [(1, 0), (5, 0), (10, 3), (32, 8), (64, 0), (120, 40)]
]


@pytest.mark.parametrize(("seed", "chunk_size", "overlap"), _PROPERTY_CASES)
def test_properties(seed: int, chunk_size: int, overlap: int) -> None:
    text = _random_text(seed)
    docs = CJKTextSplitter(chunk_size, overlap).create_documents([text])
    previous_start, previous_end = -1, 0
    covered: list[str] = []
    for doc in docs:
        chunk, start, end = doc.page_content, doc.metadata["start_index"], doc.metadata["end_index"]
        assert 0 < len(chunk) <= chunk_size
        assert text[start:end] == chunk
        assert chunk == chunk.strip()
        assert start > previous_start
        assert end > previous_end
        assert max(0, previous_end - start) <= overlap
        covered.append(text[max(start, previous_end) : end])
        previous_start, previous_end = start, max(previous_end, end)
    # Chunks with the overlaps removed hold all of the text except whitespace.
    assert re.sub(r"\s", "", "".join(covered)) == re.sub(r"\s", "", text)


def test_long_runs_of_latin_punctuation_stay_linear() -> None:
    began = time.perf_counter()
    for text in ("." * 20_000 + "x", "!?" * 10_000 + "x", "\n" + " " * 20_000 + "x"):
        chunks = CJKTextSplitter(100, 10).split_text(text)
        assert all(len(chunk) <= 100 for chunk in chunks)
    assert time.perf_counter() - began < 5


def test_split_text_returns_plain_strings() -> None:
    chunks = CJKTextSplitter(5, 0).split_text("一文目です。二文目。")
    assert all(type(chunk) is str for chunk in chunks)


# ------------------------------------------------------------------ helpers


@pytest.mark.parametrize(
    ("context", "chars_per_token", "expected"),
    [
        (512, 1.0, (446, 55)),
        (256, 1.0, (216, 27)),
        (2048, 1.0, (DEFAULT_MAX_CHUNK_CHARS, DEFAULT_MAX_CHUNK_CHARS // 8)),
        (8192, 1.0, (1000, 125)),
        (64, 1.0, (MIN_CHUNK_CHARS, MIN_CHUNK_CHARS // 8)),
        (1, 1.0, (MIN_CHUNK_CHARS, 8)),
        (512, 2.0, (892, 111)),
        (512, 0.5, (223, 27)),
    ],
)
def test_chunk_settings_for_context(
    context: int, chars_per_token: float, expected: tuple[int, int]
) -> None:
    size, overlap = chunk_settings_for_context(context, chars_per_token=chars_per_token)
    assert (size, overlap) == expected
    assert 0.10 <= overlap / size <= 0.15
    CJKTextSplitter(size, overlap)  # always a valid pair


def test_chunk_settings_fit_the_context_in_cjk_tokens() -> None:
    for context in (128, 256, 512, 1024):
        size, _ = chunk_settings_for_context(context)
        assert size + 16 <= context  # one token per CJK character plus special tokens


@pytest.mark.parametrize(
    "kwargs",
    [
        {"context_length": 0},
        {"context_length": 512, "chars_per_token": 0},
        {"context_length": 512, "reserved_tokens": -1},
    ],
)
def test_chunk_settings_errors(kwargs: dict[str, float]) -> None:
    with pytest.raises(ConfigError):
        chunk_settings_for_context(**kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("漢", True),
        ("ひらがな", True),
        ("カタカナ", True),
        ("ｶﾀｶﾅ", True),
        ("한국어", True),
        ("ㄅㄆㄇ", True),
        ("、", True),
        ("\u3000", True),
        ("𠮷", True),
        ("English text.", False),
        ("café – naïve", False),
        ("", False),
        ("mixed 漢字", True),
    ],
)
def test_is_cjk(text: str, expected: bool) -> None:
    assert is_cjk(text) is expected


@pytest.mark.parametrize(
    ("text", "end", "expected"),
    [
        ("文です。次", 4, True),
        ("「文です。」次", 6, True),
        ("文です。」）次", 7, True),
        ("文です、次", 4, False),
        ("本当！？次", 4, True),
        ("Yes! Next", 4, True),
        ("End. Next", 4, True),
        ("Pi 3.14", 5, False),
        ("文です  \n次", 3, True),
        ("文です", 3, True),
        ("文です  ", 3, True),
        ("文です 次", 3, False),
        ("文です。  次", 6, True),
    ],
)
def test_ends_at_boundary(text: str, end: int, expected: bool) -> None:
    assert ends_at_boundary(text, end) is expected


def test_doctests() -> None:
    result = doctest.testmod(splitting)
    assert result.attempted > 0
    assert result.failed == 0


def test_module_all_is_sorted() -> None:
    # ruff's RUF022 order: CONSTANTS, then Classes, then functions, each alphabetical.
    def kind(name: str) -> tuple[int, str]:
        return (0 if name.isupper() else 1 if name[0].isupper() else 2), name

    assert splitting.__all__ == sorted(splitting.__all__, key=kind)


# ------------------------------------------------------------------ JSQuAD quality


def _jsquad_articles() -> list[str]:
    path = JSQUAD_DIR / "passages.jsonl"
    if not path.is_file():
        pytest.skip(f"JSQuAD passages not found at {path} (shared/ must sit beside the repo)")
    articles: dict[str, list[str]] = {}
    with path.open(encoding="utf-8") as lines:
        for line in lines:
            row = json.loads(line)
            articles.setdefault(row["title"], []).append(row["text"])
    return ["\n\n".join(passages) for passages in articles.values()]


@pytest.mark.parametrize("chunk_size", [200, 300, 400])
def test_jsquad_chunks_end_at_sentence_boundaries(chunk_size: int) -> None:
    articles = _jsquad_articles()
    assert len(articles) == 23
    splitter = CJKTextSplitter(chunk_size, chunk_size // 10)
    chunks = at_boundary = 0
    for text in articles:
        for start, chunk in splitter.split_text_with_offsets(text):
            assert len(chunk) <= chunk_size
            assert text[start : start + len(chunk)] == chunk
            chunks += 1
            at_boundary += ends_at_boundary(text, start + len(chunk))
    assert at_boundary / chunks >= 0.98, f"{at_boundary}/{chunks} chunks end at a boundary"
