"""TEMPORARY stand-in (replaced by the analysis branch)."""

from __future__ import annotations

import re
import unicodedata
from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import ClassVar

from ollama_rag.errors import ConfigError

__all__ = ["ANALYZERS", "DEFAULT_ANALYZER", "Analyzer", "get_analyzer"]

DEFAULT_ANALYZER = "cjk-bigram"
_CJK = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff\u1100-\u11ff\u3130-\u318f"
_RUN = re.compile(rf"([{_CJK}]+)|((?:(?![{_CJK}])[^\W_])+)")


class Analyzer(ABC):
    name: ClassVar[str]
    version: ClassVar[int]

    @property
    def identity(self) -> str:
        return f"{self.name}/{self.version}"

    @abstractmethod
    def terms(self, text: str) -> list[str]: ...

    def query_terms(self, text: str) -> list[str]:
        return self.terms(text)


class BigramAnalyzer(Analyzer):
    name = "cjk-bigram"
    version = 1

    def terms(self, text: str) -> list[str]:
        text = unicodedata.normalize("NFKC", text).casefold()
        out: list[str] = []
        for m in _RUN.finditer(text):
            if m.group(1):
                run = m.group(1)
                out.extend(run[i : i + 2] for i in range(len(run) - 1))
                out.extend(run)
            else:
                out.append(m.group(2))
        return out


ANALYZERS: Mapping[str, type[Analyzer]] = {"cjk-bigram": BigramAnalyzer}


def get_analyzer(name: str = DEFAULT_ANALYZER) -> Analyzer:
    try:
        return ANALYZERS[name]()
    except KeyError:
        raise ConfigError(f"unknown analyzer {name!r}") from None
