"""ollama_rag.loading: discovery, classification, decoding and the per-format readers.

Every test works on real files under ``tmp_path``. PDFs are written by :func:`make_pdf` (a
minimal hand-written PDF, so the tests need pypdf only to read, never to write).
"""

from __future__ import annotations

import hashlib
import os
import random
import sys
from collections.abc import Iterable
from pathlib import Path

import pytest

from ollama_rag.errors import ConfigError, DocumentLoadError
from ollama_rag.loading import (
    DEFAULT_EXCLUDE,
    DEFAULT_MAX_FILE_BYTES,
    PDF_EXTRA_MESSAGE,
    SUPPORTED_SUFFIXES,
    FileEntry,
    LoadedDocument,
    classify,
    decode_text,
    discover,
    file_hash,
    read_bytes,
    read_document,
    span_metadata,
)

needs_symlinks = pytest.mark.skipif(sys.platform == "win32", reason="symlinks need privileges")


def write(path: Path, data: bytes | str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(data, str):
        data = data.encode("utf-8")
    path.write_bytes(data)
    return path


def entry_for(path: Path) -> FileEntry:
    (entry,) = discover(path)
    return entry


def load(
    path: Path, data: bytes | str, *, encoding: str | None = None, normalize: bool = False
) -> LoadedDocument:
    entry = entry_for(write(path, data))
    return read_document(entry, encoding=encoding, normalize=normalize)


def make_pdf(pages: list[str], *, title: str | None = None) -> bytes:
    """A minimal valid PDF with one line of Helvetica (ASCII) text per page."""
    n = len(pages)
    kids = " ".join(f"{3 + 2 * i} 0 R" for i in range(n))
    objects = ["<< /Type /Catalog /Pages 2 0 R >>", f"<< /Type /Pages /Kids [{kids}] /Count {n} >>"]
    font = 3 + 2 * n
    for i, text in enumerate(pages):
        objects.append(
            f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents {4 + 2 * i} 0 R"
            f" /Resources << /Font << /F1 {font} 0 R >> >> >>"
        )
        escaped = text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")
        stream = f"BT /F1 12 Tf 72 720 Td ({escaped}) Tj ET"
        objects.append(f"<< /Length {len(stream)} >>\nstream\n{stream}\nendstream")
    objects.append("<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>")
    info = ""
    if title is not None:
        objects.append(f"<< /Title ({title}) >>")
        info = f" /Info {len(objects)} 0 R"
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += f"{number} 0 obj\n{body}\nendobj\n".encode("latin-1")
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    out += b"".join(f"{offset:010d} 00000 n \n".encode() for offset in offsets)
    trailer = f"<< /Size {len(objects) + 1} /Root 1 0 R{info} >>"
    out += f"trailer\n{trailer}\nstartxref\n{xref}\n%%EOF\n".encode()
    return bytes(out)


# ------------------------------------------------------------------------------ encoding table

JA = [
    "今日は良い天気ですね。",
    "東京駅から新幹線で大阪へ向かいました。",
    "この文書は検索拡張生成のテストに使います。",
    "吾輩は猫である。名前はまだ無い。",
    "ご注文はうさぎですか？",
    "カタカナとひらがなと漢字が混ざった文章です。",
    "明日の会議は午後三時からです。",
    "データベースの設定を確認してください。",
    "雨が降りそうなので、傘を持って出かけた。",
    "彼女は図書館で静かに本を読んでいる。",
]
ZH_HANS = [
    "今天天气很好。",
    "我们明天去北京开会。",
    "这个文档用于测试检索增强生成。",
    "学而时习之，不亦说乎？",
    "请检查数据库的配置是否正确。",
    "人工智能正在改变我们的生活方式。",
    "他每天早上骑自行车去上班。",
    "这本书的作者是一位著名的历史学家。",
]
ZH_HANT = [
    "今天天氣很好。",
    "我們明天去臺北開會。",
    "這個文件用於測試檢索增強生成。",
    "請檢查資料庫的設定是否正確。",
    "人工智慧正在改變我們的生活方式。",
    "他每天早上騎腳踏車去上班。",
    "這本書的作者是一位著名的歷史學家。",
]
KO = [
    "오늘은 날씨가 좋네요.",
    "내일 서울에서 회의가 있습니다.",
    "이 문서는 검색 증강 생성 테스트에 사용됩니다.",
    "데이터베이스 설정을 확인해 주세요.",
    "한국어 문장을 올바르게 읽을 수 있을까요?",
    "저는 매일 아침 자전거를 타고 출근합니다.",
    "도서관에서 조용히 책을 읽고 있어요.",
]
LATIN = [
    "Café crème, naïve résumé.",
    "Das Wetter in München ist schön.",
    "El niño comió piñata — ¡qué día!",
    "Price: 10 € “quoted” text…",
]
MIXED_JA = [
    "RAGはRetrieval-Augmented Generationの略です。",
    "Python 3.12で動作確認済み（2024年4月）。",
    "第1章 概要\n\nこのライブラリは Ollama と Chroma を使います。\n",
]
MIXED_ZH = [
    "RAG是Retrieval-Augmented Generation的缩写。",
    "第1章 概述：本库使用 Ollama 和 Chroma。",
]
MIXED_ZH_HANT = ["RAG是Retrieval-Augmented Generation的縮寫。"]
MIXED_KO = [
    "RAG는 Retrieval-Augmented Generation의 약자입니다.",
    "제1장 개요: Ollama와 Chroma를 사용합니다.",
]

# codec used to write -> encoding the loader must report (the first candidate that reads the
# bytes the same way: shift_jis text is reported as its superset cp932, gb2312 as gbk, ...).
TABLE_CODECS = {
    "ja": {"utf-8": "utf-8", "cp932": "cp932", "shift_jis": "cp932", "euc_jp": "euc_jp"},
    "zh-hans": {"utf-8": "utf-8", "gbk": "gbk", "gb2312": "gbk", "gb18030": "gbk"},
    "zh-hant": {"utf-8": "utf-8", "big5": "big5", "cp950": "big5"},
    "ko": {"utf-8": "utf-8", "euc_kr": "euc_kr", "cp949": "euc_kr"},
    "latin": {"utf-8": "utf-8", "cp1252": "cp1252"},
}
TABLE_TEXTS = {
    "ja": JA + MIXED_JA,
    "zh-hans": ZH_HANS + MIXED_ZH,
    "zh-hant": ZH_HANT + MIXED_ZH_HANT,
    "ko": KO + MIXED_KO,
    "latin": LATIN,
}


def _table() -> list[object]:
    cases: list[object] = []
    for lang, texts in TABLE_TEXTS.items():
        medium = "\n".join(texts) + "\n"
        long = medium * (4096 // len(medium.encode("utf-8")) + 2)  # several KB
        samples = [(f"s{i}", t) for i, t in enumerate(texts)] + [("medium", medium), ("long", long)]
        for codec, expected in TABLE_CODECS[lang].items():
            cases.extend(
                pytest.param(text, codec, expected, id=f"{lang}-{codec}-{name}")
                for name, text in samples
            )
    # Characters only the superset codec has: the loader must report that codec.
    specials = [
        ("刘䶮是南汉的开国皇帝，这个字很少见。", "gb18030", "gb18030"),
        ("价格：100€，欢迎购买。", "gb18030", "gb18030"),
        ("똠방각하는 훌륭한 사람입니다.", "cp949", "cp949"),
        ("這台電腦要價 500 €。", "cp950", "cp950"),
        ("①彅さんの家に行きます。", "cp932", "cp932"),
        ("森鷗外の小説を読みました。", "euc_jp", "euc_jp"),  # 鷗 is JIS X 0212 (3 bytes)
        ("今日は良い天気ですね。明日は雨が降るでしょう。", "iso2022_jp", "iso2022_jp"),
        ("오늘은 날씨가 좋네요.", "iso2022_kr", "iso2022_kr"),
    ]
    cases.extend(
        pytest.param(t, c, e, id=f"special-{c}-{i}") for i, (t, c, e) in enumerate(specials)
    )
    return cases


@pytest.mark.parametrize(("text", "codec", "expected"), _table())
def test_encoding_table_roundtrips_exactly(
    tmp_path: Path, text: str, codec: str, expected: str
) -> None:
    doc = load(tmp_path / "sample.txt", text.encode(codec))
    assert doc.text == text
    assert doc.metadata["encoding"] == expected


def test_shift_jis_wave_dash_reads_as_cp932_unless_forced(tmp_path: Path) -> None:
    # 0x8160 is WAVE DASH in JIS but FULLWIDTH TILDE in cp932, which Windows (and most files)
    # use; the bytes cannot tell them apart, so auto-detection picks cp932.
    data = "10時〜12時です。".encode("shift_jis")
    assert decode_text(data) == ("10時～12時です。", "cp932")
    assert decode_text(data, encoding="shift_jis") == ("10時〜12時です。", "shift_jis")


def test_rank_sample_starts_at_first_non_ascii_byte(tmp_path: Path) -> None:
    # 40 KB of ASCII first: the ranking window must still see the Japanese, and a window
    # boundary that falls inside a two-byte character must not break it.
    text = "x" * 40_001 + "今日は良い天気ですね。\n" * 3000
    doc = load(tmp_path / "late.txt", text.encode("cp932"))
    assert doc.text == text
    assert doc.metadata["encoding"] == "cp932"


def test_truncated_utf8_drops_only_the_cut_character(tmp_path: Path) -> None:
    data = "日本語のテキスト".encode()[:-1]
    assert load(tmp_path / "cut.txt", data).text == "日本語のテキス"


def test_non_cjk_legacy_encoding_falls_back_to_charset_normalizer(tmp_path: Path) -> None:
    text = "Привет, как дела? Сегодня хорошая погода, и мы идём гулять в парк."
    doc = load(tmp_path / "ru.txt", text.encode("cp1251"))
    assert (doc.text, doc.metadata["encoding"]) == (text, "cp1251")


# ---------------------------------------------------------------------------- BOMs and UTF-16


@pytest.mark.parametrize(
    ("bom", "codec", "expected"),
    [
        (b"\xef\xbb\xbf", "utf-8", "utf-8-sig"),
        (b"\xff\xfe", "utf-16-le", "utf-16-le"),
        (b"\xfe\xff", "utf-16-be", "utf-16-be"),
        (b"\xff\xfe\x00\x00", "utf-32-le", "utf-32-le"),
        (b"\x00\x00\xfe\xff", "utf-32-be", "utf-32-be"),
    ],
    ids=["utf-8-sig", "utf-16-le", "utf-16-be", "utf-32-le", "utf-32-be"],
)
def test_bom_is_detected_and_dropped(tmp_path: Path, bom: bytes, codec: str, expected: str) -> None:
    text = "BOM付きのテキスト。한국어도 있습니다。\n"
    doc = load(tmp_path / "bom.txt", bom + text.encode(codec))
    assert (doc.text, doc.metadata["encoding"]) == (text, expected)


@pytest.mark.parametrize("codec", ["utf-16-le", "utf-16-be"])
def test_utf16_without_bom_is_recognised_by_its_nul_bytes(tmp_path: Path, codec: str) -> None:
    text = "Plain English text saved as UTF-16 without a byte order mark.\n"
    path = write(tmp_path / "u16.txt", text.encode(codec))
    assert classify(entry_for(path)) is None
    doc = read_document(entry_for(path))
    assert (doc.text, doc.metadata["encoding"]) == (text, codec)


# ------------------------------------------------------------------------------ forced encoding


def test_forced_encoding_overrides_detection(tmp_path: Path) -> None:
    # Six characters of EUC-JP that also read as plausible GBK: forcing settles it.
    data = "函数会把输入".encode("gbk")
    doc = load(tmp_path / "f.txt", data, encoding="gbk")
    assert (doc.text, doc.metadata["encoding"]) == ("函数会把输入", "gbk")


def test_forced_encoding_strips_a_bom(tmp_path: Path) -> None:
    doc = load(tmp_path / "f.txt", "\ufeffテキスト".encode("utf-16-le"), encoding="utf-16-le")
    assert doc.text == "テキスト"


def test_wrong_forced_encoding_names_file_and_fix(tmp_path: Path) -> None:
    with pytest.raises(DocumentLoadError) as info:
        load(tmp_path / "sub" / "f.txt", "今日は".encode("euc_jp"), encoding="utf-8")
    assert str(info.value).startswith("f.txt: cannot be decoded: it is not valid utf-8")
    assert "encoding=" in str(info.value)
    assert info.value.source == "f.txt"


def test_unknown_encoding_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not a text codec"):
        load(tmp_path / "f.txt", b"abc", encoding="no-such-codec")
    with pytest.raises(ConfigError, match="not a text codec"):
        decode_text(b"abc", encoding="base64")


# ---------------------------------------------------------------------------- undecodable bytes


def _random_high_bytes(n: int) -> bytes:
    rng = random.Random(20240601)
    return bytes(rng.randrange(0x80, 0x100) for _ in range(n))


@pytest.mark.parametrize(
    "data",
    [_random_high_bytes(4096), b"\xf0\x40" * 200, b"abc \xff\xfe\xfd\xfc def " * 20],
    ids=["random-high-bytes", "private-use-only", "invalid-everywhere"],
)
def test_undecodable_file_is_reported_by_name_with_reason(tmp_path: Path, data: bytes) -> None:
    path = write(tmp_path / "docs" / "bad.txt", data)
    (entry,) = discover(tmp_path / "docs")
    assert classify(entry) is None  # not binary-looking: only decoding can tell
    with pytest.raises(DocumentLoadError) as info:
        read_document(entry)
    message = str(info.value)
    assert message.startswith("bad.txt: cannot be decoded: it is not UTF-8")
    assert "encoding=" in message
    assert info.value.source == "bad.txt"
    assert path.exists()


def test_decode_text_error_has_no_source() -> None:
    with pytest.raises(DocumentLoadError, match="the bytes cannot be decoded") as info:
        decode_text(b"\xf0\x40" * 200)
    assert info.value.source is None


# ------------------------------------------------------------------- newlines and normalisation


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("a.txt", "one\ntwo\nthree\n"),
        ("a.md", "one\ntwo\nthree\n"),
        ("a.html", "one two three"),  # HTML collapses source line breaks
        ("b.html", "one\ntwo\nthree"),
    ],
)
def test_newlines_are_unified(tmp_path: Path, name: str, expected: str) -> None:
    data = b"one\r\ntwo\rthree\n"
    if name == "b.html":
        data = b"<pre>" + data + b"</pre>"
    assert load(tmp_path / name, data).text == expected


