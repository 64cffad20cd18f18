"""Decode bytes of unknown encoding: :func:`decode_text` and the detection behind it.

A byte order mark, ISO-2022 escapes and the NUL bytes of BOM-less UTF-16 are recognised
first; then strict UTF-8; then a declared charset; then the CJK and Latin legacy codecs are
ranked by how plausible their text is for their language (see :func:`decode_text`).
"""

from __future__ import annotations

import codecs
import functools
import re
import unicodedata
from collections.abc import Iterable
from typing import NamedTuple

from ollama_rag.errors import ConfigError, DocumentLoadError, Explained, Fix

__all__ = [
    "SNIFF_BYTES",
    "UNDECODABLE_FIX",
    "check_codec",
    "decode_file",
    "decode_text",
    "find_surrogate",
    "replace_surrogates",
    "unicode_bom",
    "utf16_without_bom",
]

SNIFF_BYTES = 8192
"""How much of a file the byte-level guesses (BOM-less UTF-16, binary content) look at."""

UNDECODABLE_FIX = (
    "pass encoding= with the file's encoding (for example encoding='cp932'), "
    "or convert the file to UTF-8"
)


class _UndecodableError(Exception):
    """No encoding gives plausible text; the message says why."""


def _undecodable(problem: str) -> Explained:
    return Explained(
        f"{problem} — {UNDECODABLE_FIX}", problem=problem, fix=Fix("encoding", value="cp932")
    )


def decode_text(data: bytes, *, encoding: str | None = None) -> tuple[str, str]:
    """Decode bytes of unknown encoding, and say which encoding was used.

    The order: a UTF-8/16/32 byte order mark; ISO-2022-JP/KR escape sequences; BOM-less UTF-16
    recognised by where its NUL bytes are; strict UTF-8 (a character cut off at the very end is
    dropped); for HTML, a ``<meta charset>`` whose text is plausible; then every codec of
    cp932, euc_jp, gbk, gb18030, big5, cp950, euc_kr, cp949 and cp1252 that decodes the bytes
    strictly, ranked by how plausible its text is for that codec's language. Very common and
    common characters of the language score, kana only for Japanese codecs; rare, control,
    private-use and unassigned characters cost, and so do spaces between Han characters
    (Korean read as Chinese) and long unbroken runs of Hangul (Chinese read as Korean). Only if
    none is plausible is charset-normalizer asked, for codecs outside that list (Cyrillic,
    Greek, …): on short CJK samples its vote is worse than the ranking.

    A leading byte order mark is dropped; newlines are left as they are.

    Args:
        data: The bytes.
        encoding: Use this codec (strictly) instead of detecting one.

    Returns:
        ``(text, encoding)``, the encoding as a Python codec name (``"utf-8"``, ``"utf-8-sig"``,
        ``"utf-16-le"``, ``"cp932"``, ``"gbk"``, …) that decodes ``data`` the same way again.

    Raises:
        DocumentLoadError: If no encoding gives plausible text, or ``encoding`` does not
            decode the bytes.
        ConfigError: If ``encoding`` is not a known text codec.
    """
    if encoding is not None:
        check_codec(encoding)
    try:
        return _decode(data, encoding, None)
    except _UndecodableError as err:
        raise DocumentLoadError(_undecodable(f"the bytes cannot be decoded: {err}")) from err


def decode_file(
    source: str, data: bytes, encoding: str | None, declared: str | None = None
) -> tuple[str, str]:
    """Decode a file's bytes as :func:`decode_text` does, for a format's ``parse``.

    Args:
        source: The file's source, which starts the error message.
        data: The bytes.
        encoding: Use this codec (strictly) instead of detecting one.
        declared: The charset the file declares (an HTML ``<meta charset>``), if any: tried
            after UTF-8, and used only if its text is plausible.

    Returns:
        ``(text, encoding)``, as :func:`decode_text` returns them.

    Raises:
        DocumentLoadError: If no encoding gives plausible text, or ``encoding`` does not
            decode the bytes.
    """
    try:
        return _decode(data, encoding, declared)
    except _UndecodableError as err:
        msg = _undecodable(f"{source}: cannot be decoded: {err}")
        raise DocumentLoadError(msg, source=source) from err


