"""Where Junction keeps its state: documents (orgs, keys, credentials, bridges, threads) and change
notifications. Backends are chosen by the URL scheme of the ``[stores]`` settings."""