def test_newlines_are_unified_in_utf16(tmp_path: Path) -> None:
    doc = load(tmp_path / "a.txt", "\ufeffa\r\nb\rc".encode("utf-16-le"))
    assert doc.text == "a\nb\nc"


def test_nfkc_is_off_by_default_and_optional(tmp_path: Path) -> None:
    text = "# ＡＢＣ１２３\n\nｶﾀｶﾅと㈱\n"
    path = write(tmp_path / "n.md", text)
    plain = read_document(entry_for(path))
    assert plain.text == text
    assert plain.metadata["title"] == "ＡＢＣ１２３"
    folded = read_document(entry_for(path), normalize=True)
    assert folded.text == "# ABC123\n\nカタカナと(株)\n"
    assert folded.metadata["title"] == "ABC123"
    assert folded.spans == ((0, len(folded.text), {"heading": "ABC123"}),)


# ------------------------------------------------------------------------------------ Markdown

MARKDOWN = """\
---
title: 設計メモ
# YAMLのコメント
---
前書きの段落。

# 第1章 はじめに

本文です。

## 背景

```python
# コードの中のコメントは見出しではない
print("## nor this")
```

~~~
# nor this
~~~

### 詳細 ###

#ハッシュタグは見出しではない

## **強調**された[リンク](https://example.com)

Setext 見出し
=============

サブ見出し
----------

最後の段落。
"""