def check_codec(encoding: str) -> None:
    """Raise :class:`ConfigError` unless ``encoding`` names a text codec Python knows."""
    try:
        # Not b"": decoding nothing skips the codec lookup. Non-text codecs (base64) fail the
        # lookup; a text codec may still reject this one byte, which is fine.
        b"a".decode(encoding)
    except UnicodeDecodeError:
        pass
    except LookupError as err:
        problem = (
            f"{encoding!r} is not a text codec Python knows — use a codec name such as "
            "'utf-8', 'cp932', 'euc_jp', 'gb18030', 'big5' or 'euc_kr'"
        )
        raise ConfigError(Explained(f"encoding={problem}", problem=problem)) from err


_SURROGATE = re.compile("[\ud800-\udfff]")


def find_surrogate(text: str) -> int:
    r"""Return the offset of the first surrogate code point in ``text``, or -1.

    A Python string holds code points, so a surrogate in it is never half of a valid pair:
    it comes from ``errors="surrogateescape"`` (undecodable bytes, file names), from
    ``"surrogatepass"``, or from codecs such as UTF-7 and ``unicode_escape``. It cannot be
    encoded as UTF-8, so no index can store it.

    >>> find_surrogate("ok"), find_surrogate("caf\udce9")
    (-1, 3)
    """
    found = _SURROGATE.search(text)
    return -1 if found is None else found.start()


def replace_surrogates(text: str) -> str:
    r"""Join surrogate pairs into their character and replace lone surrogates with U+FFFD.

    >>> replace_surrogates("\ud83d\ude00 caf\udce9") == "\U0001f600 caf\ufffd"
    True
    """
    if _SURROGATE.search(text) is None:
        return text
    return text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")


def unicode_bom(data: bytes) -> tuple[str, int] | None:
    """Return the codec and length of the Unicode byte order mark ``data`` starts with."""
    # UTF-32 first: its little-endian BOM starts with the UTF-16 one.
    for bom, codec in _BOMS:
        if data.startswith(bom):
            return codec, len(bom)
    return None


_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32-le"),
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)


def utf16_without_bom(data: bytes) -> str | None:
    """Guess BOM-less UTF-16 from where the NUL bytes sit (mostly-ASCII text only)."""
    sample = data[: SNIFF_BYTES & ~1]
    half = len(sample) // 2
    if half < 2:
        return None
    even, odd = sample[0::2].count(0), sample[1::2].count(0)
    if odd >= 0.3 * half and even <= 0.02 * half:
        return "utf-16-le"
    if even >= 0.3 * half and odd <= 0.02 * half:
        return "utf-16-be"
    return None


def _decode(data: bytes, encoding: str | None, declared: str | None) -> tuple[str, str]:
    if encoding is not None:
        return _decode_forced(data, encoding)
    bom = unicode_bom(data)
    if bom is not None:
        codec, size = bom
        try:
            text = data[size:].decode(codec)
        except UnicodeDecodeError as err:
            msg = f"it starts with a {codec} byte order mark but is not valid {codec}: {err}"
            raise _UndecodableError(msg) from err
        return text, "utf-8-sig" if codec == "utf-8" else codec
    if b"\x1b" in data and data.isascii():
        found = _decode_iso2022(data)
        if found is not None:
            return found
    # Before UTF-8, which accepts the NUL bytes of ASCII text in UTF-16.
    utf16 = utf16_without_bom(data)
    if utf16 is not None:
        try:
            return data.decode(utf16), utf16
        except UnicodeDecodeError:
            pass
    try:
        return data.decode("utf-8"), "utf-8"
    except UnicodeDecodeError as err:
        utf8_error = err
    # A file cut off inside its last character (a truncated download or log) is still UTF-8.
    if utf8_error.end == len(data) and utf8_error.reason == "unexpected end of data":
        return data[: utf8_error.start].decode("utf-8"), "utf-8"
    if declared is not None:
        found = _decode_declared(data, declared)
        if found is not None:
            return found
    return _decode_by_ranking(data, utf8_error)


