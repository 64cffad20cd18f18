"""The lexical side of search: CJK-aware terms and the BM25 index kept in step with the vectors."""
