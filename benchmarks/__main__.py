"""Run benchmarks: ``python -m benchmarks [name ...]``.

Every ``benchmarks/bench_*.py`` module has a ``main()`` that prints its own figures. With no
names all of them run in alphabetical order; a name may be given as ``splitter``,
``bench_splitter`` or ``bench_splitter.py``. A single module also runs on its own with
``python -m benchmarks.bench_splitter``.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
from collections.abc import Sequence
from pathlib import Path

PREFIX = "bench_"


def available() -> list[str]:
    """Return the benchmark module names (``bench_*``) in this package, sorted."""
    here = str(Path(__file__).resolve().parent)
    return sorted(m.name for m in pkgutil.iter_modules([here]) if m.name.startswith(PREFIX))


def _module_name(name: str) -> str:
    name = Path(name).name.removesuffix(".py")
    return name if name.startswith(PREFIX) else PREFIX + name


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks", description="Run ollama-rag benchmarks and print figures."
    )
    parser.add_argument(
        "names", nargs="*", help="benchmarks to run, e.g. 'splitter' (default: all)"
    )
    parser.add_argument("-l", "--list", action="store_true", help="list benchmarks and exit")
    args = parser.parse_args(argv)

    found = available()
    if args.list:
        print("\n".join(found))
        return 0
    unknown = [n for n in args.names if _module_name(n) not in found]
    if unknown:
        parser.error(f"unknown benchmark(s) {', '.join(unknown)}; available: {', '.join(found)}")
    selected = [_module_name(n) for n in args.names] or found
    for name in selected:
        print(f"== {name} ==", flush=True)
        # Imported only when selected so that one benchmark's optional dependencies do not
        # stop the others from running.
        module = importlib.import_module(f"{__package__ or 'benchmarks'}.{name}")
        module.main()
        print(flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