def _decode_forced(data: bytes, encoding: str) -> tuple[str, str]:
    try:
        text = data.decode(encoding)
    except UnicodeDecodeError as err:
        bad = data[err.start : err.start + 4].hex(" ")
        msg = f"it is not valid {encoding}: bytes {bad} at offset {err.start}"
        raise _UndecodableError(msg) from err
    return text.removeprefix("\ufeff"), encoding


def _decode_iso2022(data: bytes) -> tuple[str, str] | None:
    for codec in ("iso2022_jp", "iso2022_jp_2", "iso2022_kr"):
        try:
            text = data.decode(codec)
        except UnicodeDecodeError:
            continue
        # A codec that does not know the escapes or shifts in use leaves them in the text.
        if not any(c in text for c in "\x1b\x0e\x0f"):
            return text, codec
    return None


def _decode_declared(data: bytes, declared: str) -> tuple[str, str] | None:
    # Browsers read these labels as the codec's superset; so must we, or pages fail to decode.
    label = declared.lower()
    codec = _CHARSET_LABELS.get(label, label)
    try:
        name = codecs.lookup(codec).name
        text = data.decode(name)
    except (LookupError, UnicodeDecodeError):
        return None
    if name.startswith(("utf-16", "utf-32")):
        return None
    if not _is_plausible(text, dict(_CANDIDATES).get(name, "other")):
        return None
    return text, name


_CHARSET_LABELS = {
    "shift_jis": "cp932",
    "shift-jis": "cp932",
    "sjis": "cp932",
    "x-sjis": "cp932",
    "ms_kanji": "cp932",
    "windows-31j": "cp932",
    "gb2312": "gbk",
    "x-gbk": "gbk",
    "euc-kr": "cp949",
    "ks_c_5601-1987": "cp949",
    "iso-8859-1": "cp1252",
    "latin1": "cp1252",
    "us-ascii": "cp1252",
    "ascii": "cp1252",
}


# Ordered by preference: on a tie the earlier codec wins, and a later codec that decodes to the
# same text as an earlier one is dropped (cp932 over shift_jis-compatible bytes, gbk over
# gb18030, big5 over cp950, euc_kr over cp949).
_CANDIDATES = (
    ("cp932", "ja"),
    ("euc_jp", "ja"),
    ("gbk", "zh-hans"),
    ("gb18030", "zh-hans"),
    ("big5", "zh-hant"),
    ("cp950", "zh-hant"),
    ("euc_kr", "ko"),
    ("cp949", "ko"),
    ("cp1252", "latin"),
)
# Only this much is ranked, from the first non-ASCII byte on (ASCII is the same in every
# candidate); the winner must then decode the whole file.
_RANK_BYTES = 32 * 1024
# Least mean score per non-ASCII character. In the development corpus, real text of four or
# more characters scored at least 1.0 (Latin) and 1.38 (CJK); random bytes of 64 or more at most
# -0.22.
_MIN_PLAUSIBILITY = 0.5
_MAX_CHAOS = 0.1


class _Candidate(NamedTuple):
    score: float
    order: int
    codec: str
    text: str
    plausible: bool


def _decode_by_ranking(data: bytes, utf8_error: UnicodeDecodeError) -> tuple[str, str]:
    # Every candidate's lead bytes are non-ASCII, so the sample starts on a character.
    first = _FIRST_NON_ASCII_BYTE.search(data)
    start = first.start() if first else 0
    sample = data[start : start + _RANK_BYTES]
    final = start + len(sample) == len(data)
    ranked = _rank(sample, final=final)
    for candidate in ranked:
        if not candidate.plausible:
            continue
        if final:
            return data[:start].decode("ascii") + candidate.text, candidate.codec
        try:
            return data.decode(candidate.codec), candidate.codec
        except UnicodeDecodeError:
            continue  # fine at the start, invalid later on
    found = _decode_by_charset_normalizer(data, sample)
    if found is not None:
        return found
    bad = data[utf8_error.start : utf8_error.start + 4].hex(" ")
    if ranked:
        why = f"decoding it as {', '.join(c.codec for c in ranked)} gives implausible text"
    else:
        why = f"none of {', '.join(c for c, _ in _CANDIDATES)} decodes it"
    msg = f"it is not UTF-8 (bytes {bad} at offset {utf8_error.start}) and {why}"
    raise _UndecodableError(msg)


