"""The ``pgvector`` vector index: HNSW (cosine) in PostgreSQL, in the documents store's database
or the one ``url`` names. Used by ``[knowledge] index = "auto"`` when the documents store is
PostgreSQL and the ``vector`` extension is available there; a start-up without it falls back to
``in-process`` (``auto``) or stops with a message (``index = "pgvector"``)."""

from junction.plugins import hookimpl
from junction.plugins.vectors import VectorIndexSpec
from junction.vector_indexes.pgvector.index import PgvectorConfig, PgvectorIndex


@hookimpl
def register_vector_indexes(register):
    register(VectorIndexSpec(name="pgvector", config_type=PgvectorConfig, create=PgvectorIndex))