def test_markdown_heading_spans(tmp_path: Path) -> None:
    doc = load(tmp_path / "m.md", MARKDOWN)
    assert doc.text == MARKDOWN  # Markdown is kept verbatim; headings become span metadata
    assert doc.metadata == {
        "file_type": "md",
        "encoding": "utf-8",
        "file_size": len(MARKDOWN.encode()),
        "title": "設計メモ",
    }
    expected = [
        ("# 第1章 はじめに", "第1章 はじめに"),
        ("## 背景", "第1章 はじめに > 背景"),
        ("### 詳細 ###", "第1章 はじめに > 背景 > 詳細"),
        ("## **強調**", "第1章 はじめに > 強調されたリンク"),  # inline markup dropped
        ("Setext 見出し", "Setext 見出し"),
        ("サブ見出し", "Setext 見出し > サブ見出し"),
    ]
    starts = [MARKDOWN.index(marker) for marker, _ in expected]
    ends = [*starts[1:], len(MARKDOWN)]
    assert doc.spans == tuple(
        (start, end, {"heading": heading})
        for start, end, (_, heading) in zip(starts, ends, expected, strict=True)
    )
    assert span_metadata(doc.spans, 0) == {}  # front matter and preamble have no heading
    assert span_metadata(doc.spans, MARKDOWN.index("# コードの中")) == {
        "heading": "第1章 はじめに > 背景"
    }
    assert span_metadata(doc.spans, MARKDOWN.index("最後の段落")) == {
        "heading": "Setext 見出し > サブ見出し"
    }