def _rank(sample: bytes, *, final: bool) -> list[_Candidate]:
    """The candidates that decode the sample strictly, most plausible first."""
    ranked = []
    seen: set[str] = set()
    for order, (codec, profile) in enumerate(_CANDIDATES):
        try:
            text = codecs.getincrementaldecoder(codec)().decode(sample, final=final)
        except UnicodeDecodeError:
            continue
        if text in seen:
            continue
        seen.add(text)
        score = _score(text, profile)
        plausible = score >= _MIN_PLAUSIBILITY * _count_non_ascii(text)
        ranked.append(_Candidate(score, order, codec, text, plausible))
    return sorted(ranked, key=lambda c: (-c.score, c.order))


def _count_non_ascii(text: str) -> int:
    return len(text) - sum(1 for ch in text if ch < "\x80")


def _decode_by_charset_normalizer(data: bytes, sample: bytes) -> tuple[str, str] | None:
    import charset_normalizer  # only for rare non-CJK legacy files

    best = charset_normalizer.from_bytes(sample).best()
    # Zero coherence means it recognised no language: a guess, as it makes for random bytes.
    if best is None or best.coherence <= 0 or best.chaos > _MAX_CHAOS:
        return None
    try:
        codec = codecs.lookup(best.encoding).name
        text = data.decode(codec)
    except (LookupError, UnicodeDecodeError):
        return None
    if codec in dict(_CANDIDATES):
        return None  # already ranked, and found implausible
    if not _is_plausible(text, "other"):
        return None
    return text, codec


def _is_plausible(text: str, profile: str) -> bool:
    """Whether the text scores at least _MIN_PLAUSIBILITY per non-ASCII character."""
    first = _FIRST_NON_ASCII.search(text)
    if first is None:
        return True  # nothing to judge: ASCII reads the same in every candidate
    sample = text[first.start() : first.start() + _RANK_BYTES]
    return _score(sample, profile) >= _MIN_PLAUSIBILITY * _count_non_ascii(sample)


def _score(text: str, profile: str) -> float:
    if profile == "latin":
        return _score_latin(text)
    if profile == "other":
        return _score_other(text)
    weights = _char_weights(profile)
    total = 0.0
    for ch in text:
        if ch >= "\x80":
            weight = weights.get(ch)
            total += _fallback_weight(ch, profile) if weight is None else weight
    if profile in ("ja", "zh-hans", "zh-hant"):
        total -= 3.0 * len(_HAN_SPACE_HAN.findall(text))
    elif profile == "ko":
        total -= sum(1.5 * (len(m.group()) - 12) for m in _LONG_HANGUL_RUN.finditer(text))
    return total


_HAN_OR_KANA = "\u3040-\u30ff\u3400-\u9fff\uf900-\ufaff"
_HAN_SPACE_HAN = re.compile(f"[{_HAN_OR_KANA}] (?=[{_HAN_OR_KANA}])")
_LONG_HANGUL_RUN = re.compile("[\uac00-\ud7a3]{13,}")
_NON_ASCII_RUN = re.compile("[^\x00-\x7f]+")
_FIRST_NON_ASCII = re.compile("[^\x00-\x7f]")
_FIRST_NON_ASCII_BYTE = re.compile(b"[\x80-\xff]")
_BAD_CATEGORIES = frozenset({"Cc", "Co", "Cn", "Cs"})


def _score_latin(text: str) -> float:
    return sum(_latin_run_score(text, match) for match in _NON_ASCII_RUN.finditer(text))


