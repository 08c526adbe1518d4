"""The ``in-process`` vector index: exact cosine search with numpy over vectors the documents
store keeps. Each worker loads a collection's vectors on its first query and keeps them until the
collection's ``revision`` changes (one read every query makes anyway), so every node sees an
ingestion at once. Exact search is fast enough for collections up to a few hundred thousand
chunks per worker (see README for measured numbers); beyond that, use pgvector."""

from junction.plugins import hookimpl
from junction.plugins.vectors import VectorIndexSpec
from junction.vector_indexes.in_process.index import InProcessConfig, InProcessIndex


@hookimpl
def register_vector_indexes(register):
    register(VectorIndexSpec(name="in-process", config_type=InProcessConfig, create=InProcessIndex))
