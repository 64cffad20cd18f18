"""Ingestion: what is new (planning), and getting it embedded and stored (the pipeline).

- :mod:`~ollama_rag.ingest.units` — :class:`Unit` and :class:`Piece`, what every entry point
  produces;
- :mod:`~ollama_rag.ingest.documents` — texts and LangChain documents → units;
- :mod:`~ollama_rag.ingest.files` — files and folders → units (unchanged files skipped);
- :mod:`~ollama_rag.ingest.pipeline` — :class:`Pipeline`: prepare → embed → commit;
- :mod:`~ollama_rag.ingest.report` — :class:`IngestReport`.
"""

from __future__ import annotations

from ollama_rag.ingest.pipeline import Pipeline, embed_pieces
from ollama_rag.ingest.report import IngestReport
from ollama_rag.ingest.units import Piece, Unit

__all__ = ["IngestReport", "Piece", "Pipeline", "Unit", "embed_pieces"]