def _score_other(text: str) -> float:
    # For a codec charset-normalizer suggested: letters of a non-Latin alphabet (Cyrillic,
    # Greek, …) form whole words, while Latin ones must still look like accents in words.
    total = 0.0
    for match in _NON_ASCII_RUN.finditer(text):
        if all(not ch.isalpha() or _is_latin(ch) for ch in match.group()):
            total += _latin_run_score(text, match)
        else:
            total += sum(_fallback_weight(ch, "other") for ch in match.group())
    return total


def _is_latin(ch: str) -> bool:
    return unicodedata.name(ch, "").startswith("LATIN")


def _latin_run_score(text: str, match: re.Match[str]) -> float:
    """Score a run of non-ASCII characters in Latin-script text.

    Accented letters come one or two at a time inside ASCII words ("café", "naïve") and
    typographic symbols stand alone ("10 €", "—"); runs of three or more, or letters with no
    ASCII letter beside them, are what CJK bytes look like in cp1252.
    """
    run, start, end = match.group(), match.start(), match.end()
    in_word = (start > 0 and text[start - 1].isalpha()) or (end < len(text) and text[end].isalpha())
    total = 0.0
    for ch in run:
        category = unicodedata.category(ch)
        if category in _BAD_CATEGORIES:
            total -= 10.0
        elif len(run) > 2:
            total -= 2.0
        elif category.startswith("L"):
            total += 1.0 if in_word else -1.0
        else:  # quotes, dashes, currency signs are everyday; ˙ ¨ ± less so
            total += 1.0 if category[0] == "P" or category == "Sc" else 0.5
    return total


def _fallback_weight(ch: str, profile: str) -> float:
    category = unicodedata.category(ch)
    if category in _BAD_CATEGORIES or ch == "\ufffd":
        return -10.0
    if profile == "other":
        return 1.0 if category.startswith("L") else 0.0
    code = ord(ch)
    if 0xAC00 <= code <= 0xD7A3:
        return -1.0 if profile == "ko" else -2.0
    if 0x3040 <= code <= 0x30FF:
        return 1.0 if profile == "ja" else -1.0
    if 0xFF61 <= code <= 0xFF9F:  # half-width katakana: real in old files, mostly noise
        return -1.0 if profile == "ja" else -2.0
    if category == "Lo":
        return -2.0
    if category.startswith("Z"):
        return 0.0
    return -1.0


@functools.cache
def _char_weights(profile: str) -> dict[str, float]:
    """Per-character scores for one language, built from its national character set.

    Each standard puts its everyday characters first (JIS X 0208 level 1, GB 2312 level 1,
    Big5 "frequently used", the 2,350 KS X 1001 syllables), so decoding those byte ranges
    gives a "common" tier without shipping frequency tables; a short hand-picked list per
    language adds a "very common" tier.
    """
    weights: dict[str, float] = {}

    def put(chars: Iterable[str], weight: float) -> None:
        weights.update(dict.fromkeys(chars, weight))

    if profile == "ja":
        put(_rows("euc_jp", 0xA1, 0xA4), -0.5)
        put(_rows("euc_jp", 0xA4, 0xA6), 3.0)  # kana: the strongest sign of Japanese
        put(_rows("euc_jp", 0xA6, 0xA9), -1.0)
        put(_rows("euc_jp", 0xD0, 0xF5), 0.0)
        put(_rows("euc_jp", 0xB0, 0xD0), 1.5)
        put(_JA_VERY_COMMON, 3.0)
    elif profile == "zh-hans":
        put(_rows("gbk", 0xA1, 0xAA), -0.5)
        put(_rows("gbk", 0xA4, 0xA6), -1.0)
        put(_rows("gbk", 0xD8, 0xF8), 0.0)
        put(_rows("gbk", 0xB0, 0xD8), 1.5)
        put(_ZH_HANS_VERY_COMMON, 3.0)
    elif profile == "zh-hant":
        put(_rows("big5", 0xA1, 0xA4, _BIG5_TRAILS), -0.5)
        put(_rows("big5", 0xC9, 0xFA, _BIG5_TRAILS), 0.0)
        put(_rows("big5", 0xA4, 0xC7, _BIG5_TRAILS), 1.5)
        put(_ZH_HANT_VERY_COMMON, 3.0)
    elif profile == "ko":
        put(_rows("euc_kr", 0xA1, 0xB0), -1.0)
        put(_rows("euc_kr", 0xCA, 0xFE), -0.5)  # hanja: rare in modern Korean
        put(_rows("euc_kr", 0xB0, 0xC9), 1.5)
        put(_KO_VERY_COMMON, 3.0)
    put(_CJK_PUNCTUATION, 1.0)
    put((chr(c) for c in range(0xFF10, 0xFF5B) if chr(c).isalnum()), 0.5)
    return weights


