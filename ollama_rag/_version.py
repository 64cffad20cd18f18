"""The installed version, in a module of its own so that no module imports the package root."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

__all__ = ["__version__"]

try:
    __version__ = version("ollama-rag")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0"