def test_markdown_title_is_first_h1_and_levels_can_be_skipped(tmp_path: Path) -> None:
    text = "## 概要\n\n# タイトル\n\n### 深い見出し\n\n本文\n"
    doc = load(tmp_path / "m.md", text)
    assert doc.metadata["title"] == "タイトル"
    assert [s[2]["heading"] for s in doc.spans] == ["概要", "タイトル", "タイトル > 深い見出し"]


def test_markdown_without_headings_has_no_spans_or_title(tmp_path: Path) -> None:
    # "---" under a list item or after a blank line is a rule, not a setext underline.
    doc = load(tmp_path / "m.markdown", "ただの文章です。\n- リスト\n---\n\n---\n    code\n---\n")
    assert doc.spans == ()
    assert "title" not in doc.metadata


def test_markdown_unclosed_fence_hides_later_headings(tmp_path: Path) -> None:
    doc = load(tmp_path / "m.md", "# 見出し\n\n```\n# コード\n")
    assert doc.spans == ((0, len(doc.text), {"heading": "見出し"}),)


def test_markdown_crlf_offsets_index_the_unified_text(tmp_path: Path) -> None:
    doc = load(tmp_path / "m.md", b"intro\r\n# One\r\ntext\r\n## Two\r\nmore\r\n")
    assert doc.text == "intro\n# One\ntext\n## Two\nmore\n"
    assert doc.spans == ((6, 17, {"heading": "One"}), (17, 29, {"heading": "One > Two"}))
    assert doc.text[17:29] == "## Two\nmore\n"


# ---------------------------------------------------------------------------------------- HTML

HTML = """<!DOCTYPE html>
<html><head>
<meta charset="utf-8">
<title>  テスト &amp; Title </title>
<style>p { color: red }</style>
<script>var x = "<p>not text</p>";</script>
</head>
<body>
<nav><a href="/">ホーム</a> | <a href="/docs">ドキュメント</a></nav>
<h1>見出し</h1>
<p>これは
段落です。&lt;b&gt; &copy; &#x3042;&nbsp;end</p>
<!-- a comment <p>hidden</p> -->
<noscript>JavaScriptを有効にしてください</noscript>
<template><p>template text</p></template>
<p>Hello
world, <b>bold</b> and <i>italic</i>.</p>
<ul><li>一つ目</li><li>二つ目</li></ul>
<table><tr><th>名前</th><th>値</th></tr><tr><td>a</td><td>1</td></tr></table>
<pre>  keep
    indentation</pre>
<div>行1<br>行2</div>
</body></html>
"""


def test_html_visible_text_only(tmp_path: Path) -> None:
    doc = load(tmp_path / "page.html", HTML)
    assert doc.text == (
        "見出し\n\n"
        "これは段落です。<b> © あ end\n\n"
        "Hello world, bold and italic.\n\n"
        "一つ目\n二つ目\n\n"
        "名前\t値\na\t1\n\n"
        "  keep\n    indentation\n\n"
        "行1\n行2"
    )
    assert doc.metadata["title"] == "テスト & Title"
    assert doc.metadata["file_type"] == "html"
    assert doc.spans == ()