_EUC_TRAILS = range(0xA1, 0xFF)
_BIG5_TRAILS = (*range(0x40, 0x7F), *range(0xA1, 0xFF))


def _rows(codec: str, first: int, stop: int, trails: Iterable[int] = _EUC_TRAILS) -> list[str]:
    chars = []
    trails = tuple(trails)
    for lead in range(first, stop):
        for trail in trails:
            try:
                chars.append(bytes((lead, trail)).decode(codec))
            except UnicodeDecodeError:
                continue
    return chars


_CJK_PUNCTUATION = (
    "、。，．・：；？！「」『』（）【】〔〕［］｛｝〈〉《》…―ー～“”‘’＋－＝＜＞％＃＆＊＠　"
    "※■□◆◇○●◎★☆→←↑↓△▲▽▼〒♪①②③④⑤⑥⑦⑧⑨⑩"
)
# "Very common" tiers, hand-picked from general frequency lists (the first few hundred
# characters of news and web text). Membership only moves a character from the common tier up.
_ZH_HANS_VERY_COMMON = (
    "的一是不了在人有我他这个们中来上大为和国地到以说时要就出会可也你对生能而子那得于着下自之年过"
    "发后作里用道行所然家种事成方多经么去法学如都同现当没动面起看定天分还进好小部其些主样理心她本前"
    "开但因只从想实日者意无力它与长把机十民第公此已工使情明性知全三又关点正业外将两高间由问很最重并"
    "物手应向头文体政美相见被利什二等产或新己制身果加西月话合回特代内信表化老给世位次度门任常先海通"
    "教儿原东声提立及比员解水名真论处走义各入几口认条平系气题活更别打女变四神总何电数安少报才结反受"
    "目太量再感建务做接必场件计管期市直资命山金指许统区保至形社便空决治展科司五基眼书非则听白界达光"
    "放强即像难且权思王象完设式色路记南品住告类求据程北边死张该交规万取拉格望觉术领共确传师观清今切"
    "院让识候带导争运笑飞风步改收根干造言联持组每济车亲极林服快办议往元证近失转夫令准布始怎呢存未远"
    "叫台单影具字爱击流备连调深商算质团集百需价花华城石级整府离况请技际约示复病息究线似官火断精满支"
    "视消越器容照须九增研写称企八功吗包片史委查轻易早曾除农找装广显吧李标谈吃图念六引历首医局突专费"
    "号尽另周较注语仅考落青随选列武红响虽推势参希古众构房半节土投某案黑维革划致律足态护七兴派孩验责"
    "营星够章音跟志底站严例防族供效续施留讲型料终答紧黄绝奇察母京段依批群项故按河米围江织害斗双境客"
    "纪采举父密低朝友诉止细愿千值仍男钱破网热助育属坐限船脸职速刻乐否刚威毛状率甚独球般普怕弹校苦创"
    "假久错承印晚试股拿脑预谁益阳若哪微继送急血惊伤素药适波夜省初喜卫源食险待述陆习置居劳财环排福纳"
    "欢获模充负云停木游龙树疑层冷洲冲射略范竟句室异激汉村策演简卡罪判担州静退既衣您宗积余检差富灵协"
)
_ZH_HANT_VERY_COMMON = (
    "的一是不了在人有我他這個們中來上大為和國地到以說時要就出會可也你對生能而子那得於著下自之年過"
    "發後作裡用道行所然家種事成方多經麼去法學如都同現當沒動面起看定天分還進好小部其些主樣理心她本前"
    "開但因只從想實日者意無力它與長把機十民第公此已工使情明性知全三又關點正業外將兩高間由問很最重並"
    "物手應向頭文體政美相見被利什二等產或新己制身果加西月話合回特代內信表化老給世位次度門任常先海通"
    "教兒原東聲提立及比員解水名真論處走義各入幾口認條平系氣題活更別打女變四神總何電數安少報才結反受"
    "目太量再感建務做接必場件計管期市直資命山金指許統區保至形社便空決治展科司五基眼書非則聽白界達光"
    "放強即像難且權思王象完設式色路記南品住告類求據程北邊死張該交規萬取拉格望覺術領共確傳師觀清今切"
    "院讓識候帶導爭運笑飛風步改收根幹造言聯持組每濟車親極林服快辦議往元證近失轉夫令準布始怎呢存未遠"
    "叫臺台單影具字愛擊流備連調深商算質團集百需價花華城石級整府離況請技際約示復病息究線似官火斷精滿支"
    "視消越器容照須九增研寫稱企八功嗎包片史委查輕易早曾除農找裝廣顯吧李標談吃圖念六引歷首醫局突專費"
    "號盡另周較注語僅考落青隨選列武紅響雖推勢參希古眾構房半節土投某案黑維革劃致律足態護七興派孩驗責"
    "營星夠章音跟志底站嚴例防族供效續施留講型料終答緊黃絕奇察母京段依批群項故按河米圍江織害鬥雙境客"
    "紀採舉父密低朝友訴止細願千值仍男錢破網熱助育屬坐限船臉職速刻樂否剛威毛狀率甚獨球般普怕彈校苦創"
    "假久錯承印晚試股拿腦預誰益陽若哪微繼送急血驚傷素藥適波夜省初喜衛源食險待述陸習置居勞財環排福納"
    "歡獲模充負雲停木遊龍樹疑層冷洲衝射略範竟句室異激漢村策演簡卡罪判擔州靜退既衣您宗積餘檢差富靈協"
)
_JA_VERY_COMMON = (
    "日一国人年大十二本中長出三同時政事自行社見月分議後前民生連五発間対上部東者党地合市業内相方四定"
    "今回新場金員九入選立開手米力学問高代明実円関決子動京全目表戦経通外最言氏現理調体化田当八六約主"
    "題下首意法不来作性的要用制治度務強気小七成期公持野協取都和統以機平総加山思家話世受区領多県続進"
    "正安設保改数記院女初北午指権心界支第産結百派点教報済書府活原先共得解名交資予川向際査勝面委告軍"
    "文反元重近千考判認画海参売利組知案道信策集在件団別物側任引使求所次水半品昨論計死官増係感特情投"
    "示変打男基私各始島直両朝革価式確村提運終挙果西勢減台広容必応演電歳住争談能無再位置企真流格有疑"
    "口過局少放税検町常校料裁状工建語球営空職証土与急止送援供可役構木割聞身費付施切由説転食比難防補"
    "車優夫研収断何南石足違消境神番規術護展態導備宅害配副算視条独警宮究育席輸訪楽起万着請技映株形帰"
)
_KO_VERY_COMMON = (
    "이다의는에하고을가를지기한서로도사리대으자일수인시정나어아해부제전보게국들것만그있여요상주적거장없"
    "면니원구라경생방내동분성세화공업관위비소모무행마신문중결과미연계발회실학우개금통음선치심유안체명불"
    "반작재용된했합습까죠네데러려르른운은와께며야잘좋날오늘말알같때더또및등년월초람저너녀누언디엇왜떻"
    "처럼터테였었입세큼조차든군할록면란렇엄청진짜새번째바산강물친교집밥차길손발눈귀몸음각간상글읽쓰듣배"
    "치려받내들찾확설검색테트십백천억영둘셋넷섯곱덟홉열"
)
