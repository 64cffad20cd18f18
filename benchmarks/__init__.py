"""Benchmarks for ollama-rag: run ``python -m benchmarks [name ...]`` (see ``__main__``)."""