def test_html_svg_title_is_not_the_page_title(tmp_path: Path) -> None:
    doc = load(tmp_path / "i.html", "<svg><title>icon</title></svg><p>本文</p><title>頁</title>")
    assert (doc.text, doc.metadata["title"]) == ("本文", "頁")


def test_markdown_lines_end_only_at_newlines(tmp_path: Path) -> None:
    text = "前\x0c文\u2028続き\n# 見出し\u2028同じ行\n本文\n"
    doc = load(tmp_path / "m.md", text)
    assert doc.spans == ((text.index("# 見出し"), len(text), {"heading": "見出し 同じ行"}),)


def test_html_line_break_between_korean_words_stays_a_space(tmp_path: Path) -> None:
    doc = load(tmp_path / "k.htm", "<p>안녕\n하세요 <b>세계</b>\n여러분</p>")
    assert doc.text == "안녕 하세요 세계 여러분"


@pytest.mark.parametrize(
    "markup",
    [
        "<p>unclosed <b>bold <i>italic text",
        "</p></div></body>stray end tags<p>text",
        "<<<>>> <p <p>> &bogus; &#xZZ; &#99999999; text",
        "text<!-- unclosed comment <p>hidden",
        "text<script>never closed <p>hidden",
        "<![CDATA[ x ]]><?php echo 1 ?><!ELEMENT x>text",
        "<div>" * 20_000 + "deep" + "</div>" * 20_000,
        '<img src="x" onerror="alert(1)"><iframe src="https://example.com"></iframe>text',
    ],
    ids=["unclosed", "stray-end", "garbage", "comment", "script", "decls", "deep", "active"],
)
def test_malformed_html_does_not_crash(tmp_path: Path, markup: str) -> None:
    doc = load(tmp_path / "bad.html", markup)
    assert "text" in doc.text or doc.text == "deep"
    assert "<script" not in doc.text
    assert "alert" not in doc.text


def test_html_deep_nesting_keeps_text(tmp_path: Path) -> None:
    doc = load(tmp_path / "deep.html", "<div>" * 20_000 + "deep" + "</div>" * 20_000)
    assert doc.text == "deep"


def test_html_meta_charset_is_used(tmp_path: Path) -> None:
    # Alone these bytes read as EUC-JP kanji; the page's declaration settles it.
    body = "函数会把输入".encode("gbk")
    page = b'<html><head><meta http-equiv="Content-Type" content="text/html; charset=gb2312">'
    doc = load(tmp_path / "zh.html", page + b"</head><body><p>" + body + b"</p></body></html>")
    assert (doc.text, doc.metadata["encoding"]) == ("函数会把输入", "gbk")


def test_html_shift_jis_declaration_reads_as_cp932(tmp_path: Path) -> None:
    page = '<meta charset="Shift_JIS"><title>①番</title><p>テスト</p>'.encode("cp932")
    doc = load(tmp_path / "ja.html", page)
    assert doc.metadata == {
        "file_type": "html",
        "encoding": "cp932",
        "file_size": len(page),
        "title": "①番",
    }


def test_html_with_only_script_is_empty(tmp_path: Path) -> None:
    with pytest.raises(DocumentLoadError, match=r"^s\.html: empty file — "):
        load(tmp_path / "s.html", "<script>alert(1)</script><style>p{}</style>")


# ----------------------------------------------------------------------------------------- PDF


def test_pdf_pages_become_spans(tmp_path: Path) -> None:
    pytest.importorskip("pypdf")
    data = make_pdf(["First page text.", "", "Third page (with parentheses)."], title="A PDF")
    doc = load(tmp_path / "report.pdf", data)
    assert doc.text == "First page text.\n\nThird page (with parentheses)."
    assert doc.spans == ((0, 16, {"page": 1}), (18, 48, {"page": 3}))  # page 2 is blank
    assert doc.metadata == {
        "file_type": "pdf",
        "page_count": 3,
        "file_size": len(data),
        "title": "A PDF",
    }
    assert span_metadata(doc.spans, 20) == {"page": 3}
    assert span_metadata(doc.spans, 17) == {}  # the separator belongs to no page


def test_pdf_content_is_read_as_pdf_whatever_the_suffix(tmp_path: Path) -> None:
    pytest.importorskip("pypdf")
    doc = load(tmp_path / "actually-a-pdf.txt", make_pdf(["Hello."]))
    assert (doc.text, doc.metadata["file_type"]) == ("Hello.", "pdf")


