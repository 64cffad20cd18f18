"""The lexical analysers: the default's rules as literal tables, the contract every analyser keeps.

The tables pin the terms of ``cjk-bigram/1``: a change to them is a change of terms, so bump
``CJKBigramAnalyzer.version`` (and the dictionary analysers', which fall back to these rules)
when a row has to change. The dictionary analysers are tested for real where their extra is
installed (``make test`` installs them all); where one is missing, its test checks the one-line
install error instead.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import random
import re
import threading
import unicodedata
from collections.abc import Iterator
from importlib.machinery import ModuleSpec

import pytest

from ollama_rag.errors import ConfigError, MissingExtraError, RagError
from ollama_rag.lexical import analysis
from ollama_rag.lexical.analysis import (
    ANALYZERS,
    DEFAULT_ANALYZER,
    Analyzer,
    CJKBigramAnalyzer,
    get_analyzer,
)

DICTIONARY_ANALYZERS = ["janome", "jieba", "kiwi", "sudachi"]

# (text, terms) of cjk-bigram without unigrams.
BIGRAMS = [
    # Japanese: one run across Han and kana; a run of one character is a unigram.
    ("富士山の標高は3776m", ["富士", "士山", "山の", "の標", "標高", "高は", "3776m"]),
    ("コーヒーを飲む", ["コー", "ーヒ", "ヒー", "ーを", "を飲", "飲む"]),
    ("いすゞの人々", ["いす", "すゞ", "ゞの", "の人", "人々"]),
    ("すごーい", ["すご", "ごー", "ーい"]),
    ("ー ーー A ー B", ["a", "b"]),  # ー only inside kana
    ("山 と 川", ["山", "と", "川"]),
    # Chinese, simplified and traditional.
    ("我爱北京天安门", ["我爱", "爱北", "北京", "京天", "天安", "安门"]),
    ("臺灣的茶葉很香", ["臺灣", "灣的", "的茶", "茶葉", "葉很", "很香"]),
    ("𠮷野家", ["𠮷野", "野家"]),  # extension B
    ("\uf900", ["豈"]),  # a compatibility ideograph, NFKC-mapped to its unified one
    # Korean.
    ("한국어를 배웁니다", ["한국", "국어", "어를", "배웁", "웁니", "니다"]),
    ("\u1112\u1161\u11ab", ["한"]),  # conjoining jamo compose under NFKC
    # English and other scripts: words, case-folded; underscore and apostrophe split.
    ("Hello, World! It's 2024.", ["hello", "world", "it", "s", "2024"]),
    ("snake_case e-mail", ["snake", "case", "e", "mail"]),
    ("Straße ΣΊΣΥΦΟΣ", ["strasse", "σίσυφοσ"]),
    ("हिन्दी café naïve", ["हिन्दी", "café", "naïve"]),  # vowel signs stay in the word
    ("cafe\u0301", ["café"]),  # decomposed: NFKC composes
    # Mixed scripts.
    (
        "Python 3.12で東京タワーを見た",
        ["python", "3", "12", "で東", "東京", "京タ", "タワ", "ワー", "ーを", "を見", "見た"],
    ),
    ("iPhone15を買った", ["iphone15", "を買", "買っ", "った"]),
    ("서울 Seoul 首尔", ["서울", "seoul", "首尔"]),
    # Fullwidth and halfwidth forms.
    ("ＡＢＣ１２３\u3000ｘｙｚ", ["abc123", "xyz"]),
    ("ｺｰﾋｰ ｶﾞｲﾄﾞ", ["コー", "ーヒ", "ヒー", "ガイ", "イド"]),
    ("㌔ ㈱", ["キロ", "株"]),
    # Digits.
    ("2024年3月15日", ["2024", "年", "3", "月", "15", "日"]),
    ("①②③ x² 3.14", ["123", "x2", "3", "14"]),
    ("٣٤٥ ๑๒", ["٣٤٥", "๑๒"]),  # other scripts' digits are digits too
    # Emoji and symbols are dropped, and never join the runs around them.
    ("ラーメン🍜最高😀👍🏽", ["ラー", "ーメ", "メン", "最高"]),
    ("東京❤️大阪", ["東京", "大阪"]),
    ("★☆→ + = % $ © ™", ["tm"]),  # ™ is "TM" under NFKC
    # Punctuation.
    ("「東京」、（大阪）。！？…・", ["東京", "大阪"]),
    ("東京・大阪", ["東京", "大阪"]),
    # Invisible characters: in-word ones are removed, separators separate.
    ("co\u00adoperate", ["cooperate"]),
    ("葛\U000e0100城", ["葛城"]),  # an ideographic variation selector
    ("foo\u200bbar", ["foo", "bar"]),
    ("a\x00b\x1fc\x7fd", ["a", "b", "c", "d"]),
    # Lone surrogates are replaced (and then dropped as symbols).
    ("東\ud800京", ["東", "京"]),
    ("a\udfffb\ud83d", ["a", "b"]),
    ("\ud83d\ude00東京", ["東京"]),  # a valid pair written as two surrogates: one emoji
    # Empty.
    ("", []),
    (" \t\r\n\u3000\u00a0\u2028", []),
]

# (text, terms) of cjk-bigram with unigrams: each character before its bigram.
UNIGRAMS = [
    ("東京都", ["東", "東京", "京", "京都", "都"]),
    ("山", ["山"]),
    ("a 山川 b", ["a", "山", "山川", "川", "b"]),
    ("한국", ["한", "한국", "국"]),
    ("", []),
]


@pytest.mark.parametrize(("text", "expected"), BIGRAMS)
def test_bigram_rules(text: str, expected: list[str]) -> None:
    assert CJKBigramAnalyzer(unigrams=False).terms(text) == expected


@pytest.mark.parametrize(("text", "expected"), UNIGRAMS)
def test_bigram_rules_with_unigrams(text: str, expected: list[str]) -> None:
    assert CJKBigramAnalyzer(unigrams=True).terms(text) == expected


def test_default_analyzer_uses_the_default_unigram_setting() -> None:
    analyzer = get_analyzer()
    assert isinstance(analyzer, CJKBigramAnalyzer)
    assert analyzer.name == DEFAULT_ANALYZER
    assert analyzer.unigrams is analysis.DEFAULT_UNIGRAMS
    assert CJKBigramAnalyzer().unigrams is analysis.DEFAULT_UNIGRAMS


# --- the contract, for every analyser ---------------------------------------------------------

# Characters that stress the contract: every kind of whitespace and control character, lone
# surrogates, marks, ligatures, case-folding oddities, each CJK script in full and half width.
_POOL = (
    "aZ09_-.,'!?#@ \t\n\r\x0b\x0c\x1c\x1d\x1e\x1f\x85\xa0\u1680\u2000\u2009\u200a\u2028\u2029"
    "\u202f\u205f\u3000\x00\x01\x7f\x9f\ud800\udbff\udc00\udfff\u00ad\u200b\u200c\u200d\u2060"
    "\ufeff\ufe0f\U000e0100\u0301\u0308\u093f\u094d\u3099\u309a\u309b"
    "ﬁﬃǰßİΐẞΣςǅⅫ①²½㍿㌔ｱｶﾞｰﾟ"
    "東京都日本語中文國臺灣𠮷豈々〇ぁあゝゞアヴーヽヿㇰ한국어각ㄱ"
    "हिन्दीไทยاللغةעברית😀👍🏽🇯🇵❤️★。、！？「」・…"
)


def _fuzz(seed: int, count: int) -> Iterator[str]:
    rng = random.Random(seed)
    for _ in range(count):
        yield "".join(rng.choice(_POOL) for _ in range(rng.randint(0, 40)))


SAMPLES = [
    *(text for text, _ in BIGRAMS),
    "東京都の附属病院でiPhone１５を買った。ｶﾀｶﾅとコーヒー、한국어 2024年",
    "我来到北京清华大学，iPhone15很好。我來到北京清華大學。",
    "한국어 형태소 분석기를 사용했습니다. iPhone15와 大韓民國, 東京の病院",
    "\n\n  東京  \n\n",
    *_fuzz(seed=7, count=150),
]

_FORBIDDEN = {"Cc", "Cf", "Cs", "Co", "Cn", "Zs", "Zl", "Zp"}


_LOADED: dict[str, Analyzer] = {}


def _missing(name: str) -> bool:
    cls = ANALYZERS[name]
    requires = getattr(cls, "requires", ())
    return any(importlib.util.find_spec(module) is None for module, _, _ in requires)


def _analyzer_or_error(name: str) -> Analyzer | None:
    """The analyser, or None after checking the install error if its extra is missing.

    One instance per name serves the whole module: Kiwi and jieba take seconds to load.
    """
    if _missing(name):
        with pytest.raises(MissingExtraError) as caught:
            get_analyzer(name)
        message = str(caught.value)
        assert "\n" not in message
        assert message.startswith(f"The {name!r} analyzer needs ")
        assert message.endswith(f": pip install 'ollama-rag[{caught.value.extra}]'")
        return None
    if name not in _LOADED:
        _LOADED[name] = get_analyzer(name)
    return _LOADED[name]


def _installed(name: str) -> Analyzer:
    analyzer = _analyzer_or_error(name)
    if analyzer is None:
        pytest.skip(f"{name} is not installed (its install error was checked)")
    return analyzer


ALL = [*ANALYZERS, "cjk-bigram+unigrams"]


def _make(name: str) -> Analyzer | None:
    if name == "cjk-bigram+unigrams":
        return CJKBigramAnalyzer(unigrams=True)
    return _analyzer_or_error(name)


def check_term(term: str) -> None:
    assert term, "empty term"
    assert not any(c.isspace() for c in term), repr(term)
    assert not re.search(r"\s", term), repr(term)
    bad = [c for c in term if unicodedata.category(c) in _FORBIDDEN]
    assert not bad, (term, bad)
    assert unicodedata.normalize("NFKC", term) == term, repr(term)
    # Case-folded up to NFKC's re-composition (ǰ folds to j + ˇ, which NFKC composes back).
    assert unicodedata.normalize("NFKC", term.casefold()) == term, repr(term)
    assert analysis.normalize(term) == term, repr(term)
    assert " ".join([term]).split(" ") == [term]


@pytest.mark.parametrize("name", ALL)
def test_contract_terms_are_clean(name: str) -> None:
    analyzer = _make(name)
    if analyzer is None:
        return  # its one-line install error was checked instead
    for text in SAMPLES:
        terms = analyzer.terms(text)
        assert isinstance(terms, list)
        for term in terms:
            assert isinstance(term, str)
            check_term(term)
        assert analyzer.query_terms(text) == terms


@pytest.mark.parametrize("name", ALL)
def test_contract_blank_text_has_no_terms(name: str) -> None:
    analyzer = _make(name)
    if analyzer is None:
        return
    for text in ("", " ", "\t\n\r\u3000\u00a0\u2028\u2029\x0b\x0c\x1c\x85", "\ud800", "、。・"):
        assert analyzer.terms(text) == []
        assert analyzer.query_terms(text) == []


@pytest.mark.parametrize("name", ALL)
def test_contract_deterministic_and_thread_safe(name: str) -> None:
    analyzer = _make(name)
    if analyzer is None:
        return
    texts = [t for t in SAMPLES if t]
    expected = [analyzer.terms(t) for t in texts]
    fresh = CJKBigramAnalyzer(unigrams=True) if name == "cjk-bigram+unigrams" else ANALYZERS[name]()
    assert [fresh.terms(t) for t in texts] == expected

    # Threads start together on one instance; each walks the texts in its own order.
    barrier = threading.Barrier(4)
    failures: list[BaseException] = []

    def work(seed: int) -> None:
        order = list(range(len(texts)))
        random.Random(seed).shuffle(order)
        barrier.wait()
        try:
            for i in order:
                assert analyzer.terms(texts[i]) == expected[i]
        except BaseException as err:  # reported in the main thread
            failures.append(err)

    threads = [threading.Thread(target=work, args=(seed,)) for seed in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not failures, failures[0]


@pytest.mark.parametrize("name", ALL)
def test_contract_offsets_survive_astral_characters(name: str) -> None:
    # Emoji are outside the BMP: a tokenizer counting UTF-16 units would shift every offset.
    analyzer = _make(name)
    if analyzer is None:
        return
    for text in (
        "東京都の附属病院",
        "我来到北京清华大学",
        "서울에서 한국어를 배웁니다",
        "iPhone 15",
    ):
        assert analyzer.terms("😀👍🏽🇯🇵 " + text + " 😀") == analyzer.terms(text)


@pytest.mark.parametrize("name", ALL)
def test_contract_long_text(name: str) -> None:
    # Over SudachiPy's 49,149-byte limit, without a single space in 20,000 characters.
    analyzer = _make(name)
    if analyzer is None:
        return
    text = "東京都の附属病院" * 2500
    terms = analyzer.terms(text)
    assert len(terms) >= 2500
    assert terms[:3] == analyzer.terms("東京都の附属病院" * 2)[:3]


# --- identities --------------------------------------------------------------------------------


def test_identity_of_the_default_analyzer() -> None:
    assert CJKBigramAnalyzer(unigrams=False).identity == "cjk-bigram/1"
    assert CJKBigramAnalyzer(unigrams=True).identity == "cjk-bigram/1 unigrams=true"
    assert repr(CJKBigramAnalyzer(unigrams=False)) == "<CJKBigramAnalyzer cjk-bigram/1>"


def _dist_version(dist: str) -> str:
    return f"{dist.replace('-', '_')}={importlib.metadata.version(dist)}"


@pytest.mark.parametrize(
    ("name", "dists"),
    [
        ("sudachi", ["sudachipy", "sudachidict-core"]),
        ("janome", ["janome"]),
        ("jieba", ["jieba"]),
        ("kiwi", ["kiwipiepy", "kiwipiepy-model"]),
    ],
)
def test_identity_names_package_and_dictionary_versions(name: str, dists: list[str]) -> None:
    analyzer = _analyzer_or_error(name)
    if analyzer is None:
        return
    versions = " ".join(_dist_version(d) for d in dists)
    assert analyzer.identity == f"{name}/{analyzer.version} {versions}"


def test_identity_of_sudachi_names_a_non_default_split_mode() -> None:
    if _analyzer_or_error("sudachi") is None:
        return
    a = analysis.SudachiAnalyzer(split_mode="A")
    assert a.identity.startswith("sudachi/1 mode=A sudachipy=")
    assert a.terms("東京都") == ["東京", "都"]
    assert analysis.SudachiAnalyzer(split_mode="C").terms("東京都") == ["東京都"]


def test_every_analyzer_is_registered_under_its_name() -> None:
    assert sorted(ANALYZERS) == ["cjk-bigram", "janome", "jieba", "kiwi", "sudachi"]
    for name, cls in ANALYZERS.items():
        assert cls.name == name
        assert cls.version >= 1
    assert DEFAULT_ANALYZER in ANALYZERS
    with pytest.raises(TypeError):
        ANALYZERS["x"] = CJKBigramAnalyzer  # type: ignore[index]


# --- errors ----------------------------------------------------------------------------------


def test_unknown_analyzer_names_the_valid_ones() -> None:
    with pytest.raises(ConfigError) as caught:
        get_analyzer("mecab")
    assert str(caught.value) == (
        "Unknown analyzer 'mecab'; choose one of: cjk-bigram, janome, jieba, kiwi, sudachi"
    )
    assert isinstance(caught.value, ValueError)


@pytest.mark.parametrize(
    ("name", "hidden", "message"),
    [
        (
            "sudachi",
            {"sudachipy", "sudachidict_core"},
            "The 'sudachi' analyzer needs SudachiPy and SudachiDict-core: "
            "pip install 'ollama-rag[sudachi]'",
        ),
        (
            "sudachi",
            {"sudachidict_core"},
            "The 'sudachi' analyzer needs SudachiDict-core: pip install 'ollama-rag[sudachi]'",
        ),
        (
            "janome",
            {"janome"},
            "The 'janome' analyzer needs Janome: pip install 'ollama-rag[janome]'",
        ),
        ("jieba", {"jieba"}, "The 'jieba' analyzer needs jieba: pip install 'ollama-rag[jieba]'"),
        (
            "kiwi",
            {"kiwipiepy", "kiwipiepy_model"},
            "The 'kiwi' analyzer needs kiwipiepy and kiwipiepy-model: "
            "pip install 'ollama-rag[kiwi]'",
        ),
    ],
)
def test_missing_package_is_one_line_naming_the_fix(
    name: str, hidden: set[str], message: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_find_spec = importlib.util.find_spec
    # The analyser's other packages are present, installed or not, so the message names
    # exactly the hidden ones.
    present = {module for module, _, _ in getattr(ANALYZERS[name], "requires", ())} - hidden

    def find_spec(module: str, package: str | None = None) -> ModuleSpec | None:
        if module in hidden:
            return None
        if module in present:
            return ModuleSpec(module, None)
        return real_find_spec(module, package)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    with pytest.raises(MissingExtraError) as caught:
        get_analyzer(name)
    err = caught.value
    assert str(err) == message
    assert err.extra == name
    assert err.package in message
    for base in (ConfigError, ValueError, ImportError, RagError):
        assert isinstance(err, base)


# --- the dictionary analysers: their words, and the fallback for other scripts -------------


def test_sudachi_normalised_words_and_fallback() -> None:
    sudachi = _installed("sudachi")
    assert sudachi.terms("東京都の附属病院でiPhone１５を買った。") == [
        "東京都",
        "の",
        "付属",  # normalised form of 附属
        "病院",
        "で",
        "iphone15",
        "を",
        "買う",
        "た",
    ]
    assert sudachi.terms("ｼｭﾐﾚｰｼｮﾝ") == sudachi.terms("シミュレーション")
    assert sudachi.terms("한국어 Korean") == ["한국", "국어", "korean"]


def test_janome_base_forms_and_fallback() -> None:
    janome = _installed("janome")
    assert janome.terms("東京都の病院でiPhoneを買った。") == [
        "東京",
        "都",
        "の",
        "病院",
        "で",
        "iphone",
        "を",
        "買う",
        "た",
    ]
    assert janome.terms("ｺｰﾋｰ") == janome.terms("コーヒー") == ["コーヒー"]
    assert janome.terms("한국어") == ["한국", "국어"]


def test_jieba_search_mode_and_fallback() -> None:
    jieba = _installed("jieba")
    assert jieba.terms("我来到北京清华大学。") == [
        "我",
        "来到",
        "北京",
        "清华",
        "华大",
        "大学",
        "清华大学",
    ]
    # Kana and Hangul between the Han words follow the default rules.
    assert jieba.terms("ひらがな 한국어") == ["ひら", "らが", "がな", "한국", "국어"]


def test_kiwi_morphemes_and_fallback() -> None:
    kiwi = _installed("kiwi")
    assert kiwi.terms("한국어 형태소 분석기를 사용했습니다.") == [
        "한국어",
        "형태소",
        "분석기",
        "를",
        "사용",
        "하",
        "었",
        "습니다",
    ]
    assert kiwi.terms("서울에서 iPhone15와 大韓民國") == [
        *kiwi.terms("서울에서"),
        "iphone15",
        "와",
        "大韓",
        "韓民",
        "民國",
    ]


def test_long_text_is_cut_at_spaces_and_sentence_ends() -> None:
    text = ("あ" * 1000 + "。") * 10
    pieces = list(analysis._pieces(text))
    assert "".join(pieces) == text
    assert all(len(p) <= analysis._PIECE_CHARS for p in pieces)
    assert all(p.endswith("。") for p in pieces)
    unbroken = "あ" * 10000
    assert [len(p) for p in analysis._pieces(unbroken)] == [4096, 4096, 1808]
