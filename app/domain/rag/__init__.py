"""RAG: per-org collections of documents, chunked, embedded and searched through a vector index."""