def test_pdf_without_pypdf_names_the_extra(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pypdf", None)  # makes `import pypdf` fail
    path = write(tmp_path / "r.pdf", make_pdf(["text"]))
    assert classify(entry_for(path)) is None
    with pytest.raises(DocumentLoadError) as info:
        read_document(entry_for(path))
    assert str(info.value) == PDF_EXTRA_MESSAGE.format(source="r.pdf")
    assert "pip install 'ollama-rag[pdf]'" in str(info.value)


@pytest.mark.reliability
def test_broken_pdf_is_reported(tmp_path: Path) -> None:
    pytest.importorskip("pypdf")
    with pytest.raises(DocumentLoadError, match=r"^b\.pdf: is not a readable PDF"):
        load(tmp_path / "b.pdf", b"%PDF-1.4\n1 0 obj << /Type /Catalog >>\n%%EOF garbage")


def test_pdf_without_text_suggests_ocr(tmp_path: Path) -> None:
    pytest.importorskip("pypdf")
    with pytest.raises(DocumentLoadError, match=r"no extractable text.*OCR"):
        load(tmp_path / "scan.pdf", make_pdf(["", ""]))


def test_password_protected_pdf_is_reported(tmp_path: Path) -> None:
    pypdf = pytest.importorskip("pypdf")
    import io

    writer = pypdf.PdfWriter(clone_from=io.BytesIO(make_pdf(["secret text"])))
    writer.encrypt(user_password="secret", algorithm="RC4-128")
    buffer = io.BytesIO()
    writer.write(buffer)
    with pytest.raises(
        DocumentLoadError, match=r"^locked\.pdf: the PDF is protected by a password"
    ):
        load(tmp_path / "locked.pdf", buffer.getvalue())


# ------------------------------------------------------------------------------------ discover


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "docs"
    files = [
        "b.txt",
        "a.md",
        "Upper.MD",
        "c.html",
        "d.pdf",
        "notes.rst",
        "image.png",
        "README",
        "sub/x.md",
        "sub/deeper/y.txt",
        "drafts/z.md",
        ".hidden.md",
        ".git/config.md",
        ".venv/lib/LICENSE.txt",
        "node_modules/pkg/readme.md",
        "__pycache__/p.txt",
        "venv/v.md",
        "backup.md~",
        "~$lock.md",
    ]
    for name in random.Random(7).sample(files, len(files)):  # creation order must not matter
        write(root / name, f"content of {name}\n")
    return root


def sources(entries: Iterable[FileEntry]) -> list[str]:
    """The sources of the entries to read (not those yielded only to be reported)."""
    return [e.source for e in entries if e.skip_reason is None and e.error is None]


def skipped(entries: Iterable[FileEntry]) -> dict[str, str | None]:
    return {e.source: e.skip_reason for e in entries if e.skip_reason is not None}


def test_discover_walks_sorted_and_skips_defaults(tree: Path) -> None:
    entries = list(discover(tree))
    # Unsupported files (README, image.png) are yielded too: add_files reports them as skipped.
    assert sources(entries) == [
        "README",
        "Upper.MD",
        "a.md",
        "b.txt",
        "c.html",
        "d.pdf",
        "drafts/z.md",
        "image.png",
        "notes.rst",
        "sub/deeper/y.txt",
        "sub/x.md",
    ]
    root = tree.resolve().as_posix()
    assert {e.root for e in entries} == {root}
    assert all(e.path == Path(root, e.source) and e.path.is_absolute() for e in entries)


def test_discover_is_deterministic(tree: Path) -> None:
    assert list(discover(tree)) == list(discover(str(tree)))


@pytest.mark.parametrize(
    ("glob", "exclude", "expected"),
    [
        ("**/*.md", None, ["a.md", "drafts/z.md", "sub/x.md"]),  # globs are case-sensitive
        ("**/*.[mM][dD]", None, ["Upper.MD", "a.md", "drafts/z.md", "sub/x.md"]),
        ("*.md", None, ["a.md"]),
        ("sub/**", None, ["sub/deeper/y.txt", "sub/x.md"]),
        ("**/*.txt", "deeper", ["b.txt"]),
        (
            "**/*",
            ["drafts", "*.html", "*.pdf", "*.png", "README"],
            ["Upper.MD", "a.md", "b.txt", "notes.rst", "sub/deeper/y.txt", "sub/x.md"],
        ),
        ("**/*.md", "sub/**", ["a.md", "drafts/z.md"]),
        ("**/*.md", ["drafts/"], ["a.md", "sub/x.md"]),
        ("**/[ab].*", None, ["a.md", "b.txt"]),
        ("**/?.md", None, ["a.md", "drafts/z.md", "sub/x.md"]),
    ],
)
def test_discover_glob_and_exclude(
    tree: Path, glob: str, exclude: str | list[str] | None, expected: list[str]
) -> None:
    assert sources(discover(tree, glob=glob, exclude=exclude)) == expected


def test_default_exclude_is_public_and_always_applies(tree: Path) -> None:
    assert ".*" in DEFAULT_EXCLUDE
    assert {"node_modules", "__pycache__"} <= set(DEFAULT_EXCLUDE)
    assert ".git/config.md" not in sources(discover(tree, exclude="drafts"))


def test_direct_file_is_yielded_whatever_its_suffix(tree: Path) -> None:
    entries = list(discover([tree / "image.png", tree / "sub" / "x.md", tree / ".hidden.md"]))
    assert sources(entries) == ["image.png", "x.md", ".hidden.md"]
    assert entries[1].root == (tree / "sub").resolve().as_posix()
    assert classify(entries[0]) == "unsupported file type .png"


def test_overlapping_paths_yield_each_file_once(tree: Path) -> None:
    entries = list(discover([tree / "sub" / "x.md", tree, tree / "sub"]))
    assert sources(entries).count("x.md") + sources(entries).count("sub/x.md") == 1
    assert sources(entries)[0] == "x.md"
    # The second path to it is yielded only to be reported, naming the first.
    root = (tree / "sub").resolve().as_posix()
    assert skipped(entries) == {"sub/x.md": f"same file as {root}/x.md, indexed under that name"}


def test_missing_path_raises_at_the_call(tmp_path: Path) -> None:
    with pytest.raises(DocumentLoadError, match="does not exist") as info:
        discover([tmp_path, tmp_path / "nope"])  # not iterated: the error is immediate
    assert info.value.source == str(tmp_path / "nope")


def test_bad_glob_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="glob"):
        discover(tmp_path, glob="/abs/*.md")
    with pytest.raises(ConfigError, match="not a valid glob pattern"):
        discover(tmp_path, exclude="[z-a]")


