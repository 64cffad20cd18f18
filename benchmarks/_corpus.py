"""A deterministic corpus of Japanese and Chinese prose for the ingestion benchmarks.

Sentences are assembled from word lists with templates (particles, clauses, quotes, commas and
sentence-final punctuation), grouped into paragraphs of 3-8 sentences in one language, and
paragraphs into files under a numbered heading. Every file draws from its own
``random.Random(f"{seed}:{index}")`` (string seeds hash the same on every Python), so a corpus
is a pure function of its parameters and any one file can be regenerated alone. With ~100
words per slot, two chunks of even a hundred characters essentially never coincide, so no
chunk is shared between files and content-hash reuse cannot skip work.

:func:`passages` makes the same prose as separate passages in one language, titled in groups
(the shapes of ``bench_entrypoints``: texts with metadata, documents grouped by source, one file
each); :func:`queries` makes search queries of varied length; :func:`jsquad_passages` reads the
real JSQuAD passages when the shared evaluation data is present.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "JSQUAD_PASSAGES",
    "Corpus",
    "Passage",
    "documents",
    "jsquad_passages",
    "passages",
    "queries",
    "write_corpus",
    "write_corpus_bytes",
    "write_passages",
]

# The shared evaluation data beside the checkout (absent in CI, which checks out the repo alone).
JSQUAD_PASSAGES = (
    Path(__file__).resolve().parents[2] / "shared" / "eval" / "jsquad" / "passages.jsonl"
)


def _words(text: str) -> tuple[str, ...]:
    return tuple(text.split())


_JA_NOUNS = _words(
    "東京 大阪 京都 北海道 沖縄 富士山 琵琶湖 新幹線 地下鉄 図書館 美術館 博物館 大学 研究所 "
    "会社 市役所 病院 駅前 商店街 公園 神社 寺院 城下町 港町 温泉 旅館 市場 工場 農村 漁港 "
    "学生 先生 研究者 医師 技術者 職人 作家 記者 市長 住民 観光客 子供たち 高齢者 家族 友人 "
    "経済 文化 歴史 科学 技術 教育 環境 政策 制度 社会 言語 文学 音楽 映画 写真 料理 茶道 "
    "天気 季節 春 夏 秋 冬 雨 雪 台風 地震 桜 紅葉 稲 米 魚 野菜 果物 味噌 醤油 豆腐 "
    "計画 調査 報告書 資料 会議 議論 結果 原因 影響 課題 解決策 方法 手順 目的 理由 条件 "
    "電車 自転車 道路 橋 空港 電力 水道 通信 情報 データ 計算機 機械 装置 部品 製品 価格"
)
_JA_VERBS = _words(
    "調べた 発表した 説明した 紹介した 作った 変えた 守ってきた 支えている 広げた 見直した "
    "比べた 決めた 始めた 続けている 進めている 集めた 分析した 報告した 改善した 提案した "
    "利用している 記録した 確認した 検討している 計画した 築いた 伝えてきた 育てた 描いた 訪れた"
)
_JA_ADJECTIVES = _words(
    "新しい 古い 大きな 小さな 美しい 静かな 有名な 重要な 便利な 複雑な 詳しい 豊かな "
    "長い 短い 広い 狭い 明るい 暗い 厳しい 優しい 珍しい 身近な 地元の 独自の 伝統的な 最新の"
)
_JA_ADVERBS = _words(
    "とても 少し かなり すでに まだ 初めて 改めて 徐々に 大幅に 詳しく 丁寧に 早く 次第に 特に"
)
_JA_CONNECTIVES = _words(
    "しかし、 そのため、 一方で、 さらに、 また、 例えば、 つまり、 ところが、 その結果、 なお、"
)
_ZH_NOUNS = _words(
    "北京 上海 广州 深圳 杭州 成都 西安 长江 黄河 泰山 长城 故宫 博物馆 图书馆 大学 "
    "研究院 公司 政府 医院 学校 工厂 农村 城市 社区 市场 银行 港口 机场 铁路 高速公路 "
    "学生 老师 科学家 工程师 医生 记者 作家 农民 工人 市民 游客 孩子 老人 家庭 朋友 "
    "经济 文化 历史 科学 技术 教育 环境 政策 制度 社会 语言 文学 音乐 电影 艺术 传统 "
    "天气 季节 春天 夏天 秋天 冬天 雨水 雪花 台风 茶叶 大米 小麦 蔬菜 水果 饺子 豆腐 "
    "计划 调查 报告 资料 会议 讨论 结果 原因 影响 问题 方案 方法 步骤 目标 理由 条件 "
    "汽车 自行车 道路 桥梁 电力 网络 信息 数据 计算机 机器 设备 零件 产品 价格 能源 材料"
)
_ZH_VERBS = _words(
    "研究 发表 介绍 说明 建设 改变 保护 支持 扩大 调整 比较 决定 开始 继续 推进 收集 "
    "分析 报告 改善 提出 利用 记录 确认 讨论 规划 建立 传承 培养 描写 访问 解决 完成"
)
_ZH_ADJECTIVES = _words(
    "新的 古老的 巨大的 小型的 美丽的 安静的 著名的 重要的 方便的 复杂的 详细的 丰富的 "
    "漫长的 短暂的 宽阔的 明亮的 严格的 温和的 少见的 本地的 独特的 传统的 最新的 普通的"
)
_ZH_ADVERBS = _words("非常 稍微 相当 已经 仍然 首次 重新 逐渐 大幅 详细地 认真地 迅速 渐渐 特别")
_ZH_CONNECTIVES = _words(
    "但是， 因此， 另一方面， 此外， 同时， 例如， 也就是说， 然而， 结果， 总之，"
)


def _ja_sentence(r: random.Random) -> str:
    d = r.choice
    n, m, k, v, a = d(_JA_NOUNS), d(_JA_NOUNS), d(_JA_NOUNS), d(_JA_VERBS), d(_JA_ADJECTIVES)
    form = r.randrange(8)
    if form == 0:
        s = f"{n}は{m}の{k}を{v}"
    elif form == 1:
        s = f"{a}{n}が{m}で{d(_JA_ADVERBS)}{v}"
    elif form == 2:
        s = f"{n}によると、{m}は{a}{k}を{v}"
    elif form == 3:
        s = f"{n}の{m}について、{k}は「{a}{d(_JA_NOUNS)}だ」と{v}"
    elif form == 4:
        s = f"{d(_JA_CONNECTIVES)}{n}と{m}は{a}{k}を{d(_JA_ADVERBS)}{v}"
    elif form == 5:
        s = f"{n}から{m}まで、{k}が{v}"
    elif form == 6:
        s = f"{n}では{d(_JA_ADVERBS)}{a}{m}を{v}ことが{k}に知られている"
    else:
        s = f"{n}、{m}、{k}などの{a}{d(_JA_NOUNS)}を{v}"
    return s + r.choice("。。。。。。！？")


def _zh_sentence(r: random.Random) -> str:
    d = r.choice
    n, m, k, v, a = d(_ZH_NOUNS), d(_ZH_NOUNS), d(_ZH_NOUNS), d(_ZH_VERBS), d(_ZH_ADJECTIVES)
    form = r.randrange(8)
    if form == 0:
        s = f"{n}的{m}{v}了{k}"
    elif form == 1:
        s = f"在{n}中，{m}{d(_ZH_ADVERBS)}{v}了{a}{k}"
    elif form == 2:
        s = f"{n}和{m}都是{a}{k}"
    elif form == 3:
        s = f"{d(_ZH_CONNECTIVES)}{n}的{m}正在{v}{k}"
    elif form == 4:
        s = f"据{n}介绍，{m}将在{k}{v}{a}{d(_ZH_NOUNS)}"
    elif form == 5:
        s = f"{n}说：“{m}需要{v}{a}{k}。”"
    elif form == 6:
        s = f"从{n}到{m}，{k}{d(_ZH_ADVERBS)}{v}"
    else:
        s = f"{n}、{m}以及{k}共同{v}了{a}{d(_ZH_NOUNS)}"
    return s + ("" if s.endswith("”") else r.choice("。。。。。。！？"))


_SENTENCE: dict[str, Callable[[random.Random], str]] = {"ja": _ja_sentence, "zh": _zh_sentence}


def _document(index: int, chars: int, seed: int) -> str:
    """One file's text: a heading, then paragraphs until at least ``chars`` characters."""
    r = random.Random(f"{seed}:{index}")
    parts = [f"第{index + 1}章 {r.choice(_JA_NOUNS)}と{r.choice(_ZH_NOUNS)}"]
    size = len(parts[0])
    while size < chars:
        language = "ja" if r.random() < 0.5 else "zh"
        sentence = _SENTENCE[language]
        paragraph = "".join(sentence(r) for _ in range(r.randint(3, 8)))
        parts.append(paragraph)
        size += len(paragraph) + 2
    return "\n\n".join(parts) + "\n"


