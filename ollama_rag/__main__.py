"""``python -m ollama_rag`` runs the ``ollama-rag`` command."""

from ollama_rag.cli import main

main()