def test_discover_expands_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write(tmp_path / "home" / "notes" / "n.md", "x")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert sources(discover("~/notes")) == ["n.md"]


@needs_symlinks
def test_symlink_loops_and_duplicates_are_cut(tmp_path: Path) -> None:
    root = tmp_path / "docs"
    write(root / "a.md", "a")
    write(root / "sub" / "b.md", "b")
    (root / "sub" / "loop").symlink_to(root, target_is_directory=True)
    (root / "sub" / "self").symlink_to(root / "sub", target_is_directory=True)
    (root / "alias.md").symlink_to(root / "a.md")
    (root / "broken.md").symlink_to(root / "missing.md")
    (root / "cycle1.md").symlink_to(root / "cycle2.md")
    (root / "cycle2.md").symlink_to(root / "cycle1.md")
    entries = list(discover(root))
    assert sources(entries) == ["a.md", "sub/b.md"]
    assert skipped(entries) == {
        "alias.md": "same file as a.md, indexed under that name",
        "broken.md": f"broken symlink: its target {root / 'missing.md'} does not exist",
        "cycle1.md": "symlink loop: following it never reaches a file or folder",
        "cycle2.md": "symlink loop: following it never reaches a file or folder",
        "sub/loop": f"symlink loop: it points to {root.resolve().as_posix()}, a folder it is in",
        "sub/self": "symlink loop: it points to sub, a folder it is in",
    }