@dataclass(frozen=True)
class Corpus:
    """Where a generated corpus is and how big it is."""

    directory: Path
    files: int
    characters: int
    bytes: int


def write_corpus(directory: Path, *, files: int, chars_per_file: int, seed: int = 0) -> Corpus:
    """Write ``files`` UTF-8 files ``doc-NNNNN.txt`` of about ``chars_per_file`` characters."""
    directory.mkdir(parents=True, exist_ok=True)
    characters = size = 0
    for index in range(files):
        text = _document(index, chars_per_file, seed)
        data = text.encode("utf-8")
        (directory / f"doc-{index:05d}.txt").write_bytes(data)
        characters += len(text)
        size += len(data)
    return Corpus(directory, files, characters, size)


def documents(count: int, *, chars: int, seed: int = 0) -> list[Passage]:
    """The texts :func:`write_corpus` writes, as passages titled by their file names."""
    return [Passage(f"doc-{i:05d}.txt", _document(i, chars, seed)) for i in range(count)]


def write_corpus_bytes(
    directory: Path, *, total_bytes: int, bytes_per_file: int, seed: int = 0
) -> Corpus:
    """Write files of about ``bytes_per_file`` UTF-8 bytes until ``total_bytes`` are written."""
    # The generated text is CJK with ASCII-free punctuation: 3 bytes per character.
    files = max(1, round(total_bytes / bytes_per_file))
    return write_corpus(directory, files=files, chars_per_file=bytes_per_file // 3, seed=seed)


@dataclass(frozen=True)
class Passage:
    """One passage of text and the title it shares with the others of its group."""

    title: str
    text: str


def _title(language: str, group: int, seed: int) -> str:
    r = random.Random(f"{seed}:{language}:title:{group}")
    if language == "ja":
        return f"{group + 1}. {r.choice(_JA_NOUNS)}の{r.choice(_JA_NOUNS)}"
    return f"{group + 1}. {r.choice(_ZH_NOUNS)}与{r.choice(_ZH_NOUNS)}"


def _passage(language: str, index: int, chars: tuple[int, int], seed: int) -> str:
    """Sentences in one language until a length drawn from ``chars``; a line break every 3-8."""
    r = random.Random(f"{seed}:{language}:{index}")
    target = r.randint(*chars)
    sentence = _SENTENCE[language]
    paragraphs: list[str] = []
    size = 0
    while size < target:
        paragraph = ""
        for _ in range(r.randint(3, 8)):
            paragraph += sentence(r)
            if size + len(paragraph) >= target:
                break
        paragraphs.append(paragraph)
        size += len(paragraph) + 1
    return "\n".join(paragraphs)


def passages(
    count: int, *, language: str, chars: tuple[int, int], per_title: int = 8, seed: int = 0
) -> list[Passage]:
    """``count`` passages of ``language`` ("ja" or "zh") prose, titled in groups.

    Each passage is about ``chars`` (min, max) characters long: it ends with the sentence that
    reaches a length drawn from that range. Every ``per_title`` consecutive passages share a
    title. Passage ``i`` depends only on ``(seed, language, i)``.
    """
    return [
        Passage(_title(language, i // per_title, seed), _passage(language, i, chars, seed))
        for i in range(count)
    ]


def write_passages(directory: Path, items: Sequence[Passage]) -> Corpus:
    """Write one UTF-8 file ``p-NNNNN.txt`` per passage (its text only)."""
    directory.mkdir(parents=True, exist_ok=True)
    characters = size = 0
    for index, passage in enumerate(items):
        data = passage.text.encode("utf-8")
        (directory / f"p-{index:05d}.txt").write_bytes(data)
        characters += len(passage.text)
        size += len(data)
    return Corpus(directory, len(items), characters, size)


def jsquad_passages(path: Path = JSQUAD_PASSAGES) -> list[Passage] | None:
    """The JSQuAD passages (JSON lines with ``title`` and ``text``); None without the file."""
    if not path.is_file():
        return None
    with path.open(encoding="utf-8") as lines:
        rows = [json.loads(line) for line in lines if line.strip()]
    return [Passage(str(row["title"]), str(row["text"])) for row in rows]


def queries(count: int, *, seed: int = 0) -> list[str]:
    """``count`` search queries, alternately Japanese and Chinese, of varied length.

    A quarter are two nouns (3-9 characters), half one sentence, a quarter two or three.
    """
    out = []
    for index in range(count):
        r = random.Random(f"{seed}:query:{index}")
        language = "ja" if index % 2 == 0 else "zh"
        kind = r.random()
        if kind < 0.25:
            nouns = _JA_NOUNS if language == "ja" else _ZH_NOUNS
            joint = "の" if language == "ja" else "的"
            out.append(f"{r.choice(nouns)}{joint}{r.choice(nouns)}")
        else:
            sentences = 1 if kind < 0.75 else r.randint(2, 3)
            out.append("".join(_SENTENCE[language](r) for _ in range(sentences)))
    return out
