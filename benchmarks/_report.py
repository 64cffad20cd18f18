"""What every benchmark prints the same way: tables, verdicts, durations, the machine, a summary.

Also the two environment conventions they share: ``OLLAMA_RAG_BENCH_QUICK`` (a tiny smoke run)
and comma-separated selections such as ``OLLAMA_RAG_BENCH_PARTS``.
"""

from __future__ import annotations

import os
import platform
from collections.abc import Mapping, Sequence

QUICK_ENV = "OLLAMA_RAG_BENCH_QUICK"


def quick_requested(quick: bool | None = None) -> bool:
    """``quick`` if given, else whether ``OLLAMA_RAG_BENCH_QUICK`` is set (not to 0 or empty)."""
    if quick is None:
        return os.environ.get(QUICK_ENV, "") not in ("", "0")
    return quick


def select(
    given: Sequence[str] | None, choices: Sequence[str], env: str, what: str
) -> tuple[str, ...]:
    """The chosen names, in ``choices`` order: ``given``, else ``$env`` (comma-separated), else all.

    Raises:
        ValueError: A name is not one of ``choices`` (the message says ``unknown {what}(s)``).
    """
    if given is None:
        given = [p.strip() for p in os.environ.get(env, "").split(",") if p.strip()]
    unknown = sorted(set(given) - set(choices))
    if unknown:
        msg = f"unknown {what}(s) {', '.join(unknown)}; choose from {', '.join(choices)}"
        raise ValueError(msg)
    return tuple(c for c in choices if c in given) if given else tuple(choices)


def mode(quick: bool) -> str:
    return "QUICK (smoke test; figures not meaningful)" if quick else "full"


def verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A plain-text table: first column left-aligned, the others right-aligned."""
    widths = [max(len(str(r[i])) for r in [headers, *rows]) for i in range(len(headers))]

    def line(cells: Sequence[str]) -> str:
        first = f"{cells[0]:<{widths[0]}}"
        rest = [f"{c:>{w}}" for c, w in zip(cells[1:], widths[1:], strict=True)]
        return "  ".join([first, *rest]).rstrip()

    return "\n".join([line(headers), *(line(r) for r in rows)])


def seconds(value: float) -> str:
    return f"{value:.2f} s"


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as info:
            for line in info:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def load_average() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "n/a"


def machine() -> str:
    """CPUs, CPU model, Python version and the load average, for a benchmark's first line."""
    return (
        f"machine: {os.cpu_count()} CPUs, {cpu_model()}; Python {platform.python_version()}; "
        f"load average {load_average()}"
    )


def summary(verdicts: Mapping[str, bool], most: int | None = None) -> str:
    """``summary: N of M targets met; MISSED: ...; load average ...`` (the last line printed).

    With ``most``, at most that many missed targets are named, then how many more there are.
    """
    missed = [name for name, ok in verdicts.items() if not ok]
    named = missed if most is None or len(missed) <= most else missed[:most]
    more = f" and {len(missed) - len(named)} more" if len(named) < len(missed) else ""
    return (
        f"summary: {len(verdicts) - len(missed)} of {len(verdicts)} targets met"
        + (f"; MISSED: {', '.join(named)}{more}" if missed else "")
        + f"; load average {load_average()}"
    )