@needs_symlinks
def test_symlinks_out_of_the_root_are_followed_with_relative_sources(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    write(outside / "o.md", "o")
    write(outside / "nested" / "n.md", "n")
    root = tmp_path / "docs"
    write(root / "a.md", "a")
    (root / "linked").symlink_to(outside, target_is_directory=True)
    (root / "one.md").symlink_to(outside / "o.md")
    entries = list(discover(root))
    # Both paths to o.md are links: the first in walk order (linked/ sorts first) is indexed.
    assert sources(entries) == ["a.md", "linked/nested/n.md", "linked/o.md"]
    assert skipped(entries) == {"one.md": "same file as linked/o.md, indexed under that name"}
    assert entries[2].path == (outside / "o.md").resolve()
    assert all(not e.source.startswith("/") and ".." not in e.source for e in entries)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs named pipes")
def test_named_pipes_are_skipped_not_read(tmp_path: Path) -> None:
    write(tmp_path / "a.txt", "a")
    os.mkfifo(tmp_path / "pipe.txt")  # reading it would block forever
    entries = list(discover(tmp_path))
    assert sources(entries) == ["a.txt"]
    assert skipped(entries) == {"pipe.txt": "named pipe (FIFO), not a regular file"}
    assert classify(entries[1]) == "named pipe (FIFO), not a regular file"  # never opened
    with pytest.raises(DocumentLoadError, match="neither a regular file nor a folder"):
        discover(tmp_path / "pipe.txt")


# --------------------------------------------------------------------------------- classify


@pytest.mark.parametrize(
    ("name", "data", "reason"),
    [
        ("ok.txt", b"hello", None),
        ("ok.md", "見出し".encode("cp932"), None),
        ("x.xyz", b"hello", "unsupported file type .xyz"),
        ("Makefile", b"all:", "unsupported file type (no suffix)"),
        ("empty.txt", b"", "empty file"),
        ("blank.md", b" \n\t\r\n ", "empty file"),
        ("blank16.txt", "\ufeff \n ".encode("utf-16-le"), "empty file"),
        ("png.txt", b"\x89PNG\r\n\x1a\n" + bytes(64), "binary file"),
        ("zip.html", b"PK\x03\x04" + b"word/document.xml" * 4, "binary file"),
        ("gz.md", b"\x1f\x8b\x08\x00rest", "binary file"),
        ("nul.txt", b"text\x00with\x00nuls\x00\x00\x01", "binary file"),
        ("ctl.txt", bytes(range(1, 9)) * 20 + b"text", "binary file"),
        ("fake.pdf", b"<html>an error page saved as .pdf</html>", "not a PDF (no %PDF- header)"),
        ("pdf.txt", b"%PDF-1.4\n...", None),
        ("dos.txt", b"old file\r\n\x1a", None),
    ],
)
def test_classify(tmp_path: Path, name: str, data: bytes, reason: str | None) -> None:
    entry = entry_for(write(tmp_path / name, data))
    assert classify(entry, data) == reason
    assert classify(entry) == reason  # reads the file itself


def test_classify_too_large(tmp_path: Path) -> None:
    entry = entry_for(write(tmp_path / "big.txt", b"x" * 11))
    assert classify(entry, max_file_bytes=10) == "too large (11 bytes > 10)"
    assert classify(entry, b"x" * 11, max_file_bytes=10) == "too large (11 bytes > 10)"
    assert classify(entry, max_file_bytes=None) is None  # None means the default
    assert DEFAULT_MAX_FILE_BYTES == 50 * 1024 * 1024


def test_too_large_is_refused_before_reading(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    entry = entry_for(write(tmp_path / "big.txt", b"x" * 100))

    def no_open(*args: object, **kwargs: object) -> None:
        raise AssertionError("the file was opened")

    monkeypatch.setattr(Path, "open", no_open)
    assert classify(entry, max_file_bytes=10) == "too large (100 bytes > 10)"
    with pytest.raises(DocumentLoadError) as info:
        read_document(entry, max_file_bytes=10)
    assert str(info.value) == (
        "big.txt: too large (100 bytes > 10) — pass a larger max_file_bytes= (at least 100) "
        "or split the file"
    )


@pytest.mark.parametrize(
    ("name", "data", "start"),
    [
        ("x.xyz", b"hello", "x.xyz: unsupported file type .xyz — supported types are .htm, "),
        ("e.txt", b"", "e.txt: empty file — there is nothing to index"),
        ("b.txt", b"\x00\x01\x02", "b.txt: binary file — only text, Markdown, HTML and PDF"),
    ],
)
def test_read_document_raises_for_skips_with_the_fix(
    tmp_path: Path, name: str, data: bytes, start: str
) -> None:
    with pytest.raises(DocumentLoadError) as info:
        load(tmp_path / name, data)
    assert str(info.value).startswith(start)
    assert info.value.source == name


def test_read_bytes_reports_a_vanished_file(tmp_path: Path) -> None:
    path = write(tmp_path / "gone.txt", "x")
    entry = entry_for(path)
    path.unlink()
    with pytest.raises(DocumentLoadError, match=r"^gone\.txt: cannot be read"):
        read_bytes(entry)
    with pytest.raises(DocumentLoadError, match=r"^gone\.txt: cannot be read"):
        classify(entry)


# ------------------------------------------------------------------------- document contract


@pytest.mark.parametrize(
    ("name", "data", "file_type"),
    [
        ("t.txt", "テキスト\n".encode("euc_jp"), "txt"),
        ("m.md", "# 見出し\n本文\n".encode(), "md"),
        ("h.html", b"<title>T</title><p>x</p>", "html"),
        ("p.pdf", make_pdf(["page"], title="T"), "pdf"),
    ],
)
def test_document_contract(tmp_path: Path, name: str, data: bytes, file_type: str) -> None:
    if file_type == "pdf":
        pytest.importorskip("pypdf")
    path = write(tmp_path / "folder" / name, data)
    (entry,) = discover(tmp_path / "folder")
    doc = read_document(entry)
    assert doc.entry == entry
    assert (entry.source, entry.root) == (name, path.parent.resolve().as_posix())
    assert doc.file_hash == hashlib.sha256(data).hexdigest() == file_hash(data)
    assert doc.metadata["file_type"] == file_type
    assert doc.metadata["file_size"] == len(data)
    for meta in [doc.metadata, *(s[2] for s in doc.spans)]:
        assert all(isinstance(v, (str, int, float, bool)) for v in meta.values())
    offsets = [(s[0], s[1]) for s in doc.spans]
    assert offsets == sorted(offsets)
    assert all(0 <= a < b <= len(doc.text) for a, b in offsets)


def test_file_type_per_suffix(tmp_path: Path) -> None:
    kinds = {
        name: load(tmp_path / name, "# x\n").metadata["file_type"]
        for name in ["a.txt", "a.text", "a.rst", "a.md", "a.markdown", "a.html", "a.htm", "a.xhtml"]
    }
    assert kinds == {
        "a.txt": "txt",
        "a.text": "txt",
        "a.rst": "txt",
        "a.md": "md",
        "a.markdown": "md",
        "a.html": "html",
        "a.htm": "html",
        "a.xhtml": "html",
    }
    assert {".txt", ".md", ".markdown", ".html", ".htm", ".pdf"} <= SUPPORTED_SUFFIXES


def test_caller_supplied_bytes_are_used_as_read(tmp_path: Path) -> None:
    entry = entry_for(write(tmp_path / "a.txt", "on disk"))
    doc = read_document(entry, b"already read")
    assert (doc.text, doc.file_hash) == ("already read", file_hash(b"already read"))


def test_span_metadata_bisects_and_copies() -> None:
    spans = ((0, 5, {"heading": "A"}), (5, 9, {"heading": "A > B"}), (12, 20, {"page": 2}))
    assert [span_metadata(spans, i).get("heading") for i in (0, 4, 5, 8)] == [
        "A",
        "A",
        "A > B",
        "A > B",
    ]
    assert span_metadata(spans, 10) == {}
    assert span_metadata(spans, 20) == {}
    assert span_metadata(spans, -1) == {}
    assert span_metadata((), 0) == {}
    span_metadata(spans, 0)["heading"] = "changed"
    assert spans[0][2] == {"heading": "A"}
